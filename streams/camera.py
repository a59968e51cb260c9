"""The per-camera loop: capture (thread) → bounded buffer → motion gate → detector → rules → events.

Capture and processing are separate, like Frigate: a capture thread per camera reads the source at its
own pace, keeps only the frames the detect rate needs (``grab`` skips colour conversion of the rest) and
hands them over through a two-slot ``FrameBuffer`` that drops the oldest frame when the processor is
behind. ``CameraProcessor`` runs on the worker's processing thread, which shares one detector (one ONNX
session) across all cameras of the process.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from streams.motion import GateDecision, MotionGate
from streams.sources import SourceError, SourceKind, StreamInfo, VideoSource, mask_url
from streams.status import CameraHealth
from vision.config import CameraConfig, RulesConfig
from vision.memory import MemoryBook
from vision.pipeline import CameraPipeline
from vision.types import Detections, ViolationEvent

log = logging.getLogger(__name__)

#: Reconnect backoff: 1 s, 2 s, 4 s … capped at 60 s (issue), each ±20 % jitter so cameras behind one
#: failed switch do not reconnect in lock-step.
BACKOFF_INITIAL_S = 1.0
BACKOFF_CAP_S = 60.0
BACKOFF_JITTER = 0.2
#: An open counts as working (and resets the backoff) only after this many frames (a short file: half
#: of what its header promises) and, for a file, this much video; a live source also after this long.
#: A corrupt file that decodes one frame and fails would otherwise reopen flat out (thousands of opens
#: a minute, each with its own FFmpeg errors on stderr); with the backoff, at most one per delay.
HEALTHY_OPEN_FRAMES = 10
HEALTHY_OPEN_VIDEO_S = 0.5
HEALTHY_LIVE_S = 10.0
#: Frames waiting per camera between capture and processing: 3 absorbs ~0.6 s of processing jitter at
#: 5 fps; beyond that the oldest frame is dropped (counted) rather than falling further behind.
BUFFER_FRAMES = 3


class Detector(Protocol):
    """What the per-camera loop needs from ``vision.detector.OnnxDetector``."""

    version: str

    def detect(self, frame_bgr: np.ndarray) -> Detections: ...


class Pipeline(Protocol):
    """What the per-camera loop needs from ``vision.pipeline.CameraPipeline``."""

    def step(
        self, detections: Detections, ts_s: float, frame_wh: tuple[int, int], *, fresh: bool = True
    ) -> list[ViolationEvent]: ...

    def wants_detection(self) -> bool: ...

    def rule_errors(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class SampledFrame:
    """One frame picked at the detect rate.

    Attributes:
        camera_id: which camera.
        image: BGR ``uint8 (h, w, 3)``.
        ts_s: stream time for the rules: video seconds since the camera's t=0 (files with a start_time,
            replay), else epoch seconds.
        live: True when ``ts_s`` is epoch seconds.
        frame_time: the wall-clock instant of the frame (UTC), for evidence file times.
        captured_mono: ``time.monotonic()`` when it was read (latency, not logic).
        seq: index among the camera's sampled frames since the capture started.
        fresh: first sampled frame after the source was (re)opened: motion history no longer applies.
    """

    camera_id: str
    image: np.ndarray
    ts_s: float
    live: bool
    frame_time: dt.datetime
    captured_mono: float
    seq: int
    fresh: bool = False

    @property
    def wh(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


class FrameBuffer:
    """Bounded hand-over between one capture thread and the processor; drops (and counts) the oldest.

    Example:
        >>> buf = FrameBuffer(maxlen=2)
        >>> [buf.put(i) for i in range(3)]
        [0, 0, 1]
        >>> buf.get_nowait(), buf.dropped
        (1, 1)
    """

    def __init__(self, maxlen: int = BUFFER_FRAMES, on_ready: Callable[[], None] | None = None) -> None:
        self._items: collections.deque = collections.deque()
        self.maxlen = maxlen
        self._lock = threading.Lock()
        self._on_ready = on_ready
        self.dropped = 0

    def put(self, item: object) -> int:
        """Add an item; returns how many old items were dropped to make room (0 or 1)."""
        with self._lock:
            dropped = 0
            while len(self._items) >= self.maxlen:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self.dropped += dropped
        if self._on_ready is not None:
            self._on_ready()
        return dropped

    def get_nowait(self):  # noqa: ANN201 - returns what was put
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class Backoff:
    """Exponential reconnect delays with jitter, capped.

    Example:
        >>> b = Backoff(initial_s=1, cap_s=8, jitter=0, rng=random.Random(0))
        >>> [b.next() for _ in range(5)]
        [1.0, 2.0, 4.0, 8.0, 8.0]
    """

    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        cap_s: float = BACKOFF_CAP_S,
        jitter: float = BACKOFF_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s, self.cap_s, self.jitter = initial_s, cap_s, jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        base = min(self.cap_s, self.initial_s * 2.0**self._attempt)
        self._attempt += 1
        return max(0.0, base * (1.0 + self._rng.uniform(-self.jitter, self.jitter)))

    def longest(self) -> float:
        """Jump to the cap (permanent errors: a bad file will not fix itself within seconds)."""
        self._attempt = 64
        return self.next()

    def reset(self) -> None:
        self._attempt = 0


class Sampler:
    """Picks frames at ``fps`` by stream time; never bursts to catch up after a gap.

    Example:
        >>> s = Sampler(5.0)
        >>> [round(i * 0.04, 2) for i in range(25) if s.due(i * 0.04)]
        [0.0, 0.2, 0.4, 0.6, 0.8]
    """

    def __init__(self, fps: float) -> None:
        self.period_s = 1.0 / fps
        self._next_s: float | None = None

    def due(self, ts_s: float) -> bool:
        # Half-a-millisecond slack: 0.2 s steps of a 25 fps clip land on 0.19999… in float arithmetic.
        if self._next_s is not None and ts_s < self._next_s - 5e-4:
            return False
        self._next_s = ts_s + self.period_s if self._next_s is None else self._next_s + self.period_s
        if self._next_s <= ts_s:  # a gap (stall, seek): restart the grid from here
            self._next_s = ts_s + self.period_s
        return True

    def reset(self) -> None:
        self._next_s = None


def file_origin(camera: CameraConfig) -> dt.datetime | None:
    """The aware wall-clock instant of a file's t=0 (``camera.start_time`` in the camera's zone)."""
    if camera.start_time is None:
        return None
    start = camera.start_time
    return start if start.tzinfo else start.replace(tzinfo=ZoneInfo(camera.timezone))


class CaptureThread(threading.Thread):
    """Keeps one camera's source open and feeds sampled frames into ``buffer``; never raises.

    Reconnects with exponential backoff; a file loops (demos) when ``source.loop``; ``realtime`` paces
    files at ``speed`` times their native rate (1.0: as a live camera would deliver them; the worker —
    replay does not use this class). A stale thread (the watchdog gave up on it while FFmpeg was stuck) exits quietly as soon
    as its blocking call returns.
    """

    def __init__(
        self,
        camera: CameraConfig,
        buffer: FrameBuffer,
        health: CameraHealth,
        *,
        realtime: bool = True,
        open_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        backoff: Backoff | None = None,
        speed: float = 1.0,
    ) -> None:
        super().__init__(name=f"capture-{camera.id}", daemon=True)
        if speed <= 0:
            raise ValueError(f"camera {camera.id}: playback speed {speed} must be > 0 (1.0 = native rate)")
        self.speed = speed
        self.camera = camera
        self.buffer = buffer
        self.health = health
        self.realtime = realtime
        kwargs = {}
        if open_timeout_s is not None:
            kwargs["open_timeout_s"] = open_timeout_s
        if read_timeout_s is not None:
            kwargs["read_timeout_s"] = read_timeout_s
        self.source = VideoSource(camera.source, **kwargs)
        self.backoff = backoff or Backoff()
        self._halt = threading.Event()
        self._sampler = Sampler(camera.detect_fps)
        self._seq = 0
        self._origin = file_origin(camera)
        self.last_progress_mono = time.monotonic()  # watchdog: updated on every grab attempt/sleep
        self.ended = False  # a file without loop reached its end: nothing to restart
        self.opens = 0  # successful opens (reopens included)
        self._healthy = False  # the current open has delivered enough to count as working

    # ------------------------------------------------------------ control
    def stop(self) -> None:
        self._halt.set()

    def set_detect_fps(self, fps: float) -> None:
        """Sample at a new rate from the next frame on (a ``detect_fps`` edit; no reconnect)."""
        self._sampler = Sampler(fps)

    @property
    def stopping(self) -> bool:
        return self._halt.is_set()

    # ------------------------------------------------------------ loop
    def run(self) -> None:
        label = f"camera {self.camera.id} ({self.source.label})"
        loop_offset_s = 0.0
        file_base_epoch: float | None = None  # files without start_time: epoch of the first open
        try:
            while not self._halt.is_set():
                self.last_progress_mono = time.monotonic()
                try:
                    info = self.source.open()
                except SourceError as exc:
                    self.health.disconnected(str(exc), reconnecting=False)
                    delay = self.backoff.longest() if exc.permanent else self.backoff.next()
                    log.warning("%s: %s; retrying in %.1f s", label, exc, delay)
                    self._sleep(delay)
                    continue
                self.opens += 1
                self.health.connected(info.fps)
                if file_base_epoch is None:
                    file_base_epoch = time.time()
                log.info("%s: opened %dx%d @ %.1f fps", label, info.width_px, info.height_px, info.fps or 0.0)
                outcome, last_pos_s, frames = self._read(info, loop_offset_s, file_base_epoch)
                self.source.close()
                if self._halt.is_set():
                    break
                if outcome == "eof" and info.kind is SourceKind.FILE:
                    if frames == 0:
                        msg = (
                            f"video file {self.camera.source.url} opened but no frame could be decoded "
                            "(corrupt or truncated); re-encode it"
                        )
                        self.health.disconnected(msg, reconnecting=False)
                        log.error("%s: %s", label, msg)
                        self._sleep(self.backoff.longest())
                        continue
                    if not self.camera.source.loop:
                        self.health.stopped("end of file")
                        log.info("%s: end of file", label)
                        self.ended = True
                        return
                    # Loop: keep stream time increasing so rules never see time run backwards.
                    frame_s = 1.0 / info.fps if info.fps else 0.04
                    loop_offset_s += last_pos_s + frame_s
                    if self._healthy:
                        self.backoff.reset()
                        continue
                    # Too few frames before the end: corrupt or truncated. Back off like any failure.
                    delay = self.backoff.next()
                    promised = f" of {info.frame_count}" if info.frame_count else ""
                    msg = (
                        f"video file {self.camera.source.url} decodes only {frames}{promised} frame(s) "
                        f"before failing (corrupt or truncated); re-encode it. Reopening in {delay:.0f} s"
                    )
                    self.health.unstable(msg)
                    log.warning("%s: %s", label, msg)
                    self._sleep(delay)
                    continue
                msg = f"lost {info.kind.value} stream ({outcome}); reconnecting"
                self.health.disconnected(msg, reconnecting=True)
                delay = self.backoff.next()
                log.warning("%s: %s in %.1f s", label, msg, delay)
                self._sleep(delay)
        except Exception as exc:  # one camera's bug must never take the worker down
            log.exception("%s: capture thread failed", label)
            self.health.stopped(f"capture failed: {mask_url(str(exc))}")
        finally:
            self.source.close()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._halt.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.last_progress_mono = time.monotonic()
            self._halt.wait(min(left, 0.5))

    @staticmethod
    def _open_is_healthy(info: StreamInfo, frames: int, pos_s: float, open_s: float) -> bool:
        """Enough frames since the open to call the source working (``HEALTHY_*``)."""
        if info.kind is SourceKind.FILE:
            needed = min(HEALTHY_OPEN_FRAMES, max(2, info.frame_count // 2))
            return frames >= needed and pos_s >= HEALTHY_OPEN_VIDEO_S
        return frames >= HEALTHY_OPEN_FRAMES or open_s >= HEALTHY_LIVE_S

    def _read(self, info: StreamInfo, loop_offset_s: float, base_epoch: float) -> tuple[str, float, int]:
        """Read until the stream ends or fails; returns (outcome, last video position s, frames grabbed)."""
        is_file = info.kind is SourceKind.FILE
        pace_anchor: float | None = None  # monotonic time of video position 0 (realtime files)
        pos_s = 0.0
        frames = 0
        sampled = 0
        opened_mono = time.monotonic()
        self._healthy = False
        while not self._halt.is_set():
            self.last_progress_mono = time.monotonic()
            if not self.source.grab():
                return ("eof" if is_file else "read failed or timed out"), pos_s, frames
            frames += 1
            now_mono = time.monotonic()
            if is_file:
                pos_s = self.source.position_s()
            if not self._healthy and self._open_is_healthy(info, frames, pos_s, now_mono - opened_mono):
                self._healthy = True
                self.backoff.reset()
                self.health.unstable("")
            if is_file:
                if self.realtime:
                    wall_s = pos_s / self.speed
                    if pace_anchor is None:
                        pace_anchor = now_mono - wall_s
                    wait_s = pace_anchor + wall_s - now_mono
                    if wait_s > 0:
                        self._halt.wait(wait_s)
                        now_mono = time.monotonic()
                    elif wait_s < -1.0:
                        pace_anchor = now_mono - wall_s  # decoding fell behind: don't burst to catch up
                stream_s = loop_offset_s + pos_s
                if self._origin is not None:
                    ts_s, live = stream_s, False
                    frame_time = self._origin + dt.timedelta(seconds=stream_s)
                else:
                    ts_s, live = base_epoch + stream_s, True
                    frame_time = dt.datetime.fromtimestamp(ts_s, dt.UTC)
            else:
                ts_s, live = time.time(), True
                frame_time = dt.datetime.fromtimestamp(ts_s, dt.UTC)
            self.health.frame_in(now_mono)
            if not self._sampler.due(ts_s):
                continue
            image = self.source.retrieve()
            if image is None:
                continue
            frame = SampledFrame(
                camera_id=self.camera.id,
                image=image,
                ts_s=ts_s,
                live=live,
                frame_time=frame_time.astimezone(dt.UTC),
                captured_mono=now_mono,
                seq=self._seq,
                fresh=sampled == 0,
            )
            self._seq += 1
            sampled += 1
            dropped = self.buffer.put(frame)
            if dropped:
                self.health.dropped(dropped)
        return "stopped", pos_s, frames


class EventSink(Protocol):
    """Receives each camera event with the frame and detections it came from."""

    def put(
        self, event: ViolationEvent, frame: SampledFrame, detections: Detections, model_version: str
    ) -> None: ...


#: Returns the detector to use for the next frame and its model version (hot reload swaps it).
DetectorSource = Callable[[], tuple[Detector, str]]
#: Returns the shadow model running on this camera, or None (``urbaneye.hot_reload.ModelWatcher.shadow``).
ShadowSource = Callable[[], tuple[Detector, str] | None]


def fixed_detector(detector: Detector) -> DetectorSource:
    version = str(getattr(detector, "version", "unknown"))
    return lambda: (detector, version)


@dataclass
class ProcessResult:
    decision: GateDecision
    detections: Detections
    events: list[ViolationEvent]
    inference_ms: float


class CameraProcessor:
    """Motion gate → detector → pipeline → event sink for one camera. One thread calls ``process``.

    When the gate skips a frame the rules still advance to its time with the last detections carried
    (see ``streams.motion``), so dwell keeps counting and a dwell crossing opens on time with the
    current frame as evidence.

    Args:
        camera / rules: the camera and the rule settings.
        detectors: a detector, or a ``DetectorSource`` giving ``(detector, model_version)`` per frame.
        sink: where events go (``HandoffQueue``), or None to only return them.
        gating: False detects every sampled frame (``--no-motion-gating``).
        live: stream times are epoch seconds (the rules' schedules then use them as wall clock).
    """

    def __init__(
        self,
        camera: CameraConfig,
        rules: RulesConfig,
        detectors: Detector | DetectorSource,
        sink: EventSink | None = None,
        *,
        gating: bool = True,
        live: bool = False,
        pipeline: Pipeline | None = None,
        health: CameraHealth | None = None,
        on_detect: Callable[[str, float], None] | None = None,
        escalation_history: dict[str, list[float]] | None = None,
        shadow: ShadowSource | None = None,
        on_shadow_opened: Callable[[str, ViolationEvent], None] | None = None,
        memory: MemoryBook | None = None,
    ) -> None:
        if pipeline is None:
            pipeline = CameraPipeline(camera, rules, escalation_history=escalation_history, live=live)
        self.camera = camera
        self.rules = rules
        self.live = live
        self.shadow = shadow
        self.on_shadow_opened = on_shadow_opened
        self._shadow_version: str | None = None
        self._shadow_pipeline: Pipeline | None = None
        self._shadow_carried = Detections.empty()
        self.detectors: DetectorSource = (
            fixed_detector(detectors) if hasattr(detectors, "detect") else detectors
        )
        self.sink = sink
        self.pipeline = pipeline
        #: false-alarm memory: detections matching a rejected object never reach the rules
        self.memory = memory
        self._kept = self._kept_of = Detections.empty()
        self.health = health
        self.on_detect = on_detect
        self.gating = gating
        self.gate = self._gate(camera)
        self._carried = Detections.empty()
        self._last_wh: tuple[int, int] | None = None
        self._last_ts_s: float | None = None
        self._pending: CameraConfig | None = None
        self._pending_timeline: bool | None = None  # live flag of a new timeline, None = same timeline
        self.detector_calls = 0
        self.frames = 0

    def _gate(self, camera: CameraConfig) -> MotionGate:
        motion = camera.motion if self.gating else camera.motion.model_copy(update={"enabled": False})
        return MotionGate(motion, grace_s=self.rules.grace_s, zones=[z.polygon for z in camera.zones])

    def reconfigure(self, camera: CameraConfig, *, new_timeline_live: bool | None = None) -> None:
        """Take a new config of this camera (zones, motion, time zone, names) at the next frame.

        Rule state carries over (``CameraPipeline.replace_camera``): violations in zones that still exist stay open
        with the same ids; those of removed zones close at the next frame. Source and detect-rate
        changes are the capture's business (``CaptureThread``), not the processor's.

        ``new_timeline_live``: the stream's clock starts over (another file with video time, or a switch
        between video and epoch seconds; True if the new stream times are epoch seconds). What the
        rules remember cannot carry over: every open violation closes (stamped with the old clock's
        last time) and the camera starts afresh, keeping its escalation history.
        """
        if camera.id != self.camera.id:
            raise ValueError(f"camera '{self.camera.id}' cannot take the config of camera '{camera.id}'")
        self._pending = camera
        if new_timeline_live is not None:
            self._pending_timeline = new_timeline_live

    def _start_new_timeline(self) -> list[ViolationEvent]:
        camera, live = self._pending, bool(self._pending_timeline)
        self._pending, self._pending_timeline = None, None
        assert camera is not None
        events: list[ViolationEvent] = []
        if isinstance(self.pipeline, CameraPipeline):
            book = self.pipeline.escalation
            if self._last_ts_s is not None:  # an empty zone set closes everything that is open
                events = self.pipeline.replace_camera(
                    self.camera.model_copy(update={"zones": []}), self._last_ts_s
                )
            self.pipeline = CameraPipeline(camera, self.rules, escalation_history=book, live=live)
        self.camera, self.live = camera, live
        self.gate = self._gate(camera)
        self._carried = Detections.empty()
        self._last_ts_s = None
        self._last_wh = None
        self._shadow_pipeline = None
        return events

    def _apply_pending(self, ts_s: float) -> list[ViolationEvent]:
        camera, self._pending = self._pending, None
        assert camera is not None
        old = self.camera
        events: list[ViolationEvent] = []
        if camera.zones != old.zones or camera.timezone != old.timezone:
            if isinstance(self.pipeline, CameraPipeline):
                events = self.pipeline.replace_camera(camera, ts_s)
            else:  # a pipeline we cannot re-index (tests pass their own): it keeps its zones
                log.warning("camera %s: pipeline %s keeps its zones", camera.id, type(self.pipeline).__name__)
        if camera.zones != old.zones or camera.motion != old.motion:
            # Motion only counts in and around zones; the new gate also detects the next frame afresh.
            self.gate = self._gate(camera)
        self.camera = camera
        self._shadow_pipeline = None  # rebuilt with the new zones at its next frame
        return events

    def process(self, frame: SampledFrame) -> ProcessResult:
        events = self._start_new_timeline() if self._pending_timeline is not None else []
        if frame.fresh or (self._last_wh is not None and frame.wh != self._last_wh):
            # Reopened (reconnect, file loop) or reconfigured: the background and the carried boxes
            # belong to another picture; detect this frame afresh.
            self.gate.reset()
            self._carried = Detections.empty()
        self._last_wh = frame.wh
        # Wall clocks can step back (NTP); the rules need time in order, so hold it at the last value.
        ts_s = frame.ts_s if self._last_ts_s is None else max(frame.ts_s, self._last_ts_s)
        self._last_ts_s = ts_s
        # A config edit lands between two frames: no frame is skipped, rule state carries over.
        if self._pending is not None:
            events += self._apply_pending(ts_s)
        decision = self.gate.decide(frame.image, ts_s, confirm=self.pipeline.wants_detection())
        detector, model_version = self.detectors()
        inference_ms = 0.0
        if decision.detect:
            t0 = time.perf_counter()
            detections = detector.detect(frame.image)
            inference_ms = (time.perf_counter() - t0) * 1000.0
            self._carried = detections
            self.detector_calls += 1
            if self.on_detect:
                self.on_detect(self.camera.id, inference_ms)
        else:
            detections = self._carried
        self.frames += 1
        if self.shadow is not None:
            self._step_shadow(frame, ts_s, decision.detect)
        events += self.pipeline.step(self._remembered(detections, frame, ts_s, decision.detect), ts_s, frame.wh,
                                     fresh=decision.detect)  # fmt: skip
        if self.health is not None:
            # a failing rule does not stop the camera; its status names the rule and the error
            failing = "; ".join(f"rule {k} failed: {e}" for k, e in self.pipeline.rule_errors().items())
            self.health.processed(decision.detect, error=failing)
        if self.sink is not None:
            for event in events:
                self.sink.put(event, frame, detections, model_version)
        return ProcessResult(decision, detections, events, inference_ms)

    def _remembered(
        self, detections: Detections, frame: SampledFrame, ts_s: float, detect: bool
    ) -> Detections:
        """Detections minus those the false-alarm memory recognises (``vision.memory.MemoryBook``); carried
        detections reuse the last decision, so a gated camera compares appearance once per detector run."""
        if self.memory is None or not len(self.memory):
            return detections
        if detect or self._kept_of is not detections:
            self._kept = self.memory.filter(detections, frame.image, ts_s)
            self._kept_of = detections
        return self._kept

    def _step_shadow(self, frame: SampledFrame, ts_s: float, detect: bool) -> None:
        """Run the shadow model's own pipeline on the same frames and gate decisions; count its openings.

        Its events never become cases: ``on_shadow_opened`` records would-be cases for the comparison.
        """
        shadow = self.shadow() if self.shadow else None
        if shadow is None:
            self._shadow_version, self._shadow_pipeline = None, None
            return
        detector, version = shadow
        if version != self._shadow_version or self._shadow_pipeline is None:
            self._shadow_pipeline = CameraPipeline(self.camera, self.rules, live=self.live)
            self._shadow_version = version
            self._shadow_carried = Detections.empty()
            detect = True
        if detect:
            self._shadow_carried = detector.detect(frame.image)
        for event in self._shadow_pipeline.step(self._shadow_carried, ts_s, frame.wh, fresh=detect):
            if event.event == "opened" and self.on_shadow_opened is not None:
                self.on_shadow_opened(version, event)
