"""A stream worker process: many cameras, one detector session per camera group, one processing thread.

Layout (measured, see docs/streams.md): capture in one thread per camera (decoding releases the GIL),
one processing thread that round-robins over the cameras' two-frame buffers and owns the detector, and
one hand-off thread for evidence and cases. ONNX Runtime runs with one intra-op thread; on a 2-core
machine two such processes beat one process with a 2-thread session, so scale with ``--processes``.

Start-up and shutdown read top to bottom::

    worker = StreamWorker(cameras_file, detectors, keeper_handoff, ...)
    worker.start()          # init_detectors → start_handoff → start_processing → start_cameras/leases
    worker.run_until(stop)  # lease ticks, capture watchdog, config edits, status reports
    worker.stop()           # stop capture → finish in-flight frames → flush events → release leases

With a ``ConfigWatcher`` the database is the live source of the cameras: a thread polls it, the
supervisor applies what changed (start/stop cameras, reconnect a changed source, a new detect rate) and
the processing thread hands new zones to the camera's pipeline between two frames.

A failing camera (unreachable, corrupt file, a bug in its rules, a bad zone row) only ever sets its own
status error.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.camera import (
    CameraProcessor,
    CaptureThread,
    DetectorSource,
    FrameBuffer,
    SampledFrame,
)
from streams.config_watch import CONFIG_POLL_S, ConfigWatcher
from streams.events import EvidenceKeeper, HandoffLike, HandoffQueue
from streams.leases import LeaseManager
from streams.metrics import StreamMetrics
from streams.snapshots import SnapshotWriter
from streams.sources import SourceKind, mask_url, source_kind
from streams.status import BOARD, CameraHealth, StatusBoard, StatusReporter
from vision.config import CameraConfig, CamerasFile
from vision.memory import MemoryBook

log = logging.getLogger(__name__)

#: A capture thread that has made no progress (no grab returned, no backoff tick) for this long is stuck
#: inside FFmpeg despite the timeouts; the watchdog abandons it and starts a fresh one.
STALL_TIMEOUT_S = 15.0
SUPERVISOR_TICK_S = 0.5
CRASH_RESTART_S = 10.0
#: Errors in a row after which a camera's processor is rebuilt keeping its rule state; at the last one (and
#: every as many after) the rule state starts afresh too.
PROCESSOR_REBUILD_AT = (3, 10)
#: How often the processing thread saves and reloads the cameras' false-alarm memory (settings: memory_refresh_s).
MEMORY_REFRESH_S = 30.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DetectorPool:
    """One detector per camera group in this process, shared by all its cameras.

    With ``model_path`` every group uses that ONNX (no hot reload: replay, benchmarks, ``--model``).
    Otherwise each group gets a ``urbaneye.hot_reload.ModelWatcher`` that follows the registry's active model
    and falls back to ``cameras_file.model.path`` / ``settings.model_path`` while none is registered.
    """

    def __init__(
        self,
        cameras_file: CamerasFile,
        *,
        model_path: str | None = None,
        watch: bool = True,
        poll_s: float = 10.0,
        session_factory: Any = None,
        detector_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.cameras_file = cameras_file
        self.model_path = model_path
        self.watch = watch and model_path is None
        self.poll_s = poll_s
        self.session_factory = session_factory
        self.detector_factory = detector_factory
        self._static: dict[str, Any] = {}
        self._watchers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _load_static(self, path: str | None) -> Any:
        if self.detector_factory is not None:
            return self.detector_factory(path or "")
        from vision.detector import OnnxDetector

        if path is None:
            from urbaneye.settings import get_settings

            path = self.cameras_file.model.path or str(get_settings().model_path)
        return OnnxDetector(path, self.cameras_file.model)

    def source(self, group: str) -> DetectorSource:
        """``() -> (detector, version)`` for a camera of ``group``; loads the model on first use."""
        with self._lock:
            if self.watch:
                watcher = self._watchers.get(group)
                if watcher is None:
                    watcher = self._start_watcher(group)
                if watcher is not None:
                    return watcher.current
            key = self.model_path or "__default__"
            detector = self._static.get(key)
            if detector is None:
                detector = self._static[key] = self._load_static(self.model_path)
            version = str(getattr(detector, "version", "unknown"))
            return lambda: (detector, version)

    def shadow_source(self, group: str, camera_id: str) -> Callable[[], tuple[Any, str] | None] | None:
        """``() -> (detector, version) | None`` of the shadow model on this camera, if the group is watched."""
        with self._lock:
            watcher = self._watchers.get(group)
        if watcher is None:
            return None
        return lambda: watcher.shadow(camera_id)

    def _start_watcher(self, group: str) -> Any:
        from urbaneye.hot_reload import ModelWatcher

        watcher = ModelWatcher(
            group,
            poll_s=self.poll_s,
            model_config=self.cameras_file.model,
            session_factory=self.session_factory,
        )
        try:
            watcher.start()
        except Exception as exc:
            # No registry (database not migrated, unreachable): run the configured model without reload.
            log.warning(
                "camera group %s: model registry unavailable (%s); using the configured model", group, exc
            )
            self.watch = False
            return None
        self._watchers[group] = watcher
        return watcher

    def stop(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()


@dataclass
class _Runtime:
    """One camera running in this worker."""

    camera: CameraConfig
    health: CameraHealth
    buffer: FrameBuffer
    capture: CaptureThread
    processor: CameraProcessor | None = None
    # A processor rebuilt after errors: its rules' state (dwell timers, open violations) carries over.
    failed_processor: CameraProcessor | None = None
    error_count: int = 0
    started_mono: float = field(default_factory=time.monotonic)
    restart_after_mono: float = 0.0  # a crashed capture is restarted at most every CRASH_RESTART_S
    # A config edit waiting for the processing thread: (camera, the stream's clock starts over).
    pending: tuple[CameraConfig, bool] | None = None
    pending_lock: threading.Lock = field(default_factory=threading.Lock)

    def hand_over(self, camera: CameraConfig, new_timeline: bool) -> None:
        with self.pending_lock:
            # a second edit before the next frame: the newest config wins, a new timeline is never lost
            new_timeline = new_timeline or (self.pending is not None and self.pending[1])
            self.pending = (camera, new_timeline)

    def take_pending(self) -> tuple[CameraConfig, bool] | None:
        with self.pending_lock:
            pending, self.pending = self.pending, None
        return pending


def is_live(camera: CameraConfig) -> bool:
    """Stream times are epoch seconds (a live source, or a file without ``start_time``)."""
    return camera.start_time is None or source_kind(camera.source.url) is not SourceKind.FILE


def load_escalation_history(session_factory: Any, camera_id: str, window_s: float) -> dict[str, list[float]]:
    """Offence times (epoch s) per place of a camera's cases in the escalation window, for 三色单."""
    from sqlalchemy import select

    from urbaneye.db.models import Case, CaseStatus

    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window_s)
    history: dict[str, list[float]] = {}
    with session_factory() as session:
        rows = session.execute(
            select(Case.place_key, Case.started_at).where(
                Case.camera_id == camera_id,
                Case.started_at >= since,
                Case.status != CaseStatus.REJECTED.value,
            )
        ).all()
    for place_key, started in rows:
        if place_key and started is not None:
            started = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
            history.setdefault(place_key, []).append(started.timestamp())
    return history


def load_memory(session_factory: Any, camera_ids: list[str]) -> dict[str, list[Any]]:
    """Live false-alarm memory entries (``vision.memory.MemoryEntry``) per camera id."""
    from urbaneye.memory import live_entries

    with session_factory() as session:
        return live_entries(session, camera_ids)


def sync_memory(session_factory: Any, updates: list[Any], camera_ids: list[str]) -> dict[str, list[Any]]:
    """Save suppression counts / gone places, then return the cameras' live entries, in one session."""
    from urbaneye.memory import live_entries, record_updates

    with session_factory() as session:
        if updates:
            record_updates(session, updates)
            session.commit()
        return live_entries(session, camera_ids)


def record_shadow_opened(session_factory: Any, version: str, event: Any) -> bool:
    """Count a shadow model's would-be case (``urbaneye.registry.record_shadow_case``). True if new."""
    from urbaneye.registry import record_shadow_case

    with session_factory() as session:
        new = record_shadow_case(session, version, event.camera_id, str(event.kind), event.violation_id)
        session.commit()
    return new


class StreamWorker:
    """Runs a set of cameras: capture threads, one processing thread, one hand-off thread.

    Args:
        cameras_file: cameras, model and rule settings.
        detectors: detector per camera group.
        handoff: where opened/updated/closed go (``urbaneye.cases.handoff.Handoff``); None = discard.
        camera_ids: the cameras this worker may run (a shard); default all enabled cameras.
        accept: which cameras this worker may run, for cameras that appear in the database later (a
            shard's test); default: those in ``camera_ids``, or all.
        leases: claim cameras through leases instead of running all of ``camera_ids``.
        realtime: pace file sources at their native rate (a live worker); False reads files flat out.
        speed: with ``realtime``, files play this many times faster than their native rate (demos, tests).
        config_watcher: follow camera/zone edits in the database (polled every ``config_poll_s``);
            None = the cameras given run unchanged.
        gating: motion gating on (default) or off.
        session_factory: database sessions for the status reporter and escalation history; None = none.
        metrics: Prometheus metrics; None = not recorded.
        snapshot_store: evidence store for camera snapshots (``streams.snapshots``); None = none.
    """

    def __init__(
        self,
        cameras_file: CamerasFile,
        detectors: DetectorPool,
        handoff: HandoffLike | None,
        *,
        worker_id: str | None = None,
        camera_ids: Iterable[str] | None = None,
        accept: Callable[[str], bool] | None = None,
        leases: LeaseManager | None = None,
        realtime: bool = True,
        speed: float = 1.0,
        gating: bool = True,
        session_factory: Any = None,
        metrics: StreamMetrics | None = None,
        board: StatusBoard = BOARD,
        status_interval_s: float = 2.0,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        open_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        snapshot_store: Any = None,
        snapshot_interval_s: float | None = None,
        config_watcher: ConfigWatcher | None = None,
        config_poll_s: float = CONFIG_POLL_S,
        config_problems: dict[str, tuple[str, ...]] | None = None,
        memory_refresh_s: float = MEMORY_REFRESH_S,
    ) -> None:
        self.cameras_file = cameras_file
        if accept is None:
            allowed = None if camera_ids is None else frozenset(camera_ids)
            accept = (lambda _cid: True) if allowed is None else allowed.__contains__
        self._accept = accept
        # the cameras this worker may run: enabled and accepted (with leases it holds a share of them)
        self.cameras = {c.id: c for c in cameras_file.cameras if c.enabled and accept(c.id)}
        self.detectors = detectors
        self.worker_id = worker_id or default_worker_id()
        self.leases = leases
        self.realtime = realtime
        self.speed = speed
        self.gating = gating
        self.session_factory = session_factory
        self.metrics = metrics
        self.board = board
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._runtimes: dict[str, _Runtime] = {}
        self._runtimes_lock = threading.Lock()
        self._frame_ready = threading.Event()
        self._stop_capture = threading.Event()
        self._stop_processing = threading.Event()
        self._processing = threading.Thread(target=self._process_loop, name="processing", daemon=True)
        self._handoff_queue: HandoffQueue | None = None
        self._keeper: EvidenceKeeper | None = None
        if handoff is not None:
            self._keeper = EvidenceKeeper(
                dict(self.cameras), handoff, on_submitted=metrics.count_event if metrics else None
            )
            self._handoff_queue = HandoffQueue(self._keeper)
        self._reporter: StatusReporter | None = None
        if session_factory is not None:
            self._reporter = StatusReporter(self._snapshots, session_factory, interval_s=status_interval_s)
        self._snapshots: SnapshotWriter | None = None
        if snapshot_store is not None:
            kwargs = {} if snapshot_interval_s is None else {"interval_s": snapshot_interval_s}
            self._snapshots = SnapshotWriter(snapshot_store, **kwargs)
        self._config_watcher = config_watcher
        self.config_poll_s = config_poll_s
        self._config_problems: dict[str, tuple[str, ...]] = dict(config_problems or {})
        self._config_updates: queue.SimpleQueue = queue.SimpleQueue()
        self._stop_config = threading.Event()
        self._config_thread = threading.Thread(target=self._config_loop, name="config-watch", daemon=True)
        self.config_changes_applied = 0  # camera config edits applied (started, stopped, reconfigured)
        self._started = False
        self._last_lease_tick = 0.0
        # false-alarm memory per camera (vision.memory), used and refreshed by the processing thread only
        self.memory_refresh_s = memory_refresh_s
        self._memories: dict[str, MemoryBook] = {}
        self._memory_synced_mono = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> StreamWorker:
        import cv2

        # Parallelism comes from cameras (threads) and processes; OpenCV's own thread pool on top of
        # that only oversubscribes the cores (resize/convert of one frame are too small to split).
        cv2.setNumThreads(1)
        if not self.cameras:
            log.warning("worker %s: no enabled cameras to run", self.worker_id)
        if self._handoff_queue is not None:
            self._handoff_queue.start()
        if self._snapshots is not None:
            self._snapshots.start()
        self._processing.start()
        if self.leases is None:
            for cid in self.cameras:
                self._start_camera(cid)
        else:
            self._tick_leases()
        if self._reporter is not None:
            self._reporter.start()
        if self._config_watcher is not None:
            self._config_thread.start()
        self._started = True
        log.info(
            "worker %s: %d camera(s)%s",
            self.worker_id,
            len(self.cameras),
            " via leases" if self.leases else "",
        )
        return self

    def run_until(self, stop: threading.Event) -> None:
        """Supervise until ``stop`` is set: lease rounds, the capture watchdog."""
        while not stop.wait(SUPERVISOR_TICK_S):
            self.supervise_once()

    def supervise_once(self) -> None:
        self._apply_config_updates()
        now = time.monotonic()
        if self.leases is not None and now - self._last_lease_tick >= self.leases.interval_s:
            self._tick_leases()
        with self._runtimes_lock:
            runtimes = list(self._runtimes.values())
        for rt in runtimes:
            cap = rt.capture
            if not cap.is_alive() and not cap.ended and not cap.stopping:
                if now < rt.restart_after_mono:
                    continue
                # The thread died of a bug (already logged with its traceback): give the camera a new one.
                rt.restart_after_mono = now + CRASH_RESTART_S
                log.error("camera %s: capture thread died; restarting it", rt.camera.id)
                rt.capture = self._new_capture(rt.camera, rt.buffer, rt.health)
                rt.capture.start()
            elif cap.is_alive() and now - cap.last_progress_mono > self.stall_timeout_s:
                stuck_s = now - cap.last_progress_mono
                log.error(
                    "camera %s: capture stuck for %.0f s; starting a fresh capture", rt.camera.id, stuck_s
                )
                rt.health.disconnected(f"capture stalled for {stuck_s:.0f} s; restarted", reconnecting=True)
                cap.stop()  # it exits when FFmpeg lets go; its frames are no longer wanted
                rt.capture = self._new_capture(rt.camera, rt.buffer, rt.health)
                rt.capture.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful: stop capture, finish the frames already read, hand off every event, release leases."""
        if not self._started:
            return
        self._started = False
        self._stop_config.set()
        self._stop_capture.set()
        with self._runtimes_lock:
            runtimes = list(self._runtimes.values())
        for rt in runtimes:
            rt.capture.stop()
        deadline = time.monotonic() + timeout_s
        for rt in runtimes:
            rt.capture.join(max(0.1, min(6.0, deadline - time.monotonic())))
        self._stop_processing.set()
        self._frame_ready.set()
        self._processing.join(max(0.1, deadline - time.monotonic()))
        if self._config_thread.is_alive():
            self._config_thread.join(max(0.1, min(5.0, deadline - time.monotonic())))
        if self._handoff_queue is not None:
            self._handoff_queue.close(max(1.0, deadline - time.monotonic()))
        if self._snapshots is not None:
            self._snapshots.close()
        for rt in runtimes:
            rt.health.stopped("worker stopped")
        if self._reporter is not None:
            self._reporter.stop()
            self._reporter.flush()
        if self.leases is not None:
            self.leases.release_all()
        for rt in runtimes:
            self.board.unregister(rt.camera.id)
        log.info("worker %s stopped", self.worker_id)

    # ------------------------------------------------------------------ cameras
    def _snapshots(self) -> list:
        with self._runtimes_lock:
            runtimes = list(self._runtimes.values())
        return [rt.health.snapshot() for rt in runtimes]

    @property
    def running_cameras(self) -> list[str]:
        with self._runtimes_lock:
            return sorted(self._runtimes)

    def health(self, camera_id: str) -> CameraHealth | None:
        with self._runtimes_lock:
            rt = self._runtimes.get(camera_id)
        return rt.health if rt else None

    def _new_capture(self, camera: CameraConfig, buffer: FrameBuffer, health: CameraHealth) -> CaptureThread:
        return CaptureThread(
            camera,
            buffer,
            health,
            realtime=self.realtime,
            speed=self.speed,
            open_timeout_s=self.open_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )

    def _start_camera(self, camera_id: str) -> None:
        camera = self.cameras[camera_id]
        health = CameraHealth(camera.id, camera.detect_fps, worker_id=self.worker_id)
        health.config_problems(self._config_problems.get(camera_id, ()))
        buffer = FrameBuffer(on_ready=self._frame_ready.set)
        rt = _Runtime(camera, health, buffer, self._new_capture(camera, buffer, health))
        self.board.register(health)
        with self._runtimes_lock:
            self._runtimes[camera_id] = rt
        rt.capture.start()
        log.info("camera %s (%s): started", camera.id, mask_url(camera.source.url))

    def _stop_camera(self, camera_id: str, reason: str) -> CameraHealth | None:
        with self._runtimes_lock:
            rt = self._runtimes.pop(camera_id, None)
        if rt is None:
            return None
        rt.capture.stop()
        rt.health.stopped(reason)
        self.board.unregister(camera_id)
        log.info("camera %s: stopped (%s)", camera_id, reason)
        return rt.health

    def _tick_leases(self) -> None:
        assert self.leases is not None
        self._last_lease_tick = time.monotonic()
        change = self.leases.tick()
        for cid in sorted(change.lost):
            self._stop_camera(cid, "lease lost or handed to another worker")
        for cid in sorted(change.gained):
            self._start_camera(cid)

    # ------------------------------------------------------------------ config edits (database)
    def _config_loop(self) -> None:
        """Poll the database for edits; the supervisor applies them (it owns starting/stopping cameras)."""
        assert self._config_watcher is not None
        while not self._stop_config.wait(self.config_poll_s):
            changes = self._config_watcher.poll_once(self.running_cameras)
            if changes:
                self._config_updates.put(changes)

    def _apply_config_updates(self) -> None:
        while True:
            try:
                changes = self._config_updates.get_nowait()
            except queue.Empty:
                return
            for camera_id, loaded in sorted(changes.items()):
                try:
                    self.apply_camera_config(
                        camera_id, loaded.config if loaded else None, loaded.problems if loaded else ()
                    )
                except Exception:  # one camera's edit must not keep the others' from applying
                    log.exception("camera %s: configuration change not applied", camera_id)

    def apply_camera_config(
        self, camera_id: str, camera: CameraConfig | None, problems: tuple[str, ...] = ()
    ) -> None:
        """Apply one camera's new config from the database (None = deleted). Supervisor thread only.

        Disabled or deleted: the camera stops. New: it starts (or joins the lease pool). Running: a new
        source or start time reconnects; a new detect rate resamples without reconnecting; zones,
        motion, time zone and names reach its pipeline between two frames, rule state kept.
        """
        old = self.cameras.get(camera_id)
        self._config_problems[camera_id] = tuple(problems)
        if camera is None or not camera.enabled or not self._accept(camera_id):
            if old is None:
                return
            del self.cameras[camera_id]
            reason = "deleted in the database" if camera is None else "disabled in the database"
            if self.leases is not None:
                self.leases.set_camera_ids(self.cameras)
            health = self._stop_camera(camera_id, reason)
            if health is not None and camera is not None and self._reporter is not None:
                # nobody reports a disabled camera any more: leave "offline, disabled" as its last word
                self._reporter.flush([health.snapshot()])
            self.config_changes_applied += 1
            return
        self.cameras[camera_id] = camera
        if self._keeper is not None:
            self._keeper.cameras[camera_id] = camera  # before any event of the new config can reach it
        if old is None:
            log.info("camera %s: enabled or added in the database; starting", camera_id)
            if self.leases is not None:
                self.leases.set_camera_ids(self.cameras)  # claimed at the next lease round
            else:
                self._start_camera(camera_id)
            self.config_changes_applied += 1
            return
        with self._runtimes_lock:
            rt = self._runtimes.get(camera_id)
        if rt is None:
            return  # not ours right now (leases): it starts with this config when we gain it
        rt.health.config_problems(problems)
        if camera == rt.camera:
            return
        self._reconfigure(rt, camera)
        self.config_changes_applied += 1

    def _reconfigure(self, rt: _Runtime, camera: CameraConfig) -> None:
        old = rt.camera
        rt.camera = camera
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
            rt.buffer = FrameBuffer(on_ready=self._frame_ready.set)
            rt.capture = self._new_capture(camera, rt.buffer, rt.health)
            rt.capture.start()
        elif camera.detect_fps != old.detect_fps:
            log.info("camera %s: detect rate %.3g → %.3g fps", camera.id, old.detect_fps, camera.detect_fps)
            rt.capture.set_detect_fps(camera.detect_fps)
        # A file with video time restarts its clock at 0 when reopened, and a switch between video and
        # epoch seconds has no common clock: rule state cannot carry over either way.
        new_timeline = is_live(camera) != is_live(old) or (reconnect and not is_live(camera))
        if camera.zones != old.zones:
            log.info(
                "camera %s: zones %s → %s; applied from the next frame",
                camera.id,
                [z.id for z in old.zones],
                [z.id for z in camera.zones],
            )
        rt.hand_over(camera, new_timeline)

    def _take_config(self, rt: _Runtime) -> None:
        """Processing thread: give a waiting config edit to the camera's processor before its next frame."""
        pending = rt.take_pending()
        if pending is None or rt.processor is None:
            return  # a processor built later starts from rt.camera, which is already the new config
        camera, new_timeline = pending
        processor = rt.processor
        if camera.group != processor.camera.group:
            processor.detectors = self.detectors.source(camera.group)
            processor.shadow = self.detectors.shadow_source(camera.group, camera.id)
        processor.reconfigure(camera, new_timeline_live=is_live(camera) if new_timeline else None)

    def _processor(self, rt: _Runtime) -> CameraProcessor:
        if rt.processor is None:
            camera = rt.camera
            live = is_live(camera)
            history = None
            if self.session_factory is not None and live:
                try:
                    window_s = self.cameras_file.rules.escalation_window_days * 86400
                    history = load_escalation_history(self.session_factory, camera.id, window_s)
                except Exception as exc:
                    log.warning(
                        "camera %s: escalation history not loaded (%s); counting from zero", camera.id, exc
                    )
            failed, rt.failed_processor = rt.failed_processor, None
            rt.processor = CameraProcessor(
                failed.camera if failed else camera,
                self.cameras_file.rules,
                self.detectors.source(camera.group),
                self._handoff_queue,
                gating=self.gating,
                live=failed.live if failed else live,
                pipeline=failed.pipeline if failed else None,
                health=rt.health,
                on_detect=self.metrics.observe_inference if self.metrics else None,
                escalation_history=history,
                shadow=self.detectors.shadow_source(camera.group, camera.id),
                on_shadow_opened=self._record_shadow_case if self.session_factory is not None else None,
                memory=self._memory_book(camera.id),
            )
            if failed is not None and (failed.camera != camera or failed.live != live):
                # an edit that arrived while the processor was down: applied between two frames as usual
                rt.processor.reconfigure(camera, new_timeline_live=live if failed.live != live else None)
        return rt.processor

    def _memory_book(self, camera_id: str) -> MemoryBook | None:
        """The camera's false-alarm memory, loaded from the database the first time (so a restarted worker
        suppresses from its first frame); None without a database."""
        if self.session_factory is None:
            return None
        book = self._memories.get(camera_id)
        if book is None:
            book = self._memories[camera_id] = MemoryBook()
            try:
                book.replace(load_memory(self.session_factory, [camera_id])[camera_id])
            except Exception as exc:  # the next sync retries; meanwhile nothing is suppressed
                log.warning("camera %s: false-alarm memory not loaded (%s)", camera_id, exc)
        return book

    def _sync_memories(self) -> None:
        """Every ``memory_refresh_s``: save what each camera's memory suppressed, then reload the entries
        (new rejections, deletions by an admin, expiries)."""
        if not self._memories or time.monotonic() - self._memory_synced_mono < self.memory_refresh_s:
            return
        self._memory_synced_mono = time.monotonic()
        running = set(self.running_cameras)
        for camera_id in [c for c in self._memories if c not in running]:
            del self._memories[camera_id]
        try:
            updates = [u for book in self._memories.values() for u in book.take_updates()]
            entries = sync_memory(self.session_factory, updates, list(self._memories))
        except Exception as exc:
            log.warning("false-alarm memory not synced (%s); retrying in %.0f s", exc, self.memory_refresh_s)
            return
        for camera_id, book in self._memories.items():
            book.replace(entries.get(camera_id, []))

    def _record_shadow_case(self, version: str, event: Any) -> None:
        """A shadow model would have opened a case: count it (never create it)."""
        try:
            record_shadow_opened(self.session_factory, version, event)
        except Exception as exc:  # a lost count is better than a stalled camera
            log.warning("shadow case of %s (%s) not recorded: %s", version, event.violation_id, exc)

    # ------------------------------------------------------------------ processing thread
    def _process_loop(self) -> None:
        rotate = 0
        while True:
            self._frame_ready.clear()
            with self._runtimes_lock:
                runtimes = list(self._runtimes.values())
            did_work = False
            if runtimes:
                rotate = (rotate + 1) % len(runtimes)
                for rt in runtimes[rotate:] + runtimes[:rotate]:
                    buffer = rt.buffer
                    frame = buffer.get_nowait()
                    if frame is None:
                        continue
                    did_work = True
                    if self.leases is not None and not self.leases.valid(rt.camera.id):
                        continue  # our lease may have passed to another worker: never process twice
                    self._process_one(rt, frame, buffer)
            self._sync_memories()
            if not did_work:
                if self._stop_processing.is_set():
                    self._memory_synced_mono = -float("inf")
                    self._sync_memories()  # the last counts are not lost with the worker
                    return  # every frame read before the stop has been processed
                self._frame_ready.wait(0.05)

    def _process_one(self, rt: _Runtime, frame: SampledFrame, buffer: FrameBuffer | None = None) -> None:
        try:
            self._take_config(rt)
            # After the config: a source change swaps the buffer before it hands the config over.
            if buffer is not None and buffer is not rt.buffer:
                return  # a frame of the replaced source
            self._processor(rt).process(frame)
            rt.error_count = 0
            if self._snapshots is not None:
                self._snapshots.offer(rt.camera.id, frame.image, rt.health)
        except Exception as exc:
            rt.error_count += 1
            if rt.error_count in (1, 10) or rt.error_count % 1000 == 0:
                log.exception("camera %s: frame not processed (%d in a row)", rt.camera.id, rt.error_count)
            rt.health.processing_failed(f"processing failed: {type(exc).__name__}: {exc}")
            if rt.error_count in PROCESSOR_REBUILD_AT or rt.error_count % PROCESSOR_REBUILD_AT[-1] == 0:
                # Rebuild the camera's processor (detector source, motion gate) next frame. Its rules keep
                # what they remember (rule failures are fenced inside the pipeline); only when failures
                # go on does the pipeline start afresh too.
                keep = rt.error_count < PROCESSOR_REBUILD_AT[-1]
                rt.failed_processor = rt.processor if keep else None
                rt.processor = None
