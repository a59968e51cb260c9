"""``urbaneye replay``: the whole vision pipeline over video files, deterministic, no services.

Frames are read in order (no threads, no pacing); time is the video's own (frame timestamp, or index ÷
fps) plus the camera's ``start_time`` for schedules; frames are sampled at the camera's detect fps and go
through the same ``CameraProcessor`` (motion gate → detector → tracker → zones → rules) as a live worker.
Output: opened/updated/closed events as JSON lines.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.camera import CameraProcessor, Detector, EventSink
from streams.capture import SampledFrame, Sampler, file_origin
from streams.events import JsonlEventWriter
from streams.sources import SourceError, VideoSource
from vision.config import CameraConfig, CamerasFile, ConfigError, RulesConfig, SourceConfig
from vision.memory import MemoryBook, MemoryEntry
from vision.types import ViolationEvent

log = logging.getLogger(__name__)


@dataclass
class ReplayStats:
    camera_id: str
    video: str
    frames_read: int = 0
    frames_sampled: int = 0
    detector_calls: int = 0
    events: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    gate_reasons: dict[str, int] = field(default_factory=dict)
    error: str = ""  # why this video could not be (fully) replayed; the others go on

    def to_json(self) -> dict:
        return {
            "camera_id": self.camera_id,
            "video": self.video,
            "frames_read": self.frames_read,
            "frames_sampled": self.frames_sampled,
            "detector_calls": self.detector_calls,
            "events": self.events,
            "video_s": round(self.video_s, 3),
            "wall_s": round(self.wall_s, 3),
            "gate_reasons": dict(sorted(self.gate_reasons.items())),
            "error": self.error,
        }


def replay_video(
    camera: CameraConfig,
    rules: RulesConfig,
    video: str | Path,
    detector: Detector,
    on_event: Callable[[ViolationEvent], None],
    *,
    gating: bool = True,
    sink: EventSink | None = None,
    memory: MemoryBook | None = None,
    static_objects: bool | None = None,
) -> ReplayStats:
    """Run one camera's pipeline over one video file; ``on_event`` gets every event (sightings too).

    ``sink`` (e.g. a ``streams.events.HandoffQueue``) also receives each event with its frame, as in a
    worker: evidence rendering and the hand-off to cases, driven by video time. ``memory``: the camera's
    false-alarm memory (``vision.memory``; its times in video seconds), as a worker loads it.
    ``static_objects``: run the static-object detector (None = the camera's ``static_objects``, off for files).
    """
    stats = ReplayStats(camera.id, str(video))
    source = VideoSource(SourceConfig(url=str(video)), decode_threads=0)  # 0 = FFmpeg's choice: one file
    source.open()  # SourceError names the file and the fix
    origin = file_origin(camera) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    sampler = Sampler(camera.detect_fps)
    processor = CameraProcessor(
        camera, rules, detector, sink, gating=gating, live=False, memory=memory, static_objects=static_objects
    )
    t0 = time.perf_counter()
    try:
        while source.grab():
            stats.frames_read += 1
            pos_s = source.position_s()
            stats.video_s = pos_s
            if not sampler.due(pos_s):
                continue
            image = source.retrieve()
            if image is None:
                continue
            frame = SampledFrame(
                camera_id=camera.id,
                image=image,
                ts_s=pos_s,
                live=False,
                frame_time=(origin + dt.timedelta(seconds=pos_s)).astimezone(dt.UTC),
                captured_mono=time.monotonic(),
                seq=stats.frames_sampled,
                fresh=stats.frames_sampled == 0,
            )
            stats.frames_sampled += 1
            result = processor.process(frame)
            reason = str(result.decision.reason)
            stats.gate_reasons[reason] = stats.gate_reasons.get(reason, 0) + 1
            for event in result.events:
                on_event(event)
                stats.events += event.event != "sighting"
    finally:
        source.close()
    if stats.frames_read == 0:
        raise SourceError(f"video file {video} has no decodable frame (corrupt or truncated); re-encode it")
    stats.detector_calls = processor.detector_calls
    stats.wall_s = time.perf_counter() - t0
    return stats


def parse_video_args(items: list[str]) -> dict[str, Path]:
    """``["cam-1=a.mp4", ...]`` → ``{"cam-1": Path("a.mp4")}``."""
    videos: dict[str, Path] = {}
    for item in items:
        cam, sep, path = item.partition("=")
        if not sep or not cam or not path:
            raise ConfigError(f"--video {item!r} is not CAM_ID=PATH (e.g. --video cam-1=clips/cam-1.mp4)")
        if cam in videos:
            raise ConfigError(f"--video gives camera '{cam}' twice; give each camera one video")
        videos[cam] = Path(path)
    return videos


def replay(
    cameras_file: CamerasFile,
    videos: dict[str, Path],
    out: str | Path,
    detector: Detector,
    *,
    gating: bool = True,
    memory: dict[str, list[MemoryEntry]] | None = None,
) -> list[ReplayStats]:
    """Replay each camera's video in the order given; write opened/updated/closed lines to ``out``.

    ``memory``: false-alarm memory entries per camera id (``vision.memory.load_memory_file``).

    A video that cannot be opened or decoded, or that breaks part-way, is reported in its ``ReplayStats.error``
    (the events it produced before stay written) and the others are replayed all the same.
    """
    for cam_id in videos:
        cameras_file.camera(cam_id)  # ConfigError naming the known cameras
    writer = JsonlEventWriter(out)
    stats: list[ReplayStats] = []
    try:
        for cam_id, video in videos.items():
            camera = cameras_file.camera(cam_id)
            try:
                stats.append(
                    replay_video(
                        camera,
                        cameras_file.rules,
                        video,
                        detector,
                        writer.write,
                        gating=gating,
                        memory=MemoryBook((memory or {}).get(cam_id, [])),
                    )  # fmt: skip
                )
            except Exception as exc:  # one bad file must not cost the other cameras their replay
                log.error("replay %s: %s: %s", cam_id, video, exc)
                stats.append(ReplayStats(cam_id, str(video), error=f"{type(exc).__name__}: {exc}"))
                continue
            log.info("replay %s: %s", cam_id, stats[-1].to_json())
    finally:
        writer.close()
    return stats
