"""eval-events 'combined': the model with the static-object detector on, as live cameras run (issue 14 item
5). A cardboard pile the model has no class for opens one unclassified exposed-garbage case at its place."""

from __future__ import annotations

from pathlib import Path

from tools.evaluate_events import CombinedRun, load_truth_json, render_cached, replay_events
from vision.config import load_cameras
from vision.detector import OnnxDetector
from vision.scoring import load_truth

SCENARIOS = Path(__file__).resolve().parents[2] / "datasets" / "scenarios"


def test_combined_finds_an_unknown_pile_as_an_unclassified_case(tmp_path: Path) -> None:
    video, truth_path, cameras_path = render_cached(SCENARIOS / "static_cardboard_day.yaml", 0, tmp_path)
    cameras_file, truth = load_cameras(cameras_path), load_truth(truth_path)
    detector = OnnxDetector(cameras_file.model.path, cameras_file.model)  # the shipped bootstrap model
    run = CombinedRun()
    events = replay_events(cameras_file, truth.camera_id, video, detector, True, static=True)
    run.add("static_cardboard_day", events, truth, load_truth_json(truth_path))
    score = run.summary()["static_objects"]
    assert (score["true_positives"], score["false_positives"], score["false_negatives"]) == (1, 0, 0), score
    assert score["unclassified"] == 1
    opened = [e for e in events if e.event == "opened"]
    assert [(str(e.kind), e.unclassified) for e in opened] == [("exposed_garbage", True)]
    # without the static-object detector (a replay of a file) the model alone opens nothing here
    assert [
        e for e in replay_events(cameras_file, truth.camera_id, video, detector, True, static=False)
    ] == []
