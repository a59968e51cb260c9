"""Event scoring against scenario truth: matching by camera, kind, time and box IoU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vision.scoring import (
    ScoringInputError,
    load_events,
    load_truth,
    opened_events,
    parse_truth,
    score_events,
)

BOX = [100, 100, 200, 200]


def truth(
    camera_id: str = "cam-1",
    violations: list[dict] | None = None,
    duration_s: float = 3600,
    quiet: bool = False,
) -> dict:
    return {
        "scenario": f"s-{camera_id}",
        "camera_id": camera_id,
        "duration_s": duration_s,
        "fps": 5,
        "frame_wh": [1000, 1000],
        "must_not_alert": quiet,
        "violations": violations or [],
    }


def tv(
    kind: str = "street_vending", start_s: float = 20, end_s: float = 300, dwell_s: float = 90, bbox=BOX
) -> dict:
    return {
        "kind": kind,
        "zone_id": "z",
        "start_s": start_s,
        "end_s": end_s,
        "dwell_s": dwell_s,
        "bbox_xyxy": bbox,
    }


def ev(
    ts_s: float,
    kind: str = "street_vending",
    bbox=BOX,
    vid: str | None = None,
    camera_id: str = "cam-1",
    event: str = "opened",
) -> dict:
    return {
        "event": event,
        "violation_id": vid or f"{camera_id}-z-{kind}-{ts_s}",
        "camera_id": camera_id,
        "kind": kind,
        "ts_s": ts_s,
        "bbox_xyxy": bbox,
    }


@pytest.mark.parametrize(
    ("events", "violations", "expected"),
    [
        # (tp, fp, fn)
        ([ev(112)], [tv()], (1, 0, 0)),
        ([ev(112, kind="exposed_garbage")], [tv()], (0, 1, 1)),  # wrong kind
        ([ev(112, bbox=[600, 600, 700, 700])], [tv()], (0, 1, 1)),  # elsewhere in the picture
        ([ev(112, bbox=[120, 120, 320, 320])], [tv()], (1, 0, 0)),  # IoU 0.15 >= 0.1 (a cluster box)
        ([ev(400)], [tv()], (0, 1, 1)),  # opened long after the truth ended
        ([ev(304)], [tv()], (1, 0, 0)),  # within the 5 s slack
        ([ev(112), ev(130, vid="other")], [tv()], (1, 1, 0)),  # a duplicate violation is a false alarm
        ([ev(112, vid="a"), ev(200, vid="a")], [tv()], (1, 0, 0)),  # a re-open of the same violation is not
        (
            [ev(112), ev(150, vid="b", bbox=[600, 600, 700, 700])],
            [tv(), tv(bbox=[600, 600, 700, 700])],
            (2, 0, 0),
        ),
        ([], [tv()], (0, 0, 1)),
        ([ev(112, event="updated")], [tv()], (0, 0, 1)),  # only opened events count
    ],
)
def test_matching(events: list[dict], violations: list[dict], expected: tuple[int, int, int]) -> None:
    score = score_events(opened_events(events), [parse_truth(truth(violations=violations))])
    assert (score.true_positives, score.false_positives, score.false_negatives) == expected


def test_headline_numbers() -> None:
    truths = [
        parse_truth(
            truth(
                "cam-1",
                [
                    tv(start_s=20),
                    tv(kind="bike_misparking", start_s=50, dwell_s=120, bbox=[500, 500, 600, 600]),
                ],
                1800,
            )
        ),
        parse_truth(truth("cam-2", [], 1800, quiet=True)),
    ]
    events = opened_events(
        [
            ev(112),  # delay 92
            ev(175, kind="bike_misparking", bbox=[500, 500, 600, 600]),  # delay 125
            ev(60, camera_id="cam-2"),  # an alert on a must-not-alert scenario
            ev(60, camera_id="cam-9"),  # no truth for this camera
        ]
    )
    score = score_events(events, truths)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == 1.0
    assert score.f1 == pytest.approx(0.8)
    assert score.median_delay_s == pytest.approx((92 + 125) / 2)
    assert score.median_delay_over_dwell_s == pytest.approx((2 + 5) / 2)
    assert score.false_alarms_per_hour == pytest.approx(1.0)  # 1 false alarm in 1 hour of video
    assert score.must_not_alert_events == 1
    assert score.ignored_events == 1
    assert score.per_kind["bike_misparking"]["recall"] == 1.0
    data = score.to_json()
    assert set(data) >= {"precision", "recall", "f1", "median_delay_s", "false_alarms_per_hour"}
    json.dumps(data)


def test_empty_inputs_are_vacuously_perfect() -> None:
    score = score_events([], [parse_truth(truth(quiet=True))])
    assert (score.precision, score.recall, score.median_delay_s, score.false_alarms_per_hour) == (
        1.0,
        1.0,
        None,
        0.0,
    )


def test_two_truth_files_for_one_camera_are_refused() -> None:
    with pytest.raises(ScoringInputError, match="both describe camera 'cam-1'"):
        score_events([], [parse_truth(truth(), "a.json"), parse_truth(truth(), "b.json")])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read truth file"),
        ("{not json", "not valid JSON"),
        (json.dumps({"camera_id": "c"}), "missing 'duration_s'"),
        (json.dumps(truth(violations=[{"kind": "x", "start_s": 0, "end_s": 1}])), "missing 'bbox_xyxy'"),
        (json.dumps(truth(violations=[tv(bbox=[1, 2, 3])])), "bbox_xyxy must be"),
    ],
)
def test_truth_file_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ScoringInputError, match=message):
        load_truth(path)


def test_events_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(ev(1)) + "\n\n" + "{oops\n")
    with pytest.raises(ScoringInputError, match="e.jsonl line 3: not valid JSON"):
        load_events(path)
    with pytest.raises(ScoringInputError, match="cannot read events file"):
        load_events(tmp_path / "missing.jsonl")
