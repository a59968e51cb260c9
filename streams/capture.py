"""Capture: one thread per camera reads its source and hands frames to processing through a buffer.

Capture and processing are separate, like Frigate: a capture thread per camera reads the source at its
own pace, keeps only the frames the detect rate needs (``grab`` skips colour conversion of the rest) and
hands them over through a small ``FrameBuffer`` that drops the oldest frame when the processor is
behind. A failed source reconnects with a jittered exponential backoff.
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
from zoneinfo import ZoneInfo

import numpy as np

from streams.sources import SourceError, SourceKind, StreamInfo, VideoSource, mask_url
from streams.status import CameraHealth
from vision.config import CameraConfig

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
