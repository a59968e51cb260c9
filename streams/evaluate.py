"""``urbaneye eval-events``: render scenarios, replay them with a model, score the events against truth.

Renders are cached under ``settings.data_dir / "eval-renders"`` by a hash of the scenario file, the seed,
the render settings and the generator version, so a second evaluation only replays. Replays run in this
process with one detector per model config, exactly as ``urbaneye replay`` does.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

from streams.replay import replay_video
from urbaneye.settings import get_settings
from vision.config import ConfigError, load_cameras

log = logging.getLogger(__name__)

RENDER_FPS = 5.0
RENDER_SIZE = (960, 540)


def scenario_files(folder: Path) -> list[Path]:
    """Scenario YAML files in ``folder`` (sorted); anything that is not a scenario is skipped later."""
    if not folder.is_dir():
        raise ConfigError(f"--scenarios {folder} is not a folder of scenario .yaml files")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        raise ConfigError(f"--scenarios {folder} has no .yaml scenario files")
    return files


def render_cached(
    scenario: Path, seed: int, cache_dir: Path, fps: float = RENDER_FPS, size: tuple[int, int] = RENDER_SIZE
) -> tuple[Path, Path, Path]:
    """``(video, truth, cameras)`` of a scenario render, rendering only when not cached."""
    from datasets.synth.images import GENERATOR_VERSION
    from datasets.synth.video import output_paths, render_scenario

    h = hashlib.sha256(scenario.read_bytes())
    h.update(f"|{seed}|{fps}|{size[0]}x{size[1]}|{GENERATOR_VERSION}".encode())
    video = cache_dir / f"{scenario.stem}-s{seed}-{h.hexdigest()[:12]}.mp4"
    truth, cameras = output_paths(video)
    if not (video.is_file() and truth.is_file() and cameras.is_file()):
        t0 = time.perf_counter()
        render_scenario(scenario, video, seed, fps, size)
        log.info("rendered %s in %.1f s", video.name, time.perf_counter() - t0)
    return video, truth, cameras


def _summary(score: Any) -> dict[str, Any]:
    data = score.to_json()
    keys = (
        "precision",
        "recall",
        "f1",
        "median_delay_s",
        "false_alarms_per_hour",
        "true_positives",
        "false_positives",
        "false_negatives",
        "events",
        "truths",
        "must_not_alert_events",
        "per_kind",
    )
    return {k: data[k] for k in keys if k in data}


def eval_events(
    scenarios_dir: Path,
    seed: int = 0,
    *,
    model_path: str | None = None,
    gating: bool = True,
    cache_dir: Path | None = None,
    fps: float = RENDER_FPS,
    size: tuple[int, int] = RENDER_SIZE,
) -> dict[str, Any]:
    """Score every scenario in ``scenarios_dir``; returns ``{"overall": …, "scenarios": {name: …}, …}``."""
    from vision.detector import OnnxDetector
    from vision.scoring import load_truth, opened_events, score_events

    cache_dir = Path(cache_dir or get_settings().data_dir / "eval-renders")
    cache_dir.mkdir(parents=True, exist_ok=True)
    detectors: dict[str, Any] = {}
    truths, all_events, per_scenario = [], [], {}
    calls = frames = 0
    t0 = time.perf_counter()
    for scenario in scenario_files(Path(scenarios_dir)):
        video, truth_path, cameras_path = render_cached(scenario, seed, cache_dir, fps, size)
        truth = load_truth(truth_path)
        cameras_file = load_cameras(cameras_path)
        key = cameras_file.model.model_dump_json()
        if key not in detectors:
            detectors[key] = OnnxDetector(model_path or cameras_file.model.path, cameras_file.model)
        lines: list[dict[str, Any]] = []
        stats = replay_video(
            cameras_file.camera(truth.camera_id),
            cameras_file.rules,
            video,
            detectors[key],
            lambda e, out=lines: out.append(e.to_json()) if e.event != "sighting" else None,
            gating=gating,
        )
        events_path = video.with_suffix("").with_name(
            video.stem + f".events{'' if gating else '-ungated'}.jsonl"
        )
        events_path.write_text("".join(_jsonl(line) for line in lines), encoding="utf-8")
        events = opened_events(lines, origin=str(events_path))
        truths.append(truth)
        all_events.extend(events)
        calls += stats.detector_calls
        frames += stats.frames_sampled
        per_scenario[scenario.stem] = {
            **_summary(score_events(events, [truth])),
            "detector_calls": stats.detector_calls,
            "frames_sampled": stats.frames_sampled,
        }
    overall = _summary(score_events(all_events, truths))
    version = next(iter(detectors.values())).version if detectors else None
    return {
        "seed": seed,
        "model_version": version,
        "motion_gating": gating,
        "overall": overall,
        "scenarios": per_scenario,
        "detector_calls": calls,
        "frames_sampled": frames,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def _jsonl(obj: dict[str, Any]) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"
