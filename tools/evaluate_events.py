"""``urbaneye eval-events``: render scenarios, replay them with a model, score the events against truth.

Renders are cached under ``settings.data_dir / "eval-renders"`` by a hash of the scenario file, the seed,
the render settings and the generator version, so a second evaluation only replays. Replays run in this
process with one detector per model config, exactly as ``urbaneye replay`` does.

Every scenario is replayed twice: as files replay (static-object detector off; ``overall``,
``violation_suite_overall``, ``scenarios``) and as a live camera runs (static-object detector on, its
unknown_object regions merged into what the rules see; ``combined``). The static-object scenarios are also
scored for the static-object detector alone (``static_only``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

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
    baseline_truths, baseline_events = [], []
    static_per: dict[str, dict[str, Any]] = {}
    combined = CombinedRun()
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
        truth_doc = load_truth_json(truth_path)
        with_static = replay_events(cameras_file, truth.camera_id, video, detectors[key], gating, static=True)
        combined.add(scenario.stem, with_static, truth, truth_doc)
        if "unknown_objects" in truth_doc:  # a static-object scenario (suite: static_objects)
            version = "".join(c if c.isalnum() else "_" for c in str(detectors[key].version))
            cache = video.with_name(f"{video.stem}.persons-{version}.npz")
            persons = person_boxes(video, detectors[key], cache)
            static_per[scenario.stem] = score_static(run_static(video, fps, persons), truth_doc)
        else:
            baseline_truths.append(truth)
            baseline_events.extend(events)
    overall = _summary(score_events(all_events, truths))
    version = next(iter(detectors.values())).version if detectors else None
    return {
        "seed": seed,
        "model_version": version,
        "motion_gating": gating,
        "overall": overall,
        # The violation suite alone (without the static-object scenarios): comparable with earlier runs.
        "violation_suite_overall": _summary(score_events(baseline_events, baseline_truths)),
        "static_only": static_summary(static_per) if static_per else None,
        "combined": combined.summary(),
        "scenarios": per_scenario,
        "detector_calls": calls,
        "frames_sampled": frames,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def replay_events(
    cameras_file: Any, camera_id: str, video: Path, detector: Any, gating: bool, *, static: bool
) -> list[Any]:
    """The opened/updated/closed events of one replay (``static``: the static-object detector on)."""
    events: list[Any] = []
    camera = cameras_file.camera(camera_id)
    keep = lambda e: events.append(e) if e.event != "sighting" else None  # noqa: E731
    replay_video(camera, cameras_file.rules, video, detector, keep, gating=gating, static_objects=static)
    return events


@dataclasses.dataclass
class CombinedRun:
    """The model with the static-object detector on (as live cameras run): the violation suite scored as
    usual, the static-object scenarios against their unknown objects (any kind of event counts; how many of
    them are unclassified is reported)."""

    suite_events: list[Any] = dataclasses.field(default_factory=list)
    suite_truths: list[Any] = dataclasses.field(default_factory=list)
    static_per: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def add(self, name: str, events: list[Any], truth: Any, truth_doc: dict[str, Any]) -> None:
        from vision.scoring import opened_events

        if "unknown_objects" not in truth_doc:
            self.suite_truths.append(truth)
            self.suite_events.extend(opened_events([e.to_json() for e in events], origin=name))
            return
        first: dict[str, Any] = {}
        for e in events:
            if e.event == "opened":
                first.setdefault(e.violation_id, e)
        opened = list(first.values())
        as_static = [StaticEvent(e.first_seen_s, e.ts_s, e.bbox_xyxy, opened_s=e.ts_s) for e in opened]
        score = score_static(as_static, truth_doc)
        score["unclassified"] = sum(1 for e in opened if e.unclassified)
        score["kinds"] = sorted(str(e.kind) for e in opened)
        self.static_per[name] = score

    def summary(self) -> dict[str, Any]:
        from vision.scoring import score_events

        out: dict[str, Any] = {
            "violation_suite": _summary(score_events(self.suite_events, self.suite_truths))
        }
        if self.static_per:
            static = static_summary(self.static_per)
            static["unclassified"] = sum(s["unclassified"] for s in self.static_per.values())
            out["static_objects"] = static
        return out


def _jsonl(obj: dict[str, Any]) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------ static objects
#: A static region must be reported this long (allowing short gaps) before it counts as one event.
STATIC_CONFIRM_S = 5.0
#: A static event closes when its region has not been reported for this long.
STATIC_GAP_S = 10.0
#: A static event matches an unknown-object truth when the boxes overlap this much (IoU) ...
STATIC_MATCH_IOU = 0.3
#: ... and it opened after the object was left, at most this long after it went.
STATIC_LATE_S = 10.0


@dataclasses.dataclass
class StaticEvent:
    """One region the static-object detector kept reporting: opened after ``STATIC_CONFIRM_S``."""

    first_s: float
    last_s: float
    box_xyxy: tuple[float, float, float, float]
    opened_s: float | None = None


def static_events(reports: list[tuple[float, np.ndarray]]) -> list[StaticEvent]:
    """Opened events from the detector's per-frame boxes ``[(t_s, (n, 4) xyxy)]``: a minimal persistence
    check (the rules' dwell does the same for cases), boxes linked frame to frame by IoU."""
    from vision.geometry import box_iou

    live: list[StaticEvent] = []
    done: list[StaticEvent] = []
    for t_s, boxes in reports:
        for box in boxes:
            b = tuple(float(v) for v in box)
            match = max(live, key=lambda e: box_iou(e.box_xyxy, b), default=None)
            if match is not None and box_iou(match.box_xyxy, b) >= STATIC_MATCH_IOU:
                match.last_s, match.box_xyxy = t_s, b  # type: ignore[assignment]
            else:
                live.append(StaticEvent(t_s, t_s, b))  # type: ignore[arg-type]
        for e in live:
            if e.opened_s is None and e.last_s == t_s and t_s - e.first_s >= STATIC_CONFIRM_S:
                e.opened_s = t_s
        done += [e for e in live if t_s - e.last_s > STATIC_GAP_S]
        live = [e for e in live if t_s - e.last_s <= STATIC_GAP_S]
    return [e for e in done + live if e.opened_s is not None]


def score_static(events: list[StaticEvent], truth: dict[str, Any]) -> dict[str, Any]:
    """Match one scenario's static events to its ``unknown_objects`` truth (each truth at most once)."""
    from vision.geometry import box_iou

    objects = truth["unknown_objects"]
    matched: set[int] = set()
    tp_delays: list[float] = []
    fp = 0
    for e in sorted(events, key=lambda e: e.opened_s):  # type: ignore[arg-type, return-value]
        hit = None
        for i, o in enumerate(objects):
            if i in matched or not (o["start_s"] <= e.opened_s <= o["end_s"] + STATIC_LATE_S):  # type: ignore[operator]
                continue
            if box_iou(e.box_xyxy, o["bbox_xyxy"]) >= STATIC_MATCH_IOU:
                hit = i
                break
        if hit is None:
            fp += 1
        else:
            matched.add(hit)
            tp_delays.append(e.opened_s - objects[hit]["start_s"])  # type: ignore[operator]
    return {
        "true_positives": len(matched),
        "false_positives": fp,
        "false_negatives": len(objects) - len(matched),
        "truths": len(objects),
        "events": len(events),
        "delays_s": [round(d, 1) for d in tp_delays],
        "must_not_alert": bool(truth["must_not_alert"]),
    }


def person_boxes(video: Path, detector: Any, cache: Path) -> list[np.ndarray]:
    """The trained detector's person boxes in every frame of ``video`` (cached beside it)."""
    import cv2

    from vision.types import OBJECT_KINDS, ObjectKind

    if cache.is_file():
        with np.load(cache) as z:
            return [z[f"f{i}"] for i in range(len(z.files))]
    person = OBJECT_KINDS.index(ObjectKind.PERSON)
    out = []
    cap = cv2.VideoCapture(str(video))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            det = detector.detect(frame)
            out.append(det.xyxy[det.class_id == person])
    finally:
        cap.release()
    tmp = cache.with_suffix(".part.npz")
    np.savez_compressed(tmp, **{f"f{i}": b for i, b in enumerate(out)})
    tmp.replace(cache)
    return out


def run_static(video: Path, fps: float, persons: list[np.ndarray], config: Any = None) -> list[StaticEvent]:
    """Replay ``video`` through a fresh ``StaticObjectDetector`` (every frame, person boxes from the model)."""
    import cv2

    from vision.static_objects import StaticObjectDetector

    det = StaticObjectDetector(config)
    reports: list[tuple[float, np.ndarray]] = []
    cap = cv2.VideoCapture(str(video))
    try:
        k = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t_s = k / fps
            found = det.update(frame, t_s, persons[k] if k < len(persons) else None)
            reports.append((t_s, found.xyxy))
            k += 1
    finally:
        cap.release()
    return static_events(reports)


def static_summary(per_scenario: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``static_only``: precision/recall over the static-object scenarios, false alarms in the quiet ones."""
    tp = sum(s["true_positives"] for s in per_scenario.values())
    fp = sum(s["false_positives"] for s in per_scenario.values())
    fn = sum(s["false_negatives"] for s in per_scenario.values())
    delays = [d for s in per_scenario.values() for d in s["delays_s"]]
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "false_alarms": sum(s["events"] for s in per_scenario.values() if s["must_not_alert"]),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "median_open_delay_s": round(statistics.median(delays), 1) if delays else None,
        "scenarios": per_scenario,
    }


def load_truth_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
