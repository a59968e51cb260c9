"""Camera edits from the database, applied to a running stream worker.

A thread of its own polls the ``ConfigWatcher`` every ``poll_s`` and queues what changed; the supervisor
thread applies it (``ConfigApplier.apply_pending``), since it owns starting and stopping cameras:

- disabled or deleted: the camera stops;
- new: it starts (or joins the lease pool);
- running: a new source or start time reconnects; a new detect rate resamples without reconnecting;
  zones, motion, time zone and names reach its pipeline between two frames, rule state kept.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from streams.camera_runtime import CameraRuntime, CameraRuntimes, WorkerCameras, is_live
from streams.cameras_db import LoadedCamera
from streams.config_watch import CONFIG_POLL_S, ConfigWatcher
from streams.leases import LeaseManager
from streams.sources import mask_url
from streams.status import StatusReporter
from streams.supervisor import Supervisor
from vision.config import CameraConfig

log = logging.getLogger(__name__)


class ConfigApplier:
    """Follows camera edits in the database and applies them through the supervisor.

    Args:
        cameras: the configs of the cameras the worker may run (this class is their one writer).
        runtimes: the running cameras.
        supervisor: starts and stops cameras.
        accept: whether this worker may run a camera (its shard).
        leases: the lease pool, told of added and removed cameras; None = no leases.
        reporter: writes a stopped camera's last status; None = no database.
        watcher: polls the database for edits; None = the cameras run unchanged.
        poll_s: how often the watcher polls.
    """

    def __init__(
        self,
        cameras: WorkerCameras,
        runtimes: CameraRuntimes,
        supervisor: Supervisor,
        *,
        accept: Callable[[str], bool],
        leases: LeaseManager | None,
        reporter: StatusReporter | None,
        watcher: ConfigWatcher | None,
        poll_s: float = CONFIG_POLL_S,
    ) -> None:
        self.cameras = cameras
        self.runtimes = runtimes
        self.supervisor = supervisor
        self.accept = accept
        self.leases = leases
        self.reporter = reporter
        self.watcher = watcher
        self.poll_s = poll_s
        self.changes_applied = 0  # camera config edits applied (started, stopped, reconfigured)
        self._updates: queue.SimpleQueue[dict[str, LoadedCamera | None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="config-watch", daemon=True)

    def start(self) -> None:
        if self.watcher is not None:
            self._thread.start()

    def signal_stop(self) -> None:
        """No more polls (one under way finishes; ``join`` waits for it)."""
        self._stop.set()

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _poll_loop(self) -> None:
        """Poll the database for edits; the supervisor applies them (it owns starting/stopping cameras)."""
        assert self.watcher is not None
        while not self._stop.wait(self.poll_s):
            changes = self.watcher.poll_once(self.runtimes.ids())
            if changes:
                self._updates.put(changes)

    def apply_pending(self) -> None:
        """Supervisor thread: apply every change the poll thread queued."""
        while True:
            try:
                changes = self._updates.get_nowait()
            except queue.Empty:
                return
            for camera_id, loaded in sorted(changes.items()):
                try:
                    self.apply(
                        camera_id, loaded.config if loaded else None, loaded.problems if loaded else ()
                    )
                except Exception:  # one camera's edit must not keep the others' from applying
                    log.exception("camera %s: configuration change not applied", camera_id)

    def apply(self, camera_id: str, camera: CameraConfig | None, problems: tuple[str, ...] = ()) -> None:
        """Apply one camera's new config from the database (None = deleted). Supervisor thread only."""
        old = self.cameras.current.get(camera_id)
        self.supervisor.config_problems[camera_id] = tuple(problems)
        if camera is None or not camera.enabled or not self.accept(camera_id):
            if old is not None:
                self._remove(camera_id, camera)
            return
        self.cameras.put(camera)  # the evidence keeper has it before any event of the new config
        if old is None:
            log.info("camera %s: enabled or added in the database; starting", camera_id)
            if self.leases is not None:
                self.leases.set_camera_ids(self.cameras.current)  # claimed at the next lease round
            else:
                self.supervisor.start_camera(camera_id)
            self.changes_applied += 1
            return
        rt = self.runtimes.get(camera_id)
        if rt is None:
            return  # not ours right now (leases): it starts with this config when we gain it
        rt.health.config_problems(problems)
        if camera == rt.camera:
            return
        self._reconfigure(rt, camera)
        self.changes_applied += 1

    def _remove(self, camera_id: str, camera: CameraConfig | None) -> None:
        self.cameras.remove(camera_id)
        reason = "deleted in the database" if camera is None else "disabled in the database"
        if self.leases is not None:
            self.leases.set_camera_ids(self.cameras.current)
        health = self.supervisor.stop_camera(camera_id, reason)
        if health is not None and camera is not None and self.reporter is not None:
            # nobody reports a disabled camera any more: leave "offline, disabled" as its last word
            self.reporter.flush([health.snapshot()])
        self.changes_applied += 1

    def _reconfigure(self, rt: CameraRuntime, camera: CameraConfig) -> None:
        old = rt.camera
        rt.health.target_detect_fps = camera.detect_fps
        reconnect = camera.source != old.source or camera.start_time != old.start_time
        if reconnect:
            log.info(
                "camera %s: source changed (%s → %s); reconnecting",
                camera.id,
                mask_url(old.source.url),
                mask_url(camera.source.url),
            )
            rt.capture.stop()
            # A buffer of its own: frames the old source still delivers (or had buffered, at most
            # BUFFER_FRAMES) are left behind, so the new config never sees the old stream's clock.
            rt.buffer = self.supervisor.new_buffer()
            rt.capture = self.supervisor.new_capture(camera, rt.buffer, rt.health)
            rt.capture.start()
        elif camera.detect_fps != old.detect_fps:
            log.info("camera %s: detect rate %.3g → %.3g fps", camera.id, old.detect_fps, camera.detect_fps)
            rt.capture.set_detect_fps(camera.detect_fps)
        if camera.zones != old.zones:
            log.info(
                "camera %s: zones %s → %s; applied from the next frame",
                camera.id,
                [z.id for z in old.zones],
                [z.id for z in camera.zones],
            )
        # A file with video time restarts its clock at 0 when reopened, and a switch between video and
        # epoch seconds has no common clock: rule state cannot carry over either way. The version is
        # swapped last, after the buffer: the processor never takes it for a frame of the old source.
        new_timeline = is_live(camera) != is_live(old) or (reconnect and not is_live(camera))
        rt.swap(camera, new_timeline=new_timeline)
