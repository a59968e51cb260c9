"""The processing thread of a stream worker: one thread, every running camera, one frame at a time.

It round-robins over the cameras' two-frame buffers, gives each frame to the camera's ``CameraProcessor``
(motion gate → detector → tracker → zones → rules → hand-off queue) and owns those processors: it builds
them (with the camera's escalation history and false-alarm memory), hands them a new config version
between two frames, and rebuilds one after errors in a row keeping its rule state (``PROCESSOR_REBUILD_AT``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from streams.camera import CameraProcessor
from streams.camera_runtime import CameraRuntime, CameraRuntimes, is_live
from streams.capture import FrameBuffer, SampledFrame
from streams.detector_pool import DetectorPool
from streams.events import HandoffQueue
from streams.leases import LeaseManager
from streams.metrics import StreamMetrics
from streams.observers import FrameObserver
from streams.snapshots import SnapshotWriter
from streams.worker_db import EscalationHistory, WorkerDb
from vision.config import RulesConfig
from vision.memory import MemoryBook
from vision.types import ViolationEvent

log = logging.getLogger(__name__)

#: Errors in a row after which a camera's processor is rebuilt keeping its rule state; at the last one (and
#: every as many after) the rule state starts afresh too.
PROCESSOR_REBUILD_AT = (3, 10)
#: How often the processing thread saves and reloads the cameras' false-alarm memory (settings: memory_refresh_s).
MEMORY_REFRESH_S = 30.0


class CameraMemories:
    """The false-alarm memory (``vision.memory.MemoryBook``) of each camera. Processing thread only."""

    def __init__(self, db: WorkerDb, refresh_s: float = MEMORY_REFRESH_S) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self._books: dict[str, MemoryBook] = {}
        self._synced_mono = time.monotonic()

    def book(self, camera_id: str) -> MemoryBook:
        """The camera's memory, loaded from the database the first time (so a restarted worker suppresses
        from its first frame)."""
        book = self._books.get(camera_id)
        if book is None:
            book = self._books[camera_id] = MemoryBook()
            try:
                book.replace(self.db.live_memory([camera_id])[camera_id])
            except Exception as exc:  # the next sync retries; meanwhile nothing is suppressed
                log.warning("camera %s: false-alarm memory not loaded (%s)", camera_id, exc)
        return book

    def sync(self, running: list[str], *, force: bool = False) -> None:
        """Every ``refresh_s`` (or now, with ``force``): save what each camera's memory suppressed, then
        reload the entries (new rejections, deletions by an admin, expiries). Cameras no longer running
        are dropped."""
        if not self._books or (not force and time.monotonic() - self._synced_mono < self.refresh_s):
            return
        self._synced_mono = time.monotonic()
        keep = set(running)
        for camera_id in [c for c in self._books if c not in keep]:
            del self._books[camera_id]
        try:
            updates = [u for book in self._books.values() for u in book.take_updates()]
            entries = self.db.sync_memory(updates, list(self._books))
        except Exception as exc:
            log.warning("false-alarm memory not synced (%s); retrying in %.0f s", exc, self.refresh_s)
            return
        for camera_id, book in self._books.items():
            book.replace(entries.get(camera_id, []))


class ProcessingLoop:
    """The processing thread (see the module docstring).

    Args:
        runtimes: the running cameras.
        detectors: detector per camera group.
        rules: rule settings.
        sink: where events go; None = discarded.
        gating: motion gating on or off.
        leases: with leases a frame is processed only while the camera's lease is valid.
        metrics: Prometheus metrics; None = not recorded.
        db: the database (escalation history, false-alarm memory, shadow counts); None = none.
        snapshots: gets each processed frame for the camera page; None = none.
        memory_refresh_s: how often the false-alarm memory is saved and reloaded.
        observers: frame observers every camera's processor gives its frames to (``streams.observers``).
    """

    def __init__(
        self,
        runtimes: CameraRuntimes,
        detectors: DetectorPool,
        rules: RulesConfig,
        sink: HandoffQueue | None,
        *,
        gating: bool = True,
        leases: LeaseManager | None = None,
        metrics: StreamMetrics | None = None,
        db: WorkerDb | None = None,
        snapshots: SnapshotWriter | None = None,
        memory_refresh_s: float = MEMORY_REFRESH_S,
        observers: Sequence[FrameObserver] = (),
    ) -> None:
        self.runtimes = runtimes
        self.observers = tuple(observers)
        self.detectors = detectors
        self.rules = rules
        self.sink = sink
        self.gating = gating
        self.leases = leases
        self.metrics = metrics
        self.db = db
        self.snapshots = snapshots
        self.memories = CameraMemories(db, memory_refresh_s) if db is not None else None
        self.frame_ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Finish every frame already read, save the memory's last counts, then return."""
        self._stop.set()
        self.frame_ready.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        rotate = 0
        while True:
            self.frame_ready.clear()
            runtimes = self.runtimes.all()
            did_work = False
            if runtimes:
                rotate = (rotate + 1) % len(runtimes)
                for rt in runtimes[rotate:] + runtimes[:rotate]:
                    buffer = rt.buffer
                    frame = buffer.get_nowait()
                    if frame is None:
                        continue
                    did_work = True
                    if self.leases is not None and not self.leases.valid(rt.camera_id):
                        continue  # our lease may have passed to another worker: never process twice
                    self.process_one(rt, frame, buffer)
            if self.memories is not None:
                self.memories.sync(self.runtimes.ids())
            if not did_work:
                if self._stop.is_set():
                    if self.memories is not None:
                        self.memories.sync(self.runtimes.ids(), force=True)  # the last counts are kept
                    return  # every frame read before the stop has been processed
                self.frame_ready.wait(0.05)

    def process_one(self, rt: CameraRuntime, frame: SampledFrame, buffer: FrameBuffer | None = None) -> None:
        try:
            self._take_config(rt)
            # After the config: a source change swaps the buffer before it swaps the config version.
            if buffer is not None and buffer is not rt.buffer:
                return  # a frame of the replaced source
            self._processor(rt).process(frame)
            rt.error_count = 0
            if self.snapshots is not None:
                self.snapshots.offer(rt.camera_id, frame.image, rt.health)
        except Exception as exc:
            self._failed(rt, exc)

    def _failed(self, rt: CameraRuntime, exc: Exception) -> None:
        rt.error_count += 1
        if rt.error_count in (1, 10) or rt.error_count % 1000 == 0:
            log.error(
                "camera %s: frame not processed (%d in a row)", rt.camera_id, rt.error_count, exc_info=exc
            )
        rt.health.processing_failed(f"processing failed: {type(exc).__name__}: {exc}")
        if rt.error_count in PROCESSOR_REBUILD_AT or rt.error_count % PROCESSOR_REBUILD_AT[-1] == 0:
            # Rebuild the camera's processor (detector source, motion gate) next frame. Its rules keep
            # what they remember (rule failures are fenced inside the pipeline); only when failures
            # go on does the pipeline start afresh too.
            keep = rt.error_count < PROCESSOR_REBUILD_AT[-1]
            rt.failed_processor = rt.processor if keep else None
            rt.processor = None

    def _take_config(self, rt: CameraRuntime) -> None:
        """Give a new config version to the camera's processor before its next frame."""
        version = rt.config
        applied = rt.applied
        if rt.processor is None or applied is None or version.number == applied.number:
            return  # a processor built later starts from the current version
        camera = version.camera
        processor = rt.processor
        if camera.group != processor.camera.group:
            processor.detectors = self.detectors.source(camera.group)
            processor.shadow = self.detectors.shadow_source(camera.group, camera.id)
        new_timeline = version.timeline != applied.timeline
        processor.reconfigure(camera, new_timeline_live=is_live(camera) if new_timeline else None)
        rt.applied = version

    def _processor(self, rt: CameraRuntime) -> CameraProcessor:
        if rt.processor is not None:
            return rt.processor
        version = rt.config
        camera = version.camera
        live = is_live(camera)
        failed, rt.failed_processor = rt.failed_processor, None
        rt.processor = CameraProcessor(
            failed.camera if failed else camera,
            self.rules,
            self.detectors.source(camera.group),
            self.sink,
            gating=self.gating,
            live=failed.live if failed else live,
            pipeline=failed.pipeline if failed else None,
            health=rt.health,
            on_detect=self.metrics.observe_inference if self.metrics else None,
            escalation_history=self._escalation_history(camera.id, live),
            shadow=self.detectors.shadow_source(camera.group, camera.id),
            on_shadow_opened=self._record_shadow_case if self.db is not None else None,
            memory=self.memories.book(camera.id) if self.memories is not None else None,
            observers=self.observers,
        )
        rt.applied = version
        if failed is not None and (failed.camera != camera or failed.live != live):
            # an edit that arrived while the processor was down: applied between two frames as usual
            rt.processor.reconfigure(camera, new_timeline_live=live if failed.live != live else None)
        return rt.processor

    def _escalation_history(self, camera_id: str, live: bool) -> EscalationHistory | None:
        """The camera's offences in the escalation window (live cameras with a database), else None."""
        if self.db is None or not live:
            return None
        try:
            return self.db.escalation_history(camera_id, self.rules.escalation_window_days * 86400)
        except Exception as exc:
            log.warning("camera %s: escalation history not loaded (%s); counting from zero", camera_id, exc)
            return None

    def _record_shadow_case(self, version: str, event: ViolationEvent) -> None:
        """A shadow model would have opened a case: count it (never create it)."""
        assert self.db is not None
        try:
            self.db.record_shadow_opened(version, event)
        except Exception as exc:  # a lost count is better than a stalled camera
            log.warning("shadow case of %s (%s) not recorded: %s", version, event.violation_id, exc)
