"""``urbaneye bench``: one JSON object measured in one run on the same frames and models.

Sections (``--sections``; default ``detector,pipeline,motion_gating``):

- ``detector`` (``tools.bench_detector``): our detector (pre + inference + post) vs bare ``session.run`` on
  a prepared tensor vs ultralytics' own predict on the same model as .onnx and .pt, fp32 vs the int8
  variant next to the model (``M.int8.onnx``), and the session layouts (processes x threads, spinning,
  execution mode).
- ``pipeline`` (``tools.bench_pipeline``, ``tools.bench_stages``): for 1080p main-stream cameras and
  640x360 sub-stream cameras, fp32 and int8, where one camera's time goes (decode, detect, rules, evidence
  per camera-second) and how many cameras the machine keeps in real time at 5 detect-fps (a ceiling search
  that starts from the stage split's guess, no fixed cap).
- ``motion_gating``, ``static_objects``, ``config_poll`` (``tools.bench_misc``).
- ``live_queue`` (``tools.bench_live``): seconds from a new pending case's commit to the ``queue`` event of
  an open review screen's live feed that counts it, against the API served for real (target: p95 ≤ 3 s).

``--background-load N`` runs N busy-loop processes (``tools.bench_load``) beside a second pass of the
detector, pipeline and live_queue sections: their figures are reported twice, unloaded and under ``loaded``.
The load average before and after the run is in the result: on a shared machine every figure is partly
loaded.

Clips come from the scenario renderer (cached under ``var/bench``); the camera clips are the busiest
scenario scaled to 1920x1080 and 640x360 and re-timed to 25 fps with ffmpeg (H.264, GOP 50, no B-frames,
like an IP camera), so motion gating rarely spares the detector there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools import bench_clips
from tools.bench_clips import camera_clip, first_frame, int8_model_path, scene_render
from tools.bench_detector import bench_detector, bench_layouts, default_layouts, layout_summary, ratios
from tools.bench_live import bench_live_queue
from tools.bench_load import BackgroundLoad, LoadAverage
from tools.bench_misc import bench_config_poll, bench_motion_gating, bench_static_objects
from tools.bench_pipeline import DETECT_FPS, bench_ceiling
from tools.bench_plan import FULL, QUICK, BenchPlan
from tools.bench_sections import DEFAULT_SECTIONS, SECTIONS
from tools.bench_stages import evidence_cost, guess_cameras, profile_stages
from urbaneye.model_card import ModelCard, int8_card_path

log = logging.getLogger(__name__)


def _cores() -> int:
    return min(os.cpu_count() or 1, 2)  # the documented box: 2 cores


def int8_map50_delta(int8: Path) -> tuple[float | None, str]:
    """int8 mAP50 minus its fp32 parent's on the held-out set (0..1 scale), as ``urbaneye quantize``
    measured it into the int8 model's card, and where the figure came from."""
    card_path = int8_card_path(int8)
    if not card_path.is_file():
        return None, f"no {card_path.name} beside {int8.name}: run urbaneye quantize with a held-out set"
    quantization = ModelCard.load(card_path).quantization
    if quantization is None or "map50_delta" not in quantization.accuracy:
        return None, f"{card_path.name} records no held-out accuracy: quantize again with a held-out set"
    return float(quantization.accuracy["map50_delta"]), f"{card_path.name} (urbaneye quantize, held-out set)"


# ------------------------------------------------------------------------------------------ detector
def detector_section(model: Path, plan: BenchPlan, load: int) -> dict[str, Any]:
    frame = first_frame(camera_clip(plan.clip(plan.main_wh)))
    cores = _cores()
    int8 = int8_model_path(model)
    layouts = default_layouts(cores)
    out = bench_detector(model, frame, plan.detector_frames, cores, int8)
    out["layout"] = layout_summary(bench_layouts(model, frame, plan.layout_frames, layouts), cores)
    delta, source = int8_map50_delta(int8) if int8 else (None, "no int8 model next to the model")
    out["int8_map50_delta"], out["int8_map50_source"] = delta, source
    if load:
        with BackgroundLoad(load):
            loaded = bench_detector(model, frame, plan.detector_frames, cores, int8)
            loaded["layout"] = layout_summary(bench_layouts(model, frame, plan.layout_frames, layouts), cores)
        out["loaded"] = {
            "background_load": load,
            **ratios(loaded),
            "int8_map50_delta": delta,
            "ours_stage_ms": loaded["ours_stage_ms"],
            "layout": loaded["layout"],
        }
    return out


# ------------------------------------------------------------------------------------------ pipeline
def _configs(model: Path, plan: BenchPlan) -> list[tuple[str, Path, Path]]:
    """(name, detection clip, model) of each camera kind and precision the pipeline measures."""
    main, sub = camera_clip(plan.clip(plan.main_wh)), camera_clip(plan.clip(plan.substream_wh))
    precisions = [("fp32", model)]
    int8 = int8_model_path(model)
    if int8:
        precisions.append(("int8", int8))
    out = []
    for precision, path in precisions:
        out.append((f"main_{precision}", main, path))
        out.append((f"substream_{precision}", sub, path))
    return out


def _headline_precision(configs: list[tuple[str, Path, Path]]) -> str:
    return "int8" if any(name.endswith("_int8") for name, _, _ in configs) else "fp32"


def _headline(by_config: dict[str, dict[str, Any]], key: str = "cameras_realtime") -> dict[str, Any]:
    """The figures of the targets: int8 where measured, else fp32."""
    pick = {
        kind: by_config.get(f"{kind}_int8") or by_config.get(f"{kind}_fp32") for kind in ("main", "substream")
    }
    return {
        "cameras_realtime": pick["main"][key] if pick["main"] else None,
        "cameras_realtime_substream": pick["substream"][key] if pick["substream"] else None,
        "precision": "int8" if "main_int8" in by_config else "fp32",
    }


def pipeline_section(model: Path, plan: BenchPlan, load: int) -> dict[str, Any]:
    cores = _cores()
    configs = _configs(model, plan)
    # under load, the configurations of the headline precision (int8 when there is one): time is short
    loaded_configs = [c for c in configs if c[0].endswith(_headline_precision(configs))] if load else []
    searches_left = [len(configs) + len(loaded_configs)]
    deadline = time.monotonic() + plan.pipeline_budget_s

    def search(clip: Path, path: Path, guess: int) -> dict[str, Any]:
        # each search gets an even share of the time left: a quick one leaves more to the next
        budget_s = (deadline - time.monotonic()) / searches_left[0]
        searches_left[0] -= 1
        return bench_ceiling(
            clip, path, cores, guess=guess, windows_s=plan.trial_windows_s, budget_s=budget_s,
            max_trials=plan.max_trials,
        )  # fmt: skip

    main_clip = camera_clip(plan.clip(plan.main_wh))
    evidence = evidence_cost(model, plan.evidence_scene, plan.evidence_render_wh, main_clip, plan.main_wh)
    _, _, cameras_path = scene_render(plan.scene, plan.scene_render_wh)
    stages: dict[str, Any] = {}
    unloaded: dict[str, Any] = {}
    for name, clip, path in configs:
        evidence_s = evidence["substream_s_per_camera_s" if name.startswith("sub") else "main_s_per_camera_s"]
        stages[name] = profile_stages(clip, path, cameras_path, detect_fps=DETECT_FPS, evidence_s=evidence_s)
        split = stages[name]["cpu_s_per_camera_s"]
        unloaded[name] = search(clip, path, guess_cameras(split, cores) if plan.guess_from_stages else 2)
        log.info("pipeline %s: %s", name, unloaded[name])
    out: dict[str, Any] = {
        **_headline(unloaded),
        "cameras_realtime_fp32": unloaded["main_fp32"]["cameras_realtime"],
        "cameras_realtime_substream_fp32": unloaded["substream_fp32"]["cameras_realtime"],
        "substream_evidence": "trials detect on the 640x360 sub-stream only (the evidence_source runtime "
        "is not in this build); the stage split's evidence for sub-stream cameras counts a 1080p "
        "main-stream frame per evidence render (open, seek, decode, render)",
        "evidence": evidence,
        "frame_wh": {"main": list(plan.main_wh), "substream": list(plan.substream_wh)},
        "input_fps": 25,
        "detect_fps_target": DETECT_FPS,
        "processes": cores,
        "cpu_count": os.cpu_count(),
        "motion_gating": True,
        "stage_split": {name: s["cpu_s_per_camera_s"] for name, s in stages.items()},
        "stages": stages,
        "by_config": unloaded,
    }
    if load:
        loaded: dict[str, Any] = {}
        free = max(cores - load, 1) / cores
        with BackgroundLoad(load):
            for name, clip, path in loaded_configs:
                loaded[name] = search(clip, path, max(1, int(unloaded[name]["cameras_realtime"] * free)))
        out["loaded"] = {"background_load": load, **_headline(loaded), "by_config": loaded}
    return out


# ------------------------------------------------------------------------------------------ the run
def _timed(result: dict[str, Any], name: str, run: Callable[[], dict[str, Any]]) -> None:
    t0 = time.perf_counter()
    result[name] = run()
    result["section_s"][name] = round(time.perf_counter() - t0, 1)


def run_bench(
    model_path: str | None = None,
    quick: bool = False,
    sections: list[str] | None = None,
    background_load: int = 0,
    pipeline_budget_s: float | None = None,
    plan: BenchPlan | None = None,
) -> dict[str, Any]:
    """Run the named sections (default ``DEFAULT_SECTIONS``) at ``plan`` (default ``FULL``, ``QUICK`` with
    ``quick``); one JSON-ready dict."""
    sections = list(sections or DEFAULT_SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"urbaneye bench: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if background_load < 0:
        raise SystemExit("urbaneye bench: --background-load must be >= 0 processes")
    plan = (plan or (QUICK if quick else FULL)).with_budget(pipeline_budget_s)
    model = (
        bench_clips.model_path(model_path)
        if {"detector", "pipeline", "motion_gating"} & set(sections)
        else None
    )
    result: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "quick": quick,
        "background_load": background_load,
        "load_avg_before": LoadAverage.now().to_json(),
        "section_s": {},
    }
    t0 = time.perf_counter()
    if "detector" in sections:
        _timed(result, "detector", lambda: detector_section(model, plan, background_load))
    if "pipeline" in sections:
        _timed(result, "pipeline", lambda: pipeline_section(model, plan, background_load))
    if "motion_gating" in sections:
        _timed(result, "motion_gating", lambda: bench_motion_gating(model, plan.gating_quick))
    if "static_objects" in sections:
        _timed(result, "static_objects", lambda: bench_static_objects(quick))
    if "config_poll" in sections:
        _timed(result, "config_poll", _config_poll)
    if "live_queue" in sections:
        _timed(result, "live_queue", lambda: live_queue_section(quick, background_load))
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["load_avg_after"] = LoadAverage.now().to_json()
    return result


def _config_poll() -> dict[str, Any]:
    import tempfile

    url = os.environ.get("URBANEYE_BENCH_DATABASE_URL", "")
    with tempfile.TemporaryDirectory() as tmp:
        db_url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        return {"database": db_url.split(":", 1)[0], **bench_config_poll(db_url)}


def live_queue_section(quick: bool, load: int) -> dict[str, Any]:
    """``tools.bench_live`` on a fresh SQLite file (or ``URBANEYE_BENCH_DATABASE_URL``), and again with
    ``load`` busy processes running when ``load`` > 0."""
    import tempfile

    cases = 5 if quick else 20
    url = os.environ.get("URBANEYE_BENCH_DATABASE_URL", "")

    def measure() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            return bench_live_queue(url or f"sqlite:///{Path(tmp) / 'bench.db'}", cases=cases)

    out = measure()
    if load:
        with BackgroundLoad(load):
            loaded = measure()
        out["loaded"] = {"background_load": load, **loaded}
    return out
