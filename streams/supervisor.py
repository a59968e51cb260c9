"""The supervisor of a stream worker: starts and stops cameras, watches their capture, claims leases.

Runs on the worker's main thread (``StreamWorker.run_until``). A camera's capture thread that died of a
bug is restarted (at most every ``CRASH_RESTART_S``); one stuck inside FFmpeg for ``stall_timeout_s``
is abandoned for a fresh one. With leases, each round stops the cameras lost and starts those gained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from streams.camera_runtime import CameraRuntime, CameraRuntimes, WorkerCameras
from streams.capture import CaptureThread, FrameBuffer
from streams.leases import LeaseManager
from streams.sources import mask_url
from streams.status import CameraHealth, CameraStatusSnapshot, StatusBoard
from vision.config import CameraConfig

log = logging.getLogger(__name__)

#: A capture thread that has made no progress (no grab returned, no backoff tick) for this long is stuck
#: inside FFmpeg despite the timeouts; the watchdog abandons it and starts a fresh one.
STALL_TIMEOUT_S = 15.0
CRASH_RESTART_S = 10.0


@dataclass(frozen=True)
class CaptureOptions:
    """How the worker's capture threads read their sources (``streams.capture.CaptureThread``)."""

    realtime: bool = True
    speed: float = 1.0
    open_timeout_s: float | None = None
    read_timeout_s: float | None = None


class Supervisor:
    """Camera lifecycle, capture watchdog and lease rounds of one worker. Supervisor thread only.

    Args:
        cameras: the configs of the cameras the worker may run.
        runtimes: the running cameras (shared with the processing thread).
        worker_id: written into each camera's status.
        board: where the cameras' health is shown.
        leases: claim cameras through leases; None = run every camera in ``cameras``.
        capture: capture options.
        on_frame: called by a camera's buffer when a frame is ready (wakes the processing thread).
        stall_timeout_s: the watchdog's limit for a capture without progress.
        config_problems: problems of each camera's rows (shown in its status), by camera id.
    """

    def __init__(
        self,
        cameras: WorkerCameras,
        runtimes: CameraRuntimes,
        *,
        worker_id: str,
        board: StatusBoard,
        leases: LeaseManager | None,
        capture: CaptureOptions,
        on_frame: Callable[[], None],
        stall_timeout_s: float = STALL_TIMEOUT_S,
        config_problems: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.cameras = cameras
        self.runtimes = runtimes
        self.worker_id = worker_id
        self.board = board
        self.leases = leases
        self.capture = capture
        self.on_frame = on_frame
        self.stall_timeout_s = stall_timeout_s
        self.config_problems: dict[str, tuple[str, ...]] = dict(config_problems or {})
        self._last_lease_tick = 0.0

    def start_all(self) -> None:
        """Without leases every camera starts; with leases the first round claims a share."""
        if self.leases is None:
            for cid in self.cameras.current:
                self.start_camera(cid)
        else:
            self.tick_leases()

    def new_buffer(self) -> FrameBuffer:
        return FrameBuffer(on_ready=self.on_frame)

    def new_capture(self, camera: CameraConfig, buffer: FrameBuffer, health: CameraHealth) -> CaptureThread:
        return CaptureThread(
            camera,
            buffer,
            health,
            realtime=self.capture.realtime,
            speed=self.capture.speed,
            open_timeout_s=self.capture.open_timeout_s,
            read_timeout_s=self.capture.read_timeout_s,
        )

    def start_camera(self, camera_id: str) -> None:
        camera = self.cameras.current[camera_id]
        health = CameraHealth(camera.id, camera.detect_fps, worker_id=self.worker_id)
        health.config_problems(self.config_problems.get(camera_id, ()))
        buffer = self.new_buffer()
        rt = CameraRuntime(camera, health, buffer, self.new_capture(camera, buffer, health))
        self.board.register(health)
        self.runtimes.add(rt)
        rt.capture.start()
        log.info("camera %s (%s): started", camera.id, mask_url(camera.source.url))

    def stop_camera(self, camera_id: str, reason: str) -> CameraHealth | None:
        rt = self.runtimes.pop(camera_id)
        if rt is None:
            return None
        rt.capture.stop()
        rt.health.stopped(reason)
        self.board.unregister(camera_id)
        log.info("camera %s: stopped (%s)", camera_id, reason)
        return rt.health

    def tick_leases(self) -> None:
        assert self.leases is not None
        self._last_lease_tick = time.monotonic()
        change = self.leases.tick()
        for cid in sorted(change.lost):
            self.stop_camera(cid, "lease lost or handed to another worker")
        for cid in sorted(change.gained):
            self.start_camera(cid)

    def supervise_once(self) -> None:
        """One round: a lease round when due, then the capture watchdog."""
        now = time.monotonic()
        if self.leases is not None and now - self._last_lease_tick >= self.leases.interval_s:
            self.tick_leases()
        for rt in self.runtimes.all():
            self._watch(rt, now)

    def _watch(self, rt: CameraRuntime, now: float) -> None:
        cap = rt.capture
        if not cap.is_alive() and not cap.ended and not cap.stopping:
            if now < rt.restart_after_mono:
                return
            # The thread died of a bug (already logged with its traceback): give the camera a new one.
            rt.restart_after_mono = now + CRASH_RESTART_S
            log.error("camera %s: capture thread died; restarting it", rt.camera_id)
            rt.capture = self.new_capture(rt.camera, rt.buffer, rt.health)
            rt.capture.start()
        elif cap.is_alive() and now - cap.last_progress_mono > self.stall_timeout_s:
            stuck_s = now - cap.last_progress_mono
            log.error("camera %s: capture stuck for %.0f s; starting a fresh capture", rt.camera_id, stuck_s)
            rt.health.disconnected(f"capture stalled for {stuck_s:.0f} s; restarted", reconnecting=True)
            cap.stop()  # it exits when FFmpeg lets go; its frames are no longer wanted
            rt.capture = self.new_capture(rt.camera, rt.buffer, rt.health)
            rt.capture.start()

    def status_snapshots(self) -> list[CameraStatusSnapshot]:
        """The running cameras' status (the status reporter's source)."""
        return [rt.health.snapshot() for rt in self.runtimes.all()]
