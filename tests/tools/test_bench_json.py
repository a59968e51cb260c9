"""``urbaneye bench --json --background-load 1``: every figure of issue 17 is in the JSON, on a tiny plan
(the shipped model, thumbnail-size clips cut from short scenes, one trial per search)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tools import bench
from tools.bench_clips import SCENARIOS_DIR
from tools.bench_detector import RATIO_KEYS
from tools.bench_plan import BenchPlan
from vision.detector import BOOTSTRAP_MODEL_PATH


def short_scene(folder: Path, name: str, duration_s: float, **changes: object) -> Path:
    doc = yaml.safe_load((SCENARIOS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    doc["duration_s"] = duration_s
    doc.update(changes)
    path = folder / f"{name}-short.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def tiny_plan(tmp_path: Path) -> BenchPlan:
    # the garbage scene made short (as in test_evaluate_events): a bag put down at 2 s, 15 s dwell
    garbage = yaml.safe_load((SCENARIOS_DIR / "garbage_dropped.yaml").read_text(encoding="utf-8"))
    bag = next(a for a in garbage["actors"] if a["kind"] == "garbage")
    camera = garbage["cameras"]["cameras"][0]
    for zone in camera["zones"]:
        if "exposed_garbage" in zone.get("dwell_s", {}):
            zone["dwell_s"]["exposed_garbage"] = 15
    return BenchPlan(
        scene=short_scene(tmp_path, "passers_by", 6),
        scene_render_wh=(320, 180),
        clip_s=4,
        clip_start_s=1,
        main_wh=(320, 180),
        substream_wh=(160, 90),
        evidence_scene=short_scene(
            tmp_path, "garbage_dropped", 40, actors=[{**bag, "arrive_s": 2}], cameras=garbage["cameras"]
        ),
        evidence_render_wh=(640, 360),
        detector_frames=5,
        layout_frames=5,
        trial_windows_s=(0.5, 1.0),
        max_trials=1,
        pipeline_budget_s=600,
        guess_from_stages=True,
        gating_quick=True,
    )


@pytest.mark.slow  # a whole bench run, small: ~1 min idle, several on a busy machine
def test_bench_json_has_every_figure_loaded_and_unloaded(
    settings_env, tiny_plan: BenchPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bench.BackgroundLoad] = []
    real_load = bench.BackgroundLoad

    def recording_load(processes: int) -> bench.BackgroundLoad:
        started.append(real_load(processes))
        return started[-1]

    monkeypatch.setattr(bench, "BackgroundLoad", recording_load)
    result = bench.run_bench(
        str(BOOTSTRAP_MODEL_PATH), sections=["detector", "pipeline"], background_load=1, plan=tiny_plan
    )
    json.dumps(result)  # JSON-ready
    assert result["background_load"] == 1 and len(result["load_avg_before"]) == 3
    assert len(started) == 2 and all(load.alive() == 0 and load.pids == [] for load in started)

    det = result["detector"]
    for key in ("fp32_fps", "int8_fps", "int8_over_fp32", "int8_map50_delta", "ours_over_raw"):
        assert key in det
    assert det["fp32_fps"] > 0 and det["ours_over_raw"] > 0
    if det["int8_model"]:  # the int8 variant beside the shipped model, once it ships
        assert det["int8_fps"] > 0 and det["int8_over_fp32"] > 0 and det["loaded"]["int8_over_fp32"] > 0
        assert "main_int8" in result["pipeline"]["stage_split"]
    assert det["ours_over_ultralytics_pt"] > 0 and det["ours_over_ultralytics_onnx"] > 0
    assert det["loaded"]["background_load"] == 1
    assert set(RATIO_KEYS) <= set(det["loaded"])
    assert det["loaded"]["ours_fps"] > 0
    for layout in (det["layout"], det["loaded"]["layout"]):
        assert set(layout["fps"]) >= {"2p-1t-nospin-seq", "1p-2t-spin-seq", "1p-2t-nospin-seq"}
        assert layout["processes_over_threads"] > 0

    pipe = result["pipeline"]
    assert isinstance(pipe["cameras_realtime"], int) and isinstance(pipe["cameras_realtime_substream"], int)
    for name in ("main_fp32", "substream_fp32"):
        split = pipe["stage_split"][name]
        assert set(split) == {"decode", "detect", "rules", "evidence", "total"}
        assert split["decode"] > 0 and split["detect"] > 0 and split["total"] >= split["decode"]
        assert pipe["by_config"][name]["trials"]  # at least one trial ran
    assert pipe["evidence"]["renders"] > 0 and pipe["stage_split"]["main_fp32"]["evidence"] > 0
    assert pipe["loaded"]["background_load"] == 1
    assert isinstance(pipe["loaded"]["cameras_realtime"], int)
