"""Camera status: what each camera is doing right now, kept in memory and reported to the database.

A capture thread and the processing loop update a camera's ``CameraHealth``; anyone reads immutable
``CameraStatusSnapshot``s from the process-wide ``StatusBoard`` (the API serves them in-process) and a
``StatusReporter`` thread upserts them into the ``camera_status`` table for other processes.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from streams.sources import mask_url
from urbaneye.db.models import CameraStatus

log = logging.getLogger(__name__)

#: No frame for this long → offline (well inside the issue's 5 s).
OFFLINE_AFTER_S = 3.0
#: Window over which input and detect fps are measured.
FPS_WINDOW_S = 5.0
#: A reconnect within this long keeps the camera "degraded".
RECENT_RECONNECT_S = 30.0


class CameraState(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"  # frames arrive, but below the detect rate, recently reconnected, or dropping
    OFFLINE = "offline"  # no frames: connecting, unreachable, failed, or stopped (``error`` says why)


@dataclass(frozen=True)
class CameraStatusSnapshot:
    camera_id: str
    worker_id: str
    state: CameraState
    input_fps: float
    detect_fps: float
    last_frame_at: dt.datetime | None
    reconnects: int
    dropped_frames: int
    frames_in: int
    frames_processed: int
    frames_detected: int
    error: str
    snapshot_key: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        data["last_frame_at"] = self.last_frame_at.isoformat() if self.last_frame_at else None
        return data


class _RateMeter:
    """Events per second over the last ``window_s`` (monotonic clock)."""

    def __init__(self, window_s: float = FPS_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self._start: float | None = None

    def tick(self, now: float) -> None:
        if self._start is None:
            self._start = now
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def running_s(self, now: float) -> float:
        return 0.0 if self._start is None else now - self._start

    def rate(self, now: float) -> float:
        self._trim(now)
        span = min(self.window_s, self.running_s(now))
        return len(self._times) / span if span >= 0.5 else 0.0


class CameraHealth:
    """Mutable per-camera counters; thread-safe. ``snapshot()`` derives the state from them."""

    def __init__(self, camera_id: str, detect_fps: float, worker_id: str = "") -> None:
        self.camera_id = camera_id
        self.worker_id = worker_id
        self.target_detect_fps = detect_fps
        self._lock = threading.Lock()
        self._connected = False
        self._stopped = False
        self._last_frame_mono: float | None = None
        self._last_frame_wall: float | None = None
        self._last_reconnect_mono: float | None = None
        self._input = _RateMeter()
        self._processed = _RateMeter()
        self.native_fps = 0.0
        self.reconnects = 0
        self.dropped_frames = 0
        self.frames_in = 0
        self.frames_processed = 0
        self.frames_detected = 0
        self.error = ""
        self._processing_error = ""
        self._config_error = ""  # zones skipped from the database: shown, but the camera runs
        self._unstable_error = ""  # opens keep failing soon after the first frames: degraded, with why
        self.snapshot_key = ""

    # ------------------------------------------------------------ updates (capture thread)
    def connected(self, native_fps: float) -> None:
        with self._lock:
            self._connected = True
            self.native_fps = native_fps
            self.error = ""

    def disconnected(self, error: str, *, reconnecting: bool) -> None:
        with self._lock:
            self._connected = False
            self._unstable_error = ""
            self.error = mask_url(error)
            if reconnecting:
                self.reconnects += 1
                self._last_reconnect_mono = time.monotonic()

    def frame_in(self, now_mono: float | None = None) -> None:
        now = time.monotonic() if now_mono is None else now_mono
        with self._lock:
            self.frames_in += 1
            self._last_frame_mono = now
            self._last_frame_wall = time.time()
            self._input.tick(now)

    def unstable(self, reason: str) -> None:
        """The source opens and gives a few frames, then fails (a corrupt file): degraded with ``reason``,
        also while the capture waits out its backoff; "" once an open works again."""
        with self._lock:
            self._unstable_error = mask_url(reason)

    def dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped_frames += n

    def stopped(self, reason: str = "") -> None:
        with self._lock:
            self._connected = False
            self._stopped = True
            self._unstable_error = ""
            if reason:
                self.error = mask_url(reason)

    # ------------------------------------------------------------ updates (processing loop)
    def processed(self, detected: bool, now_mono: float | None = None, error: str = "") -> None:
        """One frame processed; ``error``: what went wrong in it without stopping the camera (a failing rule)."""
        now = time.monotonic() if now_mono is None else now_mono
        with self._lock:
            self._processed.tick(now)
            self.frames_processed += 1
            self._processing_error = mask_url(error) if error else ""
            if detected:
                self.frames_detected += 1

    def snapshot_stored(self, key: str) -> None:
        with self._lock:
            self.snapshot_key = key

    def processing_failed(self, error: str) -> None:
        with self._lock:
            self._processing_error = mask_url(error)

    def config_problems(self, problems: tuple[str, ...] | list[str]) -> None:
        """Parts of the camera's database config that were skipped (bad zone rows); () clears them."""
        with self._lock:
            self._config_error = mask_url("; ".join(problems))

    # ------------------------------------------------------------ reads
    def snapshot(self, now_mono: float | None = None) -> CameraStatusSnapshot:
        now = time.monotonic() if now_mono is None else now_mono
        with self._lock:
            input_fps = self._input.rate(now)
            processed_fps = self._processed.rate(now)
            stale = self._last_frame_mono is None or now - self._last_frame_mono > OFFLINE_AFTER_S
            if self._unstable_error and not self._stopped:
                state = CameraState.DEGRADED  # frames come, then fail: it is neither working nor gone
                input_fps = 0.0 if stale else input_fps
            elif self._stopped or not self._connected or stale:
                state = CameraState.OFFLINE
                input_fps = 0.0 if stale else input_fps
            else:
                want = self.target_detect_fps
                if self.native_fps:
                    want = min(want, self.native_fps)
                recent = (
                    self._last_reconnect_mono is not None
                    and now - self._last_reconnect_mono < RECENT_RECONNECT_S
                )
                warmed = self._input.running_s(now) >= FPS_WINDOW_S
                slow = warmed and (input_fps < 0.8 * want or processed_fps < 0.8 * want)
                failing = bool(self._processing_error)
                state = CameraState.DEGRADED if (recent or slow or failing) else CameraState.ONLINE
            last = (
                dt.datetime.fromtimestamp(self._last_frame_wall, dt.UTC)
                if self._last_frame_wall is not None
                else None
            )
            return CameraStatusSnapshot(
                camera_id=self.camera_id,
                worker_id=self.worker_id,
                state=state,
                input_fps=round(input_fps, 2),
                detect_fps=round(processed_fps, 2),
                last_frame_at=last,
                reconnects=self.reconnects,
                dropped_frames=self.dropped_frames,
                frames_in=self.frames_in,
                frames_processed=self.frames_processed,
                frames_detected=self.frames_detected,
                error=self._processing_error or self._unstable_error or self.error or self._config_error,
                snapshot_key=self.snapshot_key,
            )


class StatusBoard:
    """Process-wide registry of camera health, read by the in-process API and the DB reporter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cameras: dict[str, CameraHealth] = {}

    def register(self, health: CameraHealth) -> None:
        with self._lock:
            self._cameras[health.camera_id] = health

    def unregister(self, camera_id: str) -> None:
        with self._lock:
            self._cameras.pop(camera_id, None)

    def get(self, camera_id: str) -> CameraStatusSnapshot | None:
        with self._lock:
            health = self._cameras.get(camera_id)
        return health.snapshot() if health else None

    def snapshots(self) -> list[CameraStatusSnapshot]:
        with self._lock:
            healths = list(self._cameras.values())
        return [h.snapshot() for h in sorted(healths, key=lambda h: h.camera_id)]


#: The board of this process. ``api`` can serve ``BOARD.snapshots()`` when it runs inside ``urbaneye run``.
BOARD = StatusBoard()


def write_statuses(session_factory: Callable[[], Any], snapshots: list[CameraStatusSnapshot]) -> None:
    """Upsert snapshots into ``camera_status`` (one transaction)."""
    with session_factory() as session:
        for snap in snapshots:
            row = session.get(CameraStatus, snap.camera_id)
            if row is None:
                row = CameraStatus(camera_id=snap.camera_id)
                session.add(row)
            row.worker_id = snap.worker_id
            row.state = str(snap.state)
            row.input_fps = snap.input_fps
            row.detect_fps = snap.detect_fps
            row.last_frame_at = snap.last_frame_at
            row.reconnects = snap.reconnects
            row.dropped_frames = snap.dropped_frames
            row.error = snap.error[:2000]
            if snap.snapshot_key:
                row.snapshot_key = snap.snapshot_key
        session.commit()


class StatusReporter(threading.Thread):
    """Writes the given cameras' snapshots to the database every ``interval_s``; never raises.

    A database outage costs status freshness only: the failure is logged once per outage.
    """

    def __init__(
        self,
        snapshots: Callable[[], list[CameraStatusSnapshot]],
        session_factory: Callable[[], Any],
        interval_s: float = 2.0,
    ) -> None:
        super().__init__(name="status-reporter", daemon=True)
        self._snapshots = snapshots
        self._session_factory = session_factory
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._failing = False
        # Snapshots are taken and written under one lock: a camera's last word written by another
        # thread (stopped: offline) can never be overwritten by a snapshot taken before it stopped.
        self._flush_lock = threading.Lock()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.flush()

    def flush(self, snapshots: list[CameraStatusSnapshot] | None = None) -> None:
        with self._flush_lock:
            self._flush(snapshots)

    def _flush(self, snapshots: list[CameraStatusSnapshot] | None) -> None:
        try:
            write_statuses(self._session_factory, self._snapshots() if snapshots is None else snapshots)
        except Exception as exc:  # a DB outage must never stop a stream worker
            if not self._failing:
                log.warning("camera status not written to the database (will retry): %s", mask_url(str(exc)))
            self._failing = True
        else:
            if self._failing:
                log.info("camera status reporting to the database resumed")
            self._failing = False

    def stop(self) -> None:
        self._halt.set()
