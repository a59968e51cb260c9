"""A stream worker process: many cameras, one detector session per camera group, one processing thread.

Layout (measured, see docs/streams.md): capture in one thread per camera (decoding releases the GIL),
one processing thread that round-robins over the cameras' two-frame buffers and owns the detector, and
one hand-off thread for evidence and cases. ONNX Runtime runs with one intra-op thread; on a 2-core
machine two such processes beat one process with a 2-thread session, so scale with ``--processes``.

Start-up and shutdown read top to bottom::

    worker = StreamWorker(cameras_file, detectors, keeper_handoff, ...)
    worker.start()          # init_detectors → start_handoff → start_processing → start_cameras/leases
    worker.run_until(stop)  # lease ticks, capture watchdog, status reports
    worker.stop()           # stop capture → finish in-flight frames → flush events → release leases

A failing camera (unreachable, corrupt file, a bug in its rules) only ever sets its own status error.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
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
from streams.events import EvidenceKeeper, HandoffLike, HandoffQueue
from streams.leases import LeaseManager
from streams.metrics import StreamMetrics
from streams.snapshots import SnapshotWriter
from streams.sources import SourceKind, mask_url, source_kind
from streams.status import BOARD, CameraHealth, StatusBoard, StatusReporter
from vision.config import CameraConfig, CamerasFile

log = logging.getLogger(__name__)

#: A capture thread that has made no progress (no grab returned, no backoff tick) for this long is stuck
#: inside FFmpeg despite the timeouts; the watchdog abandons it and starts a fresh one.
STALL_TIMEOUT_S = 15.0
SUPERVISOR_TICK_S = 0.5
CRASH_RESTART_S = 10.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DetectorPool:
    """One detector per camera group in this process, shared by all its cameras.

    With ``model_path`` every group uses that ONNX (no hot reload: replay, benchmarks, ``--model``).
    Otherwise each group gets a ``models.hot_reload.ModelWatcher`` that follows the registry's active model
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
        from models.hot_reload import ModelWatcher

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
    error_count: int = 0
    started_mono: float = field(default_factory=time.monotonic)
    restart_after_mono: float = 0.0  # a crashed capture is restarted at most every CRASH_RESTART_S


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


def record_shadow_opened(session_factory: Any, version: str, event: Any) -> bool:
    """Count a shadow model's would-be case (``models.registry.record_shadow_case``). True if new."""
    from models.registry import record_shadow_case

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
        leases: claim cameras through leases instead of running all of ``camera_ids``.
        realtime: pace file sources at their native rate (a live worker); False reads files flat out.
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
        leases: LeaseManager | None = None,
        realtime: bool = True,
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
    ) -> None:
        self.cameras_file = cameras_file
        enabled = {c.id: c for c in cameras_file.cameras if c.enabled}
        wanted = list(enabled) if camera_ids is None else [c for c in camera_ids if c in enabled]
        self.cameras = {cid: enabled[cid] for cid in wanted}
        self.detectors = detectors
        self.worker_id = worker_id or default_worker_id()
        self.leases = leases
        self.realtime = realtime
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
        if handoff is not None:
            keeper = EvidenceKeeper(
                dict(self.cameras), handoff, on_submitted=metrics.count_event if metrics else None
            )
            self._handoff_queue = HandoffQueue(keeper)
        self._reporter: StatusReporter | None = None
        if session_factory is not None:
            self._reporter = StatusReporter(self._snapshots, session_factory, interval_s=status_interval_s)
        self._snapshots: SnapshotWriter | None = None
        if snapshot_store is not None:
            kwargs = {} if snapshot_interval_s is None else {"interval_s": snapshot_interval_s}
            self._snapshots = SnapshotWriter(snapshot_store, **kwargs)
        self._started = False
        self._last_lease_tick = 0.0

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
            open_timeout_s=self.open_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )

    def _start_camera(self, camera_id: str) -> None:
        camera = self.cameras[camera_id]
        health = CameraHealth(camera.id, camera.detect_fps, worker_id=self.worker_id)
        buffer = FrameBuffer(on_ready=self._frame_ready.set)
        rt = _Runtime(camera, health, buffer, self._new_capture(camera, buffer, health))
        self.board.register(health)
        with self._runtimes_lock:
            self._runtimes[camera_id] = rt
        rt.capture.start()
        log.info("camera %s (%s): started", camera.id, mask_url(camera.source.url))

    def _stop_camera(self, camera_id: str, reason: str) -> None:
        with self._runtimes_lock:
            rt = self._runtimes.pop(camera_id, None)
        if rt is None:
            return
        rt.capture.stop()
        rt.health.stopped(reason)
        self.board.unregister(camera_id)
        log.info("camera %s: stopped (%s)", camera_id, reason)

    def _tick_leases(self) -> None:
        assert self.leases is not None
        self._last_lease_tick = time.monotonic()
        change = self.leases.tick()
        for cid in sorted(change.lost):
            self._stop_camera(cid, "lease lost or handed to another worker")
        for cid in sorted(change.gained):
            self._start_camera(cid)

    def _processor(self, rt: _Runtime) -> CameraProcessor:
        if rt.processor is None:
            camera = rt.camera
            live = camera.start_time is None or source_kind(camera.source.url) is not SourceKind.FILE
            history = None
            if self.session_factory is not None and live:
                try:
                    window_s = self.cameras_file.rules.escalation_window_days * 86400
                    history = load_escalation_history(self.session_factory, camera.id, window_s)
                except Exception as exc:
                    log.warning(
                        "camera %s: escalation history not loaded (%s); counting from zero", camera.id, exc
                    )
            rt.processor = CameraProcessor(
                camera,
                self.cameras_file.rules,
                self.detectors.source(camera.group),
                self._handoff_queue,
                gating=self.gating,
                live=live,
                health=rt.health,
                on_detect=self.metrics.observe_inference if self.metrics else None,
                escalation_history=history,
                shadow=self.detectors.shadow_source(camera.group, camera.id),
                on_shadow_opened=self._record_shadow_case if self.session_factory is not None else None,
            )
        return rt.processor

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
                    frame = rt.buffer.get_nowait()
                    if frame is None:
                        continue
                    did_work = True
                    if self.leases is not None and not self.leases.valid(rt.camera.id):
                        continue  # our lease may have passed to another worker: never process twice
                    self._process_one(rt, frame)
            if not did_work:
                if self._stop_processing.is_set():
                    return  # every frame read before the stop has been processed
                self._frame_ready.wait(0.05)

    def _process_one(self, rt: _Runtime, frame: SampledFrame) -> None:
        try:
            self._processor(rt).process(frame)
            rt.error_count = 0
            if self._snapshots is not None:
                self._snapshots.offer(rt.camera.id, frame.image, rt.health)
        except Exception as exc:
            rt.error_count += 1
            if rt.error_count in (1, 10) or rt.error_count % 1000 == 0:
                log.exception("camera %s: frame not processed (%d in a row)", rt.camera.id, rt.error_count)
            rt.health.processing_failed(f"processing failed: {type(exc).__name__}: {exc}")
            if rt.error_count >= 3:
                rt.processor = None  # rebuild the camera's pipeline (and reload its model) next frame
