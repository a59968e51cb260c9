"""The demo clips loop (issue 18 item 5): in every demo clip each violation ends, and the view stays clear
for longer than the rules' grace before the clip starts over, so each loop closes its violation and opens a
new one at the same place (new cases; yellow, then red escalation; "same place, earlier cases") instead of
extending one violation forever. Tiny renders (320x180 at 1 fps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.demo import DEMO_CAMERAS, DEMO_SCENARIOS
from datasets.synth.video import render_scenario
from vision.config import RulesConfig, load_cameras

DEMO = sorted(DEMO_SCENARIOS.glob("*.yaml"))


@pytest.mark.parametrize("path", DEMO, ids=[p.stem for p in DEMO])
def test_every_demo_violation_ends_before_the_clip_loops(path: Path, tmp_path: Path) -> None:
    result = render_scenario(path, tmp_path / f"{path.stem}.mp4", fps=1.0, size=(320, 180))
    violations = result.truth["violations"]
    assert violations, f"demo scenario {path.stem} makes no violation"
    clear_s = result.truth["duration_s"] - max(v["end_s"] for v in violations)
    assert clear_s > RulesConfig().grace_s + 5, (path.stem, clear_s)


def test_demo_camera_names_are_chinese_without_ids() -> None:
    for cam in load_cameras(DEMO_CAMERAS).cameras:
        assert cam.id not in cam.name and cam.id.replace("-", "_") not in cam.name
        assert all(not ch.isascii() or ch in " ·" for ch in cam.name), cam.name
