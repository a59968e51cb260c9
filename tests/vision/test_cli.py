"""``urbaneye rules-replay`` and ``urbaneye score-events``, and the cameras file documented for operators."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.vision.factories import BIKE, STALL, Noise, Obj, Scene, render
from urbaneye.cli import main
from vision.config import ZoneKind, load_cameras, parse_cameras
from vision.types import OBJECT_KINDS

ROOT = Path(__file__).resolve().parents[2]

CAMERAS_YAML = """
version: 1
model:
  class_map: {stall: vending_stall, bike: bicycle, car: null}
rules: {grace_s: 20, update_interval_s: 30}
cameras:
  - id: cam-a
    source: {url: a.mp4}
    zones:
      - {id: street, kind: no_vending, road_class: main, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
      - {id: walk, kind: no_parking, road_class: main, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
  - id: cam-b
    source: {url: b.mp4}
    zones:
      - {id: street, kind: no_vending, road_class: main, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
"""

LABEL_OF = {"vending_stall": "stall", "bicycle": "bike"}


def detections_jsonl(path: Path, camera_id: str, scene: Scene, extra_car: bool = False) -> None:
    with path.open("a", encoding="utf-8") as f:
        for t, det in render(scene):
            dets = [
                {
                    "label": LABEL_OF.get(str(OBJECT_KINDS[c]), str(OBJECT_KINDS[c])),
                    "xyxy": box,
                    "score": round(float(s), 3),
                }
                for box, s, c in zip(
                    det.xyxy.tolist(), det.confidence.tolist(), det.class_id.tolist(), strict=True
                )
            ]
            if extra_car:
                dets.append({"label": "car", "xyxy": [0, 0, 50, 50], "score": 0.9})
            f.write(
                json.dumps({"camera_id": camera_id, "ts_s": t, "frame_wh": [1000, 1000], "detections": dets})
                + "\n"
            )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "cameras.yaml").write_text(CAMERAS_YAML, encoding="utf-8")
    return tmp_path


def test_replay_then_score(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dets = workdir / "dets.jsonl"
    detections_jsonl(
        dets,
        "cam-a",
        Scene(
            [Obj("vending_stall", STALL, 10, 250), Obj("bicycle", BIKE, 20, 250)],
            260,
            2.5,
            Noise(miss=0.2, seed=1),
        ),
        extra_car=True,
    )
    detections_jsonl(dets, "cam-b", Scene([Obj("vending_stall", STALL, 0, 60)], 100, 2.5))
    out = workdir / "out" / "events.jsonl"
    assert (
        main(
            [
                "rules-replay",
                "--cameras",
                str(workdir / "cameras.yaml"),
                "--detections",
                str(dets),
                "--out",
                str(out),
                "--tracker",
                "none",
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["event"] for line in lines} == {"opened", "updated"}  # sightings are internal
    opened = [line for line in lines if line["event"] == "opened"]
    assert sorted((o["camera_id"], o["kind"]) for o in opened) == [
        ("cam-a", "bike_misparking"),
        ("cam-a", "street_vending"),
    ]
    assert set(opened[0]) >= {
        "violation_id",
        "zone_id",
        "ts_s",
        "bbox_xyxy",
        "score",
        "gbt_code",
        "escalation",
    }
    assert "2 camera(s)" in capsys.readouterr().err

    truth_a = {
        "scenario": "a", "camera_id": "cam-a", "duration_s": 260, "fps": 2.5, "frame_wh": [1000, 1000], "must_not_alert": False,
        "violations": [
            {"kind": "street_vending", "zone_id": "street", "start_s": 10, "end_s": 250, "dwell_s": 180, "bbox_xyxy": list(STALL)},
            {"kind": "bike_misparking", "zone_id": "walk", "start_s": 20, "end_s": 250, "dwell_s": 120, "bbox_xyxy": list(BIKE)},
        ],
    }  # fmt: skip
    truth_b = {
        "scenario": "b",
        "camera_id": "cam-b",
        "duration_s": 100,
        "must_not_alert": True,
        "violations": [],
    }
    (workdir / "a.truth.json").write_text(json.dumps(truth_a))
    (workdir / "b.truth.json").write_text(json.dumps(truth_b))
    code = main(
        [
            "score-events",
            "--events",
            str(out),
            "--truth",
            str(workdir / "a.truth.json"),
            "--truth",
            str(workdir / "b.truth.json"),
            "--json",
        ]
    )
    assert code == 0
    score = json.loads(capsys.readouterr().out)
    assert (score["precision"], score["recall"], score["f1"], score["false_alarms_per_hour"]) == (
        1.0,
        1.0,
        1.0,
        0.0,
    )
    assert 120 <= score["median_delay_s"] <= 185
    assert score["must_not_alert_events"] == 0
    assert main(["score-events", "--events", str(out), "--truth", str(workdir / "a.truth.json")]) == 0
    assert "precision 1.000" in capsys.readouterr().out


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FRAME = {"camera_id": "cam-a", "ts_s": 0.0, "frame_wh": [1000, 1000], "detections": []}


@pytest.mark.parametrize(
    ("lines", "cameras_patch", "message"),
    [
        (None, None, "cannot read detections file .*no such file"),
        ([json.dumps(FRAME), json.dumps(FRAME), "{broken"], None, "dets.jsonl line 3: not valid JSON"),
        (
            [json.dumps({**FRAME, "camera_id": "cam-z"})],
            None,
            "line 1: camera 'cam-z' is not in .*cameras.yaml.*add it",
        ),
        (
            [json.dumps({**FRAME, "detections": [{"label": "dog", "xyxy": [0, 0, 5, 5], "score": 0.5}]})],
            None,
            "label 'dog'.*class_map",
        ),
        (
            [json.dumps({**FRAME, "ts_s": 5.0}), json.dumps({**FRAME, "ts_s": 4.0})],
            None,
            "line 2: .*earlier.*sort the file by ts_s",
        ),
        (
            [json.dumps(FRAME)],
            ("[0, 0.5], [1, 0.5], [1, 1], [0, 1]", "[0, 0.5], [1, 1], [1, 0.6], [0, 1]"),
            "zones\\[walk\\].*self-intersects.*in order",
        ),
        ([json.dumps(FRAME)], ("kind: no_parking", "kind: no_smoking"), "zones\\[walk\\].kind"),
    ],
)
def test_bad_input_is_one_clear_error_and_exit_2(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    lines: list[str] | None,
    cameras_patch: tuple[str, str] | None,
    message: str,
) -> None:
    if cameras_patch:
        cams = workdir / "cameras.yaml"
        cams.write_text(cams.read_text().replace(*cameras_patch))
    dets = workdir / "dets.jsonl"
    if lines is not None:
        write_lines(dets, lines)
    out = workdir / "events.jsonl"
    code = main(
        [
            "rules-replay",
            "--cameras",
            str(workdir / "cameras.yaml"),
            "--detections",
            str(dets),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not out.exists()  # no half-written events file


def test_score_events_bad_input_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "score-events",
            "--events",
            str(workdir / "none.jsonl"),
            "--truth",
            str(workdir / "none.json"),
            "--json",
        ]
    )
    assert code == 2
    assert "cannot read events file" in capsys.readouterr().err


def test_commands_are_registered_with_the_console_script(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", "rules-replay", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0 and "--detections" in result.stdout


def docs_example() -> dict:
    text = (ROOT / "docs" / "cameras.md").read_text(encoding="utf-8")
    section = text.split("## Full example", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "docs/cameras.md must keep a ```yaml block under '## Full example'"
    return yaml.safe_load(block.group(1))


def test_the_documented_example_parses_and_covers_the_format(tmp_path: Path) -> None:
    raw = docs_example()
    cams = parse_cameras(raw, origin="docs/cameras.md")
    assert len(cams.cameras) == 2
    zones = [z for c in cams.cameras for z in c.zones]
    assert {z.kind for z in zones} == set(ZoneKind)  # every zone kind is shown
    assert any(
        w.split("-")[0] > w.split("-")[1] for z in zones if z.schedule for w in z.schedule.windows
    )  # overnight
    assert any(z.kind == ZoneKind.ALLOWED_VENDING and z.schedule for z in zones)  # a night market
    assert cams.model.class_map and "rules" in raw
    # and it loads from a file the way operators use it
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert load_cameras(path) == cams
