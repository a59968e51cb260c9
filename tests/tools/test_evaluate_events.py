"""``urbaneye eval-events``: render (cached), replay with a model, score against the scenario truth."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import yaml

from tests.streams.helpers import OracleAnchor, build_change_oracle
from urbaneye.cli import main

SIZE = (320, 180)


def short_scenarios(folder: Path) -> None:
    """Two 40 s versions of the garbage scenario: a bag put down at 2 s (60 s dwell → 15 s), and none."""
    src = Path(__file__).resolve().parents[2] / "datasets" / "scenarios" / "garbage_dropped.yaml"
    base = yaml.safe_load(src.read_text(encoding="utf-8"))
    base["duration_s"] = 40
    bag = next(a for a in base["actors"] if a["kind"] == "garbage")
    camera = base["cameras"]["cameras"][0]
    for zone in camera["zones"]:
        if "exposed_garbage" in zone.get("dwell_s", {}):
            zone["dwell_s"]["exposed_garbage"] = 15
    # The bag is ~0.5 % of this 320x180 frame and changes ~0.2 % of its pixels when it lands: a camera
    # watching for far-away garbage lowers min_area_ratio (else only the periodic scan finds it, late).
    camera["motion"] = {"min_area_ratio": 0.0005}
    dropped = {**base, "actors": [{**bag, "arrive_s": 2}]}
    quiet = {**base, "name": "garbage_none", "must_not_alert": True, "actors": []}
    quiet["cameras"] = {**base["cameras"], "cameras": [{**base["cameras"]["cameras"][0], "id": "scn-quiet"}]}
    for name, doc in (("bag", dropped), ("quiet", quiet)):
        (folder / f"{name}.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )


def test_eval_events_scores_a_detected_pile_and_a_quiet_street(
    tmp_path: Path, settings_env: object, capsys: pytest.CaptureFixture
) -> None:
    from tools.evaluate_events import render_cached

    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    short_scenarios(scenarios)
    cache = tmp_path / "var" / "eval-renders"  # settings_env points data_dir at tmp_path/var
    video, truth_path, _ = render_cached(scenarios / "bag.yaml", 3, cache, size=SIZE)
    truth = json.loads(truth_path.read_text())
    assert [v["kind"] for v in truth["violations"]] == ["exposed_garbage"]
    box = tuple(round(v) for v in truth["violations"][0]["bbox_xyxy"])
    cap = cv2.VideoCapture(str(video))
    ok, empty_street = cap.read()  # t=0: the bag arrives at 2 s
    cap.release()
    assert ok
    model = build_change_oracle(tmp_path / "oracle.onnx", [OracleAnchor(box, "garbage")], empty_street)
    mtime = video.stat().st_mtime_ns

    argv = ["eval-events", "--scenarios", str(scenarios), "--seed", "3", "--model", str(model), "--json"]
    assert main([*argv, "--size", f"{SIZE[0]}x{SIZE[1]}"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert video.stat().st_mtime_ns == mtime  # the cached render was reused
    bag, quiet = result["scenarios"]["bag"], result["scenarios"]["quiet"]
    assert (bag["true_positives"], bag["false_positives"], bag["false_negatives"]) == (1, 0, 0)
    assert bag["recall"] == bag["precision"] == 1.0
    # opened at the dwell crossing (truth start + 15 s), not a scan interval later
    assert 15 <= bag["median_delay_s"] <= 18
    assert (quiet["events"], quiet["false_alarms_per_hour"], quiet["must_not_alert_events"]) == (0, 0.0, 0)
    overall = result["overall"]
    assert (overall["precision"], overall["recall"], overall["truths"], overall["events"]) == (1.0, 1.0, 1, 1)
    assert result["model_version"].startswith("change-oracle-") and result["seed"] == 3
    assert bag["detector_calls"] < bag["frames_sampled"] / 3  # a still street: motion gating at work
    events = [json.loads(x) for x in video.with_name(video.stem + ".events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events][:1] == ["opened"]

    # Gating changes cost, not results: the same violation opens at the same moment without it.
    assert main([*argv, "--size", f"{SIZE[0]}x{SIZE[1]}", "--no-motion-gating"]) == 0
    ungated = json.loads(capsys.readouterr().out)
    assert ungated["overall"] == overall
    assert ungated["scenarios"]["bag"]["detector_calls"] >= 5 * bag["detector_calls"]
