"""Evidence from a camera's main stream while detection runs on its sub-stream (Frigate's input roles).

A camera may detect on a small sub-stream (``source``, e.g. 640x360) and take its evidence from the main
stream (``evidence_source``, e.g. 1920x1080). ``EvidenceStreams.frame_at`` gives the hand-off thread the
main-stream frame of an event's moment:

- opened on demand (default): a live stream is opened, its first frame read, and closed again; a file
  (tests, demos) is decoded forward to the event's video position;
- kept open (``evidence_keep_open``): a live stream is read by a thread of its own that keeps a small ring
  of recent frames (``RING_FRAMES``, one per ``RING_PERIOD_S``; about 37 MB for 1080p) and the frame
  nearest in wall time to the event frame is taken; a file reader stays open and only decodes forward.

Nothing here may hold a camera up: each grab runs on a thread of its own and is abandoned after
``GRAB_DEADLINE_S`` (FFmpeg's own open/read timeouts end it later), and after a failure the camera's main
stream is not tried again for a backoff delay (1 s doubling to 60 s), so a dead main stream costs one
deadline per delay, not one per event. The caller then uses the sub-stream frame (``MainStreamError``).

Boxes move between the two resolutions with ``map_box``/``map_detections``: the two streams show the same
view, so each axis scales by the ratio of the frame sizes (704x576 -> 1920x1080 too).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streams.capture import Backoff
from streams.sources import SourceError, SourceKind, VideoSource, mask_url, source_kind
from vision.config import CameraConfig, SourceConfig
from vision.geometry import scale_box
from vision.types import Detections

log = logging.getLogger(__name__)

#: FFmpeg open/read timeouts of a main stream (shorter than a camera's own: evidence can fall back).
MAIN_OPEN_TIMEOUT_S = 3.0
MAIN_READ_TIMEOUT_S = 2.0
#: The longest the hand-off thread waits for one main-stream frame before using the sub-stream's.
GRAB_DEADLINE_S = 8.0
#: A live main-stream frame further than this (wall time) from the event frame is not its evidence.
MAX_SKEW_S = 5.0
#: Kept-open live streams: one frame kept every RING_PERIOD_S, the last RING_FRAMES of them.
RING_PERIOD_S = 0.5
RING_FRAMES = 6
#: Frames a live stream may fail to decode after its open before the grab counts as failed.
FIRST_FRAME_TRIES = 25
#: GA/T 832: evidence images at least this large (w, h).
LEGAL_MIN_WH = (1280, 720)


class MainStreamError(RuntimeError):
    """No main-stream frame for this moment (open/read failed, timed out, or too far from the event)."""


@dataclass(frozen=True)
class EvidenceMoment:
    """When an event's frame was taken.

    Attributes:
        frame_time: the detection frame's wall-clock time (UTC).
        video_s: its position in the camera's video, s (file sources); None when unknown.
    """

    frame_time: dt.datetime
    video_s: float | None


@dataclass(frozen=True)
class MainFrame:
    """A main-stream frame: BGR ``uint8 (h, w, 3)`` and its wall-clock time (UTC)."""

    image: np.ndarray
    frame_time: dt.datetime

    @property
    def wh(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def map_box(
    box_xyxy: tuple[float, float, float, float], from_wh: tuple[int, int], to_wh: tuple[int, int]
) -> tuple[float, float, float, float]:
    """An xyxy box of a ``from_wh`` frame in pixels of a ``to_wh`` frame of the same view.

    Example:
        >>> map_box((100, 50, 200, 150), (640, 360), (1920, 1080))
        (300.0, 150.0, 600.0, 450.0)
    """
    return scale_box(box_xyxy, to_wh[0] / from_wh[0], to_wh[1] / from_wh[1])


def map_detections(det: Detections, from_wh: tuple[int, int], to_wh: tuple[int, int]) -> Detections:
    """``map_box`` for every box of ``det`` (a new ``Detections``; the input is unchanged)."""
    if from_wh == to_wh or not len(det):
        return det
    gain = np.array([to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]] * 2, np.float64)
    return det.with_(xyxy=(det.xyxy * gain).astype(det.xyxy.dtype))


def below_legal_size(wh: tuple[int, int]) -> bool:
    """Whether a frame of ``wh`` is smaller than GA/T 832's 1280x720 (either orientation)."""
    return max(wh) < max(LEGAL_MIN_WH) or min(wh) < min(LEGAL_MIN_WH)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MainStream(Protocol):
    def frame_at(self, moment: EvidenceMoment) -> MainFrame: ...

    def close(self) -> None: ...


class FileMainStream:
    """A file as main stream (tests, demos): decoded forward to the moment's video position (a looping
    file wraps around). ``keep_open`` keeps the reader between events, so each grab only decodes on."""

    def __init__(self, source: SourceConfig, *, keep_open: bool = False) -> None:
        self.source = source
        self.keep_open = keep_open
        self._src: VideoSource | None = None
        self._duration_s = 0.0
        self._frame_s = 0.04
        self._last: tuple[float, np.ndarray] | None = None  # (video s, image) of the last frame read

    def _open(self) -> VideoSource:
        self.close()
        src = VideoSource(self.source, decode_threads=1)
        info = src.open()  # SourceError names the file and the fix
        self._frame_s = 1.0 / info.fps if info.fps else 0.04
        self._duration_s = info.frame_count * self._frame_s if info.frame_count else 0.0
        self._src = src
        return src

    def frame_at(self, moment: EvidenceMoment) -> MainFrame:
        if moment.video_s is None:
            raise MainStreamError("the event's video position is unknown; a file main stream needs it")
        target = moment.video_s
        if self._duration_s and target >= self._duration_s:
            target %= self._duration_s + self._frame_s  # a loop adds one frame's time, as capture does
        try:
            pos_s, image = self._read_to(target)
        except SourceError as exc:
            raise MainStreamError(str(exc)) from None
        finally:
            if not self.keep_open:
                self.close()
        return MainFrame(image, moment.frame_time + dt.timedelta(seconds=pos_s - target))

    def _read_to(self, target_s: float) -> tuple[float, np.ndarray]:
        half = self._frame_s / 2
        if self._last is not None and abs(self._last[0] - target_s) <= half:
            return self._last
        src = self._src
        if src is None or self._last is None or target_s < self._last[0]:
            src = self._open()
            self._last = None
        while src.grab():
            pos_s = src.position_s()
            if pos_s + half >= target_s:
                image = src.retrieve()
                if image is None:
                    continue
                self._last = (pos_s, image)
                return self._last
        raise MainStreamError(
            f"main-stream file {mask_url(self.source.url)} ended before {target_s:.1f} s; it must be as "
            "long as the detection stream"
        )

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None
        self._last = None


class LiveMainStream:
    """A live main stream opened on demand: open, read its first decodable frame, close."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        open_timeout_s: float = MAIN_OPEN_TIMEOUT_S,
        read_timeout_s: float = MAIN_READ_TIMEOUT_S,
    ) -> None:
        self.source = source
        self.timeouts = {"open_timeout_s": open_timeout_s, "read_timeout_s": read_timeout_s}

    def frame_at(self, moment: EvidenceMoment) -> MainFrame:
        src = VideoSource(self.source, **self.timeouts)
        try:
            src.open()
            image = None
            for _ in range(FIRST_FRAME_TRIES):
                if not src.grab():
                    break
                image = src.retrieve()
                if image is not None:
                    break
        except SourceError as exc:
            raise MainStreamError(str(exc)) from None
        finally:
            src.close()
        if image is None:
            raise MainStreamError(f"main stream {src.label} opened but gave no frame")
        frame = MainFrame(image, _utc_now())
        _check_skew(frame, moment)
        return frame

    def close(self) -> None:
        pass


def _check_skew(frame: MainFrame, moment: EvidenceMoment) -> None:
    skew_s = (frame.frame_time - moment.frame_time).total_seconds()
    if abs(skew_s) > MAX_SKEW_S:
        raise MainStreamError(
            f"the nearest main-stream frame is {skew_s:+.1f} s from the event frame (more than {MAX_SKEW_S:g} s)"
        )


class LiveRingStream:
    """A live main stream kept open: a reader thread keeps the last ``ring_frames`` frames (one per
    ``period_s``); ``frame_at`` takes the one nearest in wall time to the event frame. Reconnects with
    the capture's backoff; while it is down, grabs fail at once."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        period_s: float = RING_PERIOD_S,
        ring_frames: int = RING_FRAMES,
        open_timeout_s: float = MAIN_OPEN_TIMEOUT_S,
        read_timeout_s: float = MAIN_READ_TIMEOUT_S,
    ) -> None:
        self.source = source
        self.timeouts = {"open_timeout_s": open_timeout_s, "read_timeout_s": read_timeout_s}
        self.period_s = period_s
        self._ring: collections.deque[MainFrame] = collections.deque(maxlen=ring_frames)
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self.error = "not connected yet"
        self._thread = threading.Thread(target=self._run, name="evidence-ring", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = Backoff()
        while not self._halt.is_set():
            src = VideoSource(
                self.source, open_timeout_s=MAIN_OPEN_TIMEOUT_S, read_timeout_s=MAIN_READ_TIMEOUT_S
            )
            try:
                src.open()
                self._read(src, backoff)
                self.error = "main stream ended"
            except SourceError as exc:
                self.error = str(exc)
            except Exception as exc:  # a reader bug must not end the ring for good
                log.exception("main-stream ring of %s failed", mask_url(self.source.url))
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                src.close()
            with self._cond:
                self._ring.clear()
            self._halt.wait(backoff.next())

    def _read(self, src: VideoSource, backoff: Backoff) -> None:
        kept_mono = -float("inf")
        while not self._halt.is_set() and src.grab():
            now = time.monotonic()
            if now - kept_mono < self.period_s:
                continue
            image = src.retrieve()
            if image is None:
                continue
            kept_mono = now
            with self._cond:
                self._ring.append(MainFrame(image, _utc_now()))
                self.error = ""
                self._cond.notify_all()
            backoff.reset()

    def frame_at(self, moment: EvidenceMoment) -> MainFrame:
        deadline = time.monotonic() + 2 * self.period_s
        with self._cond:
            # the event frame is usually older than the ring's newest; if not, wait for the next frame
            while not (self._ring and self._ring[-1].frame_time >= moment.frame_time):
                left = deadline - time.monotonic()
                if left <= 0 or self._halt.is_set():
                    break
                self._cond.wait(left)
            if not self._ring:
                raise MainStreamError(f"main stream {mask_url(self.source.url)} is down: {self.error}")
            frame = min(self._ring, key=lambda f: abs((f.frame_time - moment.frame_time).total_seconds()))
        _check_skew(frame, moment)
        return frame

    def close(self) -> None:
        self._halt.set()
        with self._cond:
            self._cond.notify_all()

    def wait_closed(self, timeout_s: float) -> bool:
        """After ``close``: whether the reader thread ended within ``timeout_s`` (its read timeout bounds it)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def open_main_stream(
    source: SourceConfig,
    keep_open: bool,
    *,
    open_timeout_s: float = MAIN_OPEN_TIMEOUT_S,
    read_timeout_s: float = MAIN_READ_TIMEOUT_S,
) -> MainStream:
    """The ``MainStream`` of an evidence source: a file reader, or a live stream on demand / kept open."""
    if source_kind(source.url) is SourceKind.FILE:
        return FileMainStream(source, keep_open=keep_open)
    timeouts = {"open_timeout_s": open_timeout_s, "read_timeout_s": read_timeout_s}
    return LiveRingStream(source, **timeouts) if keep_open else LiveMainStream(source, **timeouts)


class _CameraMain:
    """One camera's main stream, the lock that lets one grab run at a time, and its failure backoff."""

    def __init__(self, camera: CameraConfig, stream: MainStream) -> None:
        self.key = (camera.evidence_source, camera.evidence_keep_open)
        self.stream = stream
        self.busy = threading.Lock()
        self.backoff = Backoff()
        self.retry_mono = 0.0
        self.last_error = ""


class EvidenceStreams:
    """The main streams of a worker's cameras; ``frame_at`` is called from the hand-off thread only.

    Counters: ``main_frames`` (grabs that gave a frame), ``failures`` (grabs that did not, the caller fell
    back), ``below_legal`` (camera id -> main-stream frame size under GA/T 832's 1280x720).
    """

    def __init__(
        self,
        *,
        deadline_s: float | None = None,
        open_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        # None: the module's constants when the instance is made
        self.deadline_s = GRAB_DEADLINE_S if deadline_s is None else deadline_s
        self.open_timeout_s = MAIN_OPEN_TIMEOUT_S if open_timeout_s is None else open_timeout_s
        self.read_timeout_s = MAIN_READ_TIMEOUT_S if read_timeout_s is None else read_timeout_s
        self._cameras: dict[str, _CameraMain] = {}
        self.main_frames = 0
        self.failures = 0
        self.below_legal: dict[str, tuple[int, int]] = {}

    def _camera(self, camera: CameraConfig) -> _CameraMain:
        entry = self._cameras.get(camera.id)
        if entry is not None and entry.key != (camera.evidence_source, camera.evidence_keep_open):
            entry.stream.close()  # the camera's evidence source was edited
            entry = None
        if entry is None:
            assert camera.evidence_source is not None
            stream = open_main_stream(
                camera.evidence_source,
                camera.evidence_keep_open,
                open_timeout_s=self.open_timeout_s,
                read_timeout_s=self.read_timeout_s,
            )
            entry = self._cameras[camera.id] = _CameraMain(camera, stream)
        return entry

    def frame_at(self, camera: CameraConfig, moment: EvidenceMoment) -> MainFrame:
        """The main-stream frame of ``moment``; raises ``MainStreamError`` (never blocks beyond the
        deadline) when the sub-stream frame must stand in."""
        if camera.evidence_source is None:
            raise MainStreamError(f"camera '{camera.id}' has no evidence_source")
        entry = self._camera(camera)
        wait_s = entry.retry_mono - time.monotonic()
        if wait_s > 0:
            self.failures += 1
            raise MainStreamError(f"main stream failed ({entry.last_error}); next try in {wait_s:.0f} s")
        try:
            frame = self._grab(entry, moment)
        except MainStreamError as exc:
            self.failures += 1
            entry.last_error = str(exc)
            entry.retry_mono = time.monotonic() + entry.backoff.next()
            raise
        entry.backoff.reset()
        entry.retry_mono = 0.0
        self.main_frames += 1
        self._check_size(camera, frame.wh)
        return frame

    def _grab(self, entry: _CameraMain, moment: EvidenceMoment) -> MainFrame:
        if not entry.busy.acquire(blocking=False):
            raise MainStreamError("the previous main-stream read has not returned yet")
        out: queue.Queue[MainFrame | Exception] = queue.Queue(maxsize=1)

        def grab() -> None:
            try:
                out.put(entry.stream.frame_at(moment))
            except Exception as exc:  # handed to the waiting thread
                out.put(exc)
            finally:
                entry.busy.release()

        threading.Thread(target=grab, name="evidence-grab", daemon=True).start()
        try:
            result = out.get(timeout=self.deadline_s)
        except queue.Empty:
            raise MainStreamError(f"no main-stream frame within {self.deadline_s:g} s") from None
        if isinstance(result, MainStreamError):
            raise result
        if isinstance(result, Exception):
            log.error("main-stream grab failed", exc_info=result)
            raise MainStreamError(f"{type(result).__name__}: {mask_url(str(result))}")
        return result

    def _check_size(self, camera: CameraConfig, wh: tuple[int, int]) -> None:
        if not below_legal_size(wh):
            self.below_legal.pop(camera.id, None)
            return
        if self.below_legal.get(camera.id) != wh:
            log.warning(
                "camera %s: evidence stream gives %dx%d frames, below the %dx%d GA/T 832 asks of evidence; "
                "point evidence_source at the camera's main stream",
                camera.id,
                *wh,
                *LEGAL_MIN_WH,
            )
        self.below_legal[camera.id] = wh

    def close(self) -> None:
        for entry in self._cameras.values():
            entry.stream.close()
        self._cameras.clear()
