"""How big a ``urbaneye bench`` run is: clips, frames, trial windows and budgets, as one value.

``FULL`` is the documented run, ``QUICK`` the smoke run (``--quick``); tests build tiny plans (short
scenes at thumbnail size) to run every section end to end in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tools.bench_clips import MAIN_WH, SCENARIOS_DIR, SUBSTREAM_WH, ClipSpec


@dataclass(frozen=True)
class BenchPlan:
    """Attributes:
    scene / scene_render_wh: the scenario the camera clips are cut from (people walking all the time).
    clip_s / clip_start_s: the camera clips' length and where they start in the scene.
    main_wh / substream_wh: the two camera kinds of the pipeline section.
    evidence_scene / evidence_render_wh: a scenario that opens a violation, for the evidence cost.
    detector_frames / layout_frames: detector calls per contender / per layout process.
    trial_windows_s: (warm-up, measured) seconds of one pipeline trial.
    max_trials / pipeline_budget_s: bounds of all the ceiling searches together (trials per search;
        seconds shared by the searches).
    guess_from_stages: start each ceiling search at the stage split's guess (else at 2 cameras).
    gating_quick: the motion-gating section's two-scenario version.
    """

    scene: Path = SCENARIOS_DIR / "passers_by.yaml"
    scene_render_wh: tuple[int, int] = (960, 540)
    clip_s: float = 20.0
    clip_start_s: float = 20.0
    main_wh: tuple[int, int] = MAIN_WH
    substream_wh: tuple[int, int] = SUBSTREAM_WH
    evidence_scene: Path = SCENARIOS_DIR / "garbage_dropped.yaml"
    evidence_render_wh: tuple[int, int] = (960, 540)
    detector_frames: int = 60
    layout_frames: int = 40
    trial_windows_s: tuple[float, float] = (2.0, 4.0)
    max_trials: int = 6
    pipeline_budget_s: float = 300.0
    guess_from_stages: bool = True
    gating_quick: bool = False

    def clip(self, wh: tuple[int, int]) -> ClipSpec:
        return ClipSpec(self.scene, self.scene_render_wh, self.clip_s, self.clip_start_s, wh)

    def with_budget(self, pipeline_budget_s: float | None) -> BenchPlan:
        return self if pipeline_budget_s is None else replace(self, pipeline_budget_s=pipeline_budget_s)


FULL = BenchPlan()
QUICK = BenchPlan(
    detector_frames=20,
    layout_frames=20,
    trial_windows_s=(1.5, 3.0),
    max_trials=3,
    pipeline_budget_s=60.0,
    guess_from_stages=False,
    gating_quick=True,
)
