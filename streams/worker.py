"""A stream worker process: many cameras, one detector session per camera group, one processing thread.

Layout (measured, see docs/streams.md): capture in one thread per camera (decoding releases the GIL),
one processing thread that round-robins over the cameras' two-frame buffers and owns the detector, and
one hand-off thread for evidence and cases. ONNX Runtime runs with one intra-op thread; on a 2-core
machine two such processes beat one process with a 2-thread session, so scale with ``--processes``.

Start-up and shutdown read top to bottom::

    worker = StreamWorker(cameras_file, detectors, keeper_handoff, ...)
    worker.start()          # start_handoff → start_processing → start_cameras/leases → status, config watch
    worker.run_until(stop)  # config edits, lease ticks, capture watchdog
    worker.stop()           # stop capture → finish in-flight frames → flush events → release leases

``StreamWorker`` only wires its parts together:

- ``streams.supervisor.Supervisor``: starts and stops cameras, the capture watchdog, lease rounds;
- ``streams.config_apply.ConfigApplier``: with a ``ConfigWatcher`` the database is the live source of the
  cameras: a thread polls it, the supervisor thread applies what changed (start/stop cameras, reconnect a
  changed source, a new detect rate, new zones as a new config version);
- ``streams.processing.ProcessingLoop``: the processing thread; it hands a camera's new config version to
  the camera's pipeline between two frames;
- ``streams.camera_runtime``: each camera's one current config, swapped whole under a lock;
- ``streams.worker_db.WorkerDb``: what the worker reads and writes in the database.

A failing camera (unreachable, corrupt file, a bug in its rules, a bad zone row) only ever sets its own
status error.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import cv2

from streams.camera_runtime import CameraRuntimes, WorkerCameras
from streams.config_apply import ConfigApplier
from streams.config_watch import CONFIG_POLL_S, ConfigWatcher
from streams.detector_pool import DetectorPool
from streams.events import EvidenceKeeper, HandoffLike, HandoffQueue
from streams.leases import LeaseManager
from streams.metrics import StreamMetrics
from streams.observers import FrameObserver
from streams.processing import MEMORY_REFRESH_S, ProcessingLoop
from streams.snapshots import SnapshotWriter
from streams.status import BOARD, CameraHealth, StatusBoard, StatusReporter
from streams.supervisor import STALL_TIMEOUT_S, CaptureOptions, Supervisor
from streams.worker_db import WorkerDb, record_shadow_opened
from vision.config import CameraConfig, CamerasFile

# DetectorPool and record_shadow_opened live in their own modules; importable from here as before
__all__ = ["DetectorPool", "StreamWorker", "default_worker_id", "record_shadow_opened"]

log = logging.getLogger(__name__)

SUPERVISOR_TICK_S = 0.5


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _accepting(camera_ids: Iterable[str] | None) -> Callable[[str], bool]:
    """Which cameras a worker given ``camera_ids`` may run (all, without a list)."""
    if camera_ids is None:
        return lambda _cid: True
    return frozenset(camera_ids).__contains__


def _evidence_keeper(
    cameras: list[CameraConfig], handoff: HandoffLike | None, metrics: StreamMetrics | None
) -> EvidenceKeeper | None:
    if handoff is None:
        return None
    on_submitted = metrics.count_event if metrics else None
    return EvidenceKeeper({c.id: c for c in cameras}, handoff, on_submitted=on_submitted)


def _snapshot_writer(store: Any, interval_s: float | None) -> SnapshotWriter | None:
    if store is None:
        return None
    return SnapshotWriter(store) if interval_s is None else SnapshotWriter(store, interval_s)


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
        session_factory: database sessions (status reporter, escalation history, false-alarm memory, shadow
            counts); None = none.
        metrics: Prometheus metrics; None = not recorded.
        snapshot_store: evidence store for camera snapshots (``streams.snapshots``); None = none.
        observers: frame observers of every camera (``streams.observers``: annotation sampling, re-checks).
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
        observers: Sequence[FrameObserver] = (),
    ) -> None:
        self.cameras_file = cameras_file
        self.worker_id = worker_id or default_worker_id()
        self.leases = leases
        self.board = board
        accept = accept or _accepting(camera_ids)
        enabled = [c for c in cameras_file.cameras if c.enabled and accept(c.id)]
        self._keeper = _evidence_keeper(enabled, handoff, metrics)
        self._handoff_queue = HandoffQueue(self._keeper) if self._keeper is not None else None
        self._cameras = WorkerCameras(enabled, on_put=self._keeper.set_camera if self._keeper else None)
        self._runtimes = CameraRuntimes()
        self._snapshot_writer = _snapshot_writer(snapshot_store, snapshot_interval_s)
        self._processing = ProcessingLoop(
            self._runtimes,
            detectors,
            cameras_file.rules,
            self._handoff_queue,
            gating=gating,
            leases=leases,
            metrics=metrics,
            db=WorkerDb(session_factory) if session_factory is not None else None,
            snapshots=self._snapshot_writer,
            memory_refresh_s=memory_refresh_s,
            observers=observers,
        )
        self._supervisor = Supervisor(
            self._cameras,
            self._runtimes,
            worker_id=self.worker_id,
            board=board,
            leases=leases,
            capture=CaptureOptions(realtime, speed, open_timeout_s, read_timeout_s),
            on_frame=self._processing.frame_ready.set,
            stall_timeout_s=stall_timeout_s,
            config_problems=config_problems,
        )
        self._reporter = (
            StatusReporter(self._supervisor.status_snapshots, session_factory, interval_s=status_interval_s)
            if session_factory is not None
            else None
        )
        self._config = ConfigApplier(
            self._cameras,
            self._runtimes,
            self._supervisor,
            accept=accept,
            leases=leases,
            reporter=self._reporter,
            watcher=config_watcher,
            poll_s=config_poll_s,
        )
        self._started = False

    @property
    def cameras(self) -> Mapping[str, CameraConfig]:
        """The configs of the cameras this worker may run (enabled, accepted), by id; read-only."""
        return self._cameras.current

    @property
    def config_changes_applied(self) -> int:
        """Camera config edits applied (started, stopped, reconfigured)."""
        return self._config.changes_applied

    @property
    def running_cameras(self) -> list[str]:
        return self._runtimes.ids()

    def health(self, camera_id: str) -> CameraHealth | None:
        rt = self._runtimes.get(camera_id)
        return rt.health if rt else None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> StreamWorker:
        # Parallelism comes from cameras (threads) and processes; OpenCV's own thread pool on top of
        # that only oversubscribes the cores (resize/convert of one frame are too small to split).
        cv2.setNumThreads(1)
        if not self._cameras.current:
            log.warning("worker %s: no enabled cameras to run", self.worker_id)
        if self._handoff_queue is not None:
            self._handoff_queue.start()
        if self._snapshot_writer is not None:
            self._snapshot_writer.start()
        self._processing.start()
        self._supervisor.start_all()
        if self._reporter is not None:
            self._reporter.start()
        self._config.start()
        self._started = True
        log.info(
            "worker %s: %d camera(s)%s",
            self.worker_id,
            len(self._cameras.current),
            " via leases" if self.leases else "",
        )
        return self

    def run_until(self, stop: threading.Event) -> None:
        """Supervise until ``stop`` is set: config edits, lease rounds, the capture watchdog."""
        while not stop.wait(SUPERVISOR_TICK_S):
            self.supervise_once()

    def supervise_once(self) -> None:
        self._config.apply_pending()
        self._supervisor.supervise_once()

    def apply_camera_config(
        self, camera_id: str, camera: CameraConfig | None, problems: tuple[str, ...] = ()
    ) -> None:
        """Apply one camera's new config from the database (None = deleted). Supervisor thread only.

        See ``streams.config_apply.ConfigApplier.apply``.
        """
        self._config.apply(camera_id, camera, problems)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful: stop capture, finish the frames already read, hand off every event, release leases."""
        if not self._started:
            return
        self._started = False
        self._config.signal_stop()
        runtimes = self._runtimes.all()
        for rt in runtimes:
            rt.capture.stop()
        deadline = time.monotonic() + timeout_s
        for rt in runtimes:
            rt.capture.join(max(0.1, min(6.0, deadline - time.monotonic())))
        self._processing.stop(max(0.1, deadline - time.monotonic()))
        self._config.join(max(0.1, min(5.0, deadline - time.monotonic())))
        if self._handoff_queue is not None:
            self._handoff_queue.close(max(1.0, deadline - time.monotonic()))
        if self._snapshot_writer is not None:
            self._snapshot_writer.close()
        for rt in runtimes:
            rt.health.stopped("worker stopped")
        if self._reporter is not None:
            self._reporter.stop()
            self._reporter.flush()
        if self.leases is not None:
            self.leases.release_all()
        for rt in runtimes:
            self.board.unregister(rt.camera_id)
        log.info("worker %s stopped", self.worker_id)
