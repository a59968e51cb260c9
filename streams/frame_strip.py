"""The frame strip: a few downscaled frames across a violation's dwell, so a reviewer sees the object stay.

``FrameStrips`` is a frame observer (``streams.observers``). From a violation's first sighting
(``begin``, called by ``streams.events.HandoffQueue.put`` on the processing thread) it keeps downscaled
JPEG frames of the camera (longest side ``STRIP_MAX_SIDE_PX``) in a ring of ``STRIP_SLOTS``: one frame per
interval, starting at 1 s; when the ring is full every other frame goes and the interval doubles, so the
ring always spans the whole wait evenly, whatever the dwell (10 s or an hour), in at most 16 x ~30 KB.
At the dwell crossing the evidence keeper ``take``s ``STRIP_FRAMES`` of them, evenly spaced in time, and
hands them off as extra evidence (seq ``STRIP_SEQ_BASE``.., variant ``annotated``; never the legal
moments). A camera keeps at most ``RECORDINGS_PER_CAMERA`` recordings (a place that never opens is
forgotten with the oldest, or after ``MAX_RECORDING_S``).

The observer also notes when each camera's stream last (re)started (its first frame after an open), so
the keeper can place an event in a file main stream (``video_s``).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from streams.observers import FrameView

#: Longest side of a strip frame, px (a 1080p frame becomes 640x360).
STRIP_MAX_SIDE_PX = 640
STRIP_JPEG_QUALITY = 80
#: Frames kept per recording; the interval doubles each time the ring fills.
STRIP_SLOTS = 16
FIRST_INTERVAL_S = 1.0
#: Frames handed off per case: with the two legal moments a reviewer sees at most 10.
STRIP_FRAMES = 8
RECORDINGS_PER_CAMERA = 8
#: A recording whose place has not opened after this long (stream time) is dropped.
MAX_RECORDING_S = 3 * 3600.0


@dataclass(frozen=True)
class StripShot:
    """One kept frame: its stream time, wall-clock time, JPEG bytes and sizes."""

    ts_s: float
    frame_time: dt.datetime
    jpeg: bytes
    wh: tuple[int, int]  # of the downscaled frame
    source_wh: tuple[int, int]  # of the frame it was taken from (the detection frame)

    def image(self) -> np.ndarray:
        """The frame as BGR ``uint8 (h, w, 3)``."""
        return cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)


@dataclass
class _Recording:
    started_s: float
    interval_s: float = FIRST_INTERVAL_S
    shots: list[StripShot] = field(default_factory=list)

    def due(self, ts_s: float) -> bool:
        return ts_s >= self.started_s and (not self.shots or ts_s - self.shots[-1].ts_s >= self.interval_s)

    def add(self, shot: StripShot, slots: int) -> None:
        self.shots.append(shot)
        if len(self.shots) > slots:  # thin out evenly: keep the first and every other one
            self.shots = self.shots[::2]
            self.interval_s *= 2


def evenly(shots: list[StripShot], k: int) -> list[StripShot]:
    """At most ``k`` of ``shots`` (in time order), evenly spaced, the first and the last included.

    Example:
        >>> [s.ts_s for s in evenly([StripShot(t, None, b"", (1, 1), (1, 1)) for t in range(10)], 4)]
        [0, 3, 6, 9]
    """
    if len(shots) <= k:
        return list(shots)
    picks = sorted({int(round(i)) for i in np.linspace(0, len(shots) - 1, k)})
    return [shots[i] for i in picks]


def downscale(image: np.ndarray, max_side_px: int = STRIP_MAX_SIDE_PX) -> np.ndarray:
    """``image`` with its longest side at most ``max_side_px`` (the same array when already small)."""
    h, w = image.shape[:2]
    gain = max_side_px / max(h, w)
    if gain >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * gain)), max(1, round(h * gain))), interpolation=cv2.INTER_AREA)


class FrameStrips:
    """Frame strips of a worker's cameras (a ``FrameObserver``). ``observe``/``begin`` run on the
    processing thread, ``take``/``drop`` on the hand-off thread; one lock guards the recordings."""

    def __init__(
        self,
        *,
        slots: int = STRIP_SLOTS,
        frames: int = STRIP_FRAMES,
        per_camera: int = RECORDINGS_PER_CAMERA,
        max_side_px: int = STRIP_MAX_SIDE_PX,
    ) -> None:
        self.slots, self.frames, self.per_camera, self.max_side_px = slots, frames, per_camera, max_side_px
        self._lock = threading.Lock()
        self._recordings: dict[str, dict[str, _Recording]] = {}  # camera id -> violation id -> recording
        self._origin_s: dict[str, float] = {}

    # ------------------------------------------------------------------ keeper side
    def begin(self, camera_id: str, violation_id: str, ts_s: float) -> None:
        """Start keeping frames of ``camera_id`` for ``violation_id`` (no-op when already keeping)."""
        with self._lock:
            recs = self._recordings.setdefault(camera_id, {})
            if violation_id in recs:
                return
            recs[violation_id] = _Recording(started_s=ts_s)
            while len(recs) > self.per_camera:
                recs.pop(min(recs, key=lambda v: recs[v].started_s))

    def take(self, camera_id: str, violation_id: str, until_s: float) -> list[StripShot]:
        """Stop keeping frames for ``violation_id``; its frames up to ``until_s``, evenly spaced (at most
        ``frames``), in time order."""
        with self._lock:
            rec = self._recordings.get(camera_id, {}).pop(violation_id, None)
        if rec is None:
            return []
        return evenly([s for s in rec.shots if s.ts_s <= until_s + 1e-6], self.frames)

    def drop(self, camera_id: str, violation_id: str) -> None:
        with self._lock:
            self._recordings.get(camera_id, {}).pop(violation_id, None)

    def recording(self, camera_id: str) -> int:
        """How many violations of the camera are being recorded."""
        with self._lock:
            return len(self._recordings.get(camera_id, {}))

    def kept(self, camera_id: str, violation_id: str) -> int:
        """How many frames the violation's recording holds now (at most ``slots``)."""
        with self._lock:
            rec = self._recordings.get(camera_id, {}).get(violation_id)
            return len(rec.shots) if rec else 0

    def video_s(self, camera_id: str, ts_s: float, live: bool) -> float | None:
        """Position of stream time ``ts_s`` in the camera's current video (file sources): since its last
        (re)start when seen, else ``ts_s`` itself for video time (``live`` False); None when unknown."""
        with self._lock:
            origin = self._origin_s.get(camera_id)
        if origin is not None and ts_s >= origin:
            return ts_s - origin
        return None if live else ts_s

    # ------------------------------------------------------------------ observer side
    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        return False

    def observe(self, view: FrameView) -> None:
        camera_id, ts_s = view.camera.id, view.ts_s
        with self._lock:
            if view.frame.fresh:
                self._origin_s[camera_id] = ts_s
            recs = self._recordings.get(camera_id)
            if not recs:
                return
            for vid in [v for v, r in recs.items() if ts_s - r.started_s > MAX_RECORDING_S]:
                del recs[vid]
            due = [r for r in recs.values() if r.due(ts_s)]
        if not due:
            return
        small = downscale(view.frame.image, self.max_side_px)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, STRIP_JPEG_QUALITY])
        if not ok:
            return
        shot = StripShot(
            ts_s, view.frame.frame_time, buf.tobytes(), (small.shape[1], small.shape[0]), view.frame.wh
        )
        with self._lock:
            for rec in due:
                rec.add(shot, self.slots)


#: The worker process's strips: ``streams.run.WorkerStack`` adds it to its observers and every
#: ``EvidenceKeeper`` takes from it unless given its own (like ``streams.status.BOARD``).
FRAME_STRIPS = FrameStrips()
