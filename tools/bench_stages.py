"""Where a camera's time goes: decode, detect, rules and evidence, in CPU-seconds per camera-second.

``profile_stages`` runs one camera's clip through the worker's own parts in this process, one thread, no
pacing: ``streams.sources.VideoSource`` (grab every frame, retrieve the sampled ones),
``streams.capture.Sampler`` and ``streams.camera.CameraProcessor`` (motion gate -> detector -> tracker ->
zones -> rules). Each stage's wall time is divided by the clip's seconds: 0.25 means one core runs that
stage for four cameras.

The pipeline clip (people walking) opens no violation, so ``evidence_cost`` measures evidence apart: it
replays a violation scenario (a bag of garbage dropped and left), keeps the events that render evidence
(sightings, openings, updates that ask for a frame), and renders each through the worker's
``streams.events.EvidenceKeeper`` on a 1920x1080 frame; for a sub-stream camera each event also opens the
1080p main-stream clip, seeks to the moment and decodes that frame first, as an on-demand evidence source
does. Evidence per camera-second = renders per scenario-second x the cost of one.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench_clips import MAIN_WH, scene_render
from vision.ort_tuning import SessionTuning


@dataclass
class StageClock:
    """Seconds spent per stage over ``video_s`` seconds of one camera."""

    video_s: float = 0.0
    decode_s: float = 0.0
    detect_s: float = 0.0
    process_s: float = 0.0  # CameraProcessor.process, detect included
    detector_calls: int = 0
    frames_sampled: int = 0

    def per_camera_second(self, evidence_s: float = 0.0) -> dict[str, float]:
        """CPU-seconds per camera-second of each stage (``evidence_s`` from ``evidence_cost``) and the total."""
        span = max(self.video_s, 1e-9)
        split = {
            "decode": self.decode_s / span,
            "detect": self.detect_s / span,
            "rules": max(self.process_s - self.detect_s, 0.0) / span,
            "evidence": evidence_s,
        }
        split["total"] = sum(split.values())
        return {k: round(v, 4) for k, v in split.items()}


class _TimedDetector:
    def __init__(self, detector: Any, clock: StageClock) -> None:
        self.detector, self.clock = detector, clock
        self.version = detector.version

    def detect(self, frame: np.ndarray) -> Any:
        t0 = time.perf_counter()
        try:
            return self.detector.detect(frame)
        finally:
            self.clock.detect_s += time.perf_counter() - t0
            self.clock.detector_calls += 1


class _DiscardHandoff:
    def submit(self, event: Any, frames: list, context: Any) -> str:
        return event.violation_id


def profile_stages(
    clip: Path, model: Path, cameras_path: Path, *, detect_fps: float = 5.0, evidence_s: float = 0.0
) -> dict[str, Any]:
    """Run ``clip`` once through one camera's pipeline (the first camera of ``cameras_path``, its zones and
    rules): decode, detect and rules per camera-second."""
    from streams.camera import CameraProcessor
    from streams.capture import SampledFrame, Sampler
    from streams.sources import VideoSource
    from vision.config import SourceConfig, load_cameras
    from vision.detector import OnnxDetector

    cameras_file = load_cameras(cameras_path)
    camera = cameras_file.cameras[0].model_copy(update={"detect_fps": detect_fps})
    clock = StageClock()
    detector = OnnxDetector(model, cameras_file.model, tuning=SessionTuning(1), adapt=False)
    processor = CameraProcessor(
        camera, cameras_file.rules, _TimedDetector(detector, clock), gating=True, live=False
    )
    source = VideoSource(SourceConfig(url=str(clip)), decode_threads=1)
    source.open()
    sampler = Sampler(detect_fps)
    origin = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        while True:
            t0 = time.perf_counter()
            if not source.grab():
                break
            pos_s = source.position_s()
            image = source.retrieve() if sampler.due(pos_s) else None
            clock.decode_s += time.perf_counter() - t0
            clock.video_s = pos_s
            if image is None:
                continue
            frame = SampledFrame(
                camera_id=camera.id,
                image=image,
                ts_s=pos_s,
                live=False,
                frame_time=origin + dt.timedelta(seconds=pos_s),
                captured_mono=time.monotonic(),
                seq=clock.frames_sampled,
                fresh=clock.frames_sampled == 0,
            )
            clock.frames_sampled += 1
            t0 = time.perf_counter()
            processor.process(frame)
            clock.process_s += time.perf_counter() - t0
    finally:
        source.close()
    clock.video_s += 1.0 / 25.0  # the last frame's own duration
    return {
        "clip": clip.name,
        "model": model.name,
        "video_s": round(clock.video_s, 2),
        "frames_sampled": clock.frames_sampled,
        "detector_calls": clock.detector_calls,
        "cpu_s_per_camera_s": clock.per_camera_second(evidence_s),
    }


#: Share of the cores a trial's cameras get in practice (two processes, their threads, the OS, other jobs):
#: the first guess should usually keep up, so the search grows from there instead of bisecting down.
GUESS_CORE_SHARE = 0.7


def guess_cameras(split: dict[str, float], cores: int) -> int:
    """A first guess for the ceiling search: cameras that ``GUESS_CORE_SHARE`` of ``cores`` carry at the
    stage split's CPU-seconds per camera-second."""
    return max(1, int(GUESS_CORE_SHARE * cores / max(split["total"], 1e-6)))


# ------------------------------------------------------------------------------------------ evidence
class _Recorder:
    """An event sink that keeps the events which render evidence, with their frame and detections."""

    def __init__(self) -> None:
        self.kept: list[tuple[Any, Any, Any, str]] = []

    def put(self, event: Any, frame: Any, detections: Any, model_version: str) -> None:
        from vision.types import EventKind

        renders = event.event in (EventKind.SIGHTING, EventKind.OPENED) or (
            event.event == EventKind.UPDATED and event.evidence_request
        )
        if renders:
            self.kept.append((event, frame, detections, model_version))


def _scaled(event: Any, frame: Any, detections: Any, wh: tuple[int, int]) -> tuple[Any, Any, Any]:
    """The event, frame and detections at main-stream size ``wh`` (upscaled: the cost is what counts)."""
    import cv2

    sx, sy = wh[0] / frame.wh[0], wh[1] / frame.wh[1]
    scale = np.array([sx, sy, sx, sy], np.float32)
    image = cv2.resize(frame.image, wh, interpolation=cv2.INTER_LINEAR)
    bbox = tuple(float(v) for v in np.asarray(event.bbox_xyxy, np.float32) * scale)
    return (
        replace(event, bbox_xyxy=bbox),
        replace(frame, image=image),
        replace(detections, xyxy=detections.xyxy * scale),
    )


def _duration_s(clip: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    try:
        return float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) / float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    finally:
        cap.release()


def _main_stream_frame(main_clip: Path, ts_s: float) -> np.ndarray | None:
    import cv2

    cap = cv2.VideoCapture(str(main_clip))
    try:
        cap.set(cv2.CAP_PROP_POS_MSEC, ts_s * 1000.0)
        ok, image = cap.read()
    finally:
        cap.release()
    return image if ok else None


def evidence_cost(
    model: Path,
    scene: Path,
    render_wh: tuple[int, int],
    main_clip: Path,
    main_wh: tuple[int, int] = MAIN_WH,
    max_renders: int = 6,
) -> dict[str, Any]:
    """Evidence CPU-seconds per camera-second of a camera watching ``scene`` (a scenario that opens a
    violation): 1080p camera, and sub-stream camera whose evidence frames come from ``main_clip``."""
    from streams.events import EvidenceKeeper
    from streams.replay import replay_video
    from vision.config import load_cameras
    from vision.detector import OnnxDetector

    video, _, cameras_path = scene_render(scene, render_wh)
    cameras_file = load_cameras(cameras_path)
    camera = cameras_file.cameras[0]
    detector = OnnxDetector(model, cameras_file.model, tuning=SessionTuning(1), adapt=False)
    recorder = _Recorder()
    stats = replay_video(camera, cameras_file.rules, video, detector, lambda e: None, sink=recorder)
    keeper = EvidenceKeeper({camera.id: camera}, _DiscardHandoff())
    sample = recorder.kept[:max_renders]
    main_s = max(_duration_s(main_clip) - 1.0, 0.5)
    render_s = grab_s = 0.0
    for event, frame, detections, version in sample:
        event, frame, detections = _scaled(event, frame, detections, main_wh)
        t0 = time.perf_counter()
        keeper.handle(event, frame, detections, version)
        render_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        _main_stream_frame(main_clip, frame.ts_s % main_s)  # the main clip is shorter than the scenario
        grab_s += time.perf_counter() - t0
    if keeper.failed:
        raise RuntimeError(
            f"evidence rendering failed for {keeper.failed} of {len(sample)} events (see the log)"
        )
    n = max(len(sample), 1)
    per_s = len(recorder.kept) / max(stats.video_s, 1e-9)
    return {
        "scenario": scene.stem,
        "renders": len(recorder.kept),
        "renders_per_camera_s": round(per_s, 4),
        "main_wh": list(main_wh),
        "render_ms": round(1000 * render_s / n, 1),
        "main_stream_frame_ms": round(1000 * grab_s / n, 1),
        "main_s_per_camera_s": round(per_s * render_s / n, 5),
        "substream_s_per_camera_s": round(per_s * (render_s + grab_s) / n, 5),
    }
