"""Static-object detector on rendered scenario videos: a pile of boxes left by day is found once, at its
place; sweeping shadows, a cloud and a parked car's drifting shadow open nothing (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.evaluate_events import load_truth_json, render_cached, run_static, score_static

SCENARIOS = Path(__file__).resolve().parents[2] / "datasets" / "scenarios"
FPS = 5.0


@pytest.mark.parametrize(
    ("name", "found", "false"),
    [("static_cardboard_day", 1, 0), ("static_shadows", 0, 0)],
)
def test_static_scenario(tmp_path: Path, name: str, found: int, false: int) -> None:
    video, truth_path, _ = render_cached(SCENARIOS / f"{name}.yaml", 0, tmp_path, FPS, (960, 540))
    truth = load_truth_json(truth_path)
    # No person boxes: the walkers here never stop long enough to need them.
    score = score_static(run_static(video, FPS, []), truth)
    assert (score["true_positives"], score["false_positives"]) == (found, false), score
    assert score["false_negatives"] == 0
    for delay_s in score["delays_s"]:
        assert 20 <= delay_s <= 60
