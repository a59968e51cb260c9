"""What happens to a camera's violation events: evidence frames and the hand-off to cases.

``EvidenceKeeper`` turns events into ``Handoff.submit`` calls:

- ``sighting``: render that frame (clean JPEG, annotated, crop via ``vision.evidence``) and keep it in a
  bounded per-camera store: it becomes evidence seq 1 if the place goes on to open;
- ``opened``: submit seq 1 (the stored first sighting) + seq 2 (this frame, the dwell crossing);
- ``updated``: submit it, with this frame as the next seq when the rules ask for evidence;
- ``closed``: submit the close; forget the violation.

``HandoffQueue`` runs the keeper on its own thread behind a bounded queue, so JPEG encoding and the
spool's fsync never hold up the processing thread; only sightings may be dropped when it is full.
``JsonlEventWriter`` is the service-free sink of ``urbaneye replay``.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from streams.capture import SampledFrame
from urbaneye.cases.spool import CaseContext, EvidenceFrame
from vision.config import CameraConfig
from vision.evidence import render_evidence
from vision.geometry import polygon_px_int
from vision.types import PUBLIC_EVENT_KINDS, Detections, EventKind, ViolationEvent

log = logging.getLogger(__name__)

#: Violations whose first-sighting evidence is kept per camera; the oldest is forgotten beyond this.
SIGHTINGS_PER_CAMERA = 64
#: Events waiting for the hand-off thread.
HANDOFF_QUEUE_SIZE = 128
SIGHTING_WAIT_S = 2.0


class HandoffLike(Protocol):
    def submit(self, event: ViolationEvent, frames: list[EvidenceFrame], context: CaseContext) -> Any: ...


@dataclass(frozen=True)
class _Rendered:
    frame_ts: dt.datetime  # wall clock, UTC
    clean_jpg: bytes
    annotated_jpg: bytes
    crop_jpg: bytes


@dataclass(frozen=True)
class _HandoffJob:
    """One event waiting in ``HandoffQueue`` with what ``EvidenceKeeper.handle`` needs for it."""

    event: ViolationEvent
    frame: SampledFrame
    detections: Detections
    model_version: str


def zone_polygon_px(camera: CameraConfig, zone_id: str, frame_wh: tuple[int, int]) -> np.ndarray:
    """(k, 2) int32 pixel polygon of a camera zone (empty if the zone is unknown)."""
    w, h = frame_wh
    for zone in camera.zones:
        if zone.id == zone_id:
            return polygon_px_int(zone.polygon, (w, h))
    return np.zeros((0, 2), np.int32)


def _zone_name(camera: CameraConfig, zone_id: str) -> str:
    return next((z.name or z.id for z in camera.zones if z.id == zone_id), zone_id)


class EvidenceKeeper:
    """Evidence and hand-off for the cameras of one worker. Not thread-safe: one thread calls ``handle``;
    another may hand in a camera's new config (``set_camera``).

    Args:
        cameras: camera configs by id (the keeper keeps its own copy).
        handoff: ``urbaneye.cases.handoff.Handoff`` (or anything with its ``submit``).
        on_submitted: called with each submitted event (metrics).
    """

    def __init__(
        self,
        cameras: dict[str, CameraConfig],
        handoff: HandoffLike,
        *,
        on_submitted: Callable[[ViolationEvent], None] | None = None,
        sightings_per_camera: int = SIGHTINGS_PER_CAMERA,
    ) -> None:
        # replaced whole under the lock by set_camera (supervisor thread), read by handle (hand-off thread)
        self._cameras_lock = threading.Lock()
        self.cameras: dict[str, CameraConfig] = dict(cameras)
        self.handoff = handoff
        self.on_submitted = on_submitted
        self.sightings_per_camera = sightings_per_camera
        self._sightings: dict[str, collections.OrderedDict[str, _Rendered]] = {}
        self._next_seq: dict[str, int] = {}
        self.failed = 0

    def _render(
        self, camera: CameraConfig, event: ViolationEvent, frame: SampledFrame, det: Detections
    ) -> _Rendered:
        images = render_evidence(
            frame.image,
            event,
            det,
            zone_polygon_px(camera, event.zone_id, frame.wh),
            camera.name or camera.id,
            camera.local_time(frame.ts_s, live=frame.live),
        )
        return _Rendered(frame.frame_time, images.clean_jpg, images.annotated_jpg, images.crop_jpg)

    @staticmethod
    def _frames(seq: int, rendered: _Rendered) -> list[EvidenceFrame]:
        return [
            EvidenceFrame(seq, "clean", rendered.clean_jpg, rendered.frame_ts),
            EvidenceFrame(seq, "annotated", rendered.annotated_jpg, rendered.frame_ts),
            EvidenceFrame(seq, "crop", rendered.crop_jpg, rendered.frame_ts),
        ]

    def context(
        self, camera: CameraConfig, event: ViolationEvent, frame: SampledFrame, model_version: str
    ) -> CaseContext:
        return CaseContext(
            camera_id=camera.id,
            camera_name=camera.name,
            model_version=model_version,
            frame_wh=(int(frame.wh[0]), int(frame.wh[1])),
            zone_name=_zone_name(camera, event.zone_id),
            location=camera.location,
            timezone=camera.timezone,
            event_time=frame.frame_time,
            bike_operator_routing=camera.bike_operator_routing,
        )

    def set_camera(self, camera: CameraConfig) -> None:
        """A camera's new config, for the events that follow (any thread; the config edit's thread)."""
        with self._cameras_lock:
            self.cameras = {**self.cameras, camera.id: camera}

    def handle(
        self, event: ViolationEvent, frame: SampledFrame, detections: Detections, model_version: str
    ) -> None:
        """Render/keep/submit one event. Never raises: a failure is logged and counted."""
        with self._cameras_lock:
            camera = self.cameras[event.camera_id]
        try:
            self._handle(camera, event, frame, detections, model_version)
        except Exception:
            self.failed += 1
            log.exception(
                "camera %s: %s event of %s not handed off", camera.id, event.event, event.violation_id
            )

    def _handle(
        self,
        camera: CameraConfig,
        event: ViolationEvent,
        frame: SampledFrame,
        detections: Detections,
        model_version: str,
    ) -> None:
        store = self._sightings.setdefault(camera.id, collections.OrderedDict())
        vid = event.violation_id
        if event.event == EventKind.SIGHTING:
            store[vid] = self._render(camera, event, frame, detections)
            store.move_to_end(vid)
            while len(store) > self.sightings_per_camera:
                store.popitem(last=False)
            return
        if event.event not in PUBLIC_EVENT_KINDS:
            log.debug("camera %s: ignoring event kind %r", camera.id, event.event)
            return
        frames: list[EvidenceFrame] = []
        if event.event == EventKind.OPENED:
            first = store.pop(vid, None)
            seq = 1
            if first is not None:
                frames += self._frames(1, first)
                seq = 2
            else:  # the hand-off will refuse it (two moments are required); say why first
                log.error(
                    "camera %s: no first-sighting frame kept for %s (worker restarted or store overflowed)",
                    camera.id,
                    vid,
                )
            frames += self._frames(seq, self._render(camera, event, frame, detections))
            self._next_seq[vid] = seq + 1
        elif event.event == EventKind.UPDATED and event.evidence_request:
            seq = self._next_seq.get(vid, 3)
            frames += self._frames(seq, self._render(camera, event, frame, detections))
            self._next_seq[vid] = seq + 1
        elif event.event == EventKind.CLOSED:
            self._next_seq.pop(vid, None)
            store.pop(vid, None)
        self.handoff.submit(event, frames, self.context(camera, event, frame, model_version))
        if self.on_submitted:
            self.on_submitted(event)


class HandoffQueue:
    """Runs an ``EvidenceKeeper`` on its own thread behind a bounded queue.

    ``put`` blocks (back-pressure) for opened/updated/closed, which must never be lost. A sighting waits
    at most ``SIGHTING_WAIT_S`` and is then dropped (counted in ``dropped_sightings``): its violation
    then cannot open with two evidence moments, which is better than stalling every camera of the worker.
    """

    def __init__(self, keeper: EvidenceKeeper, maxsize: int = HANDOFF_QUEUE_SIZE) -> None:
        self.keeper = keeper
        self._queue: queue.Queue[_HandoffJob | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name="handoff", daemon=True)
        self.dropped_sightings = 0
        self._started = False

    def start(self) -> HandoffQueue:
        self._thread.start()
        self._started = True
        return self

    def put(
        self, event: ViolationEvent, frame: SampledFrame, detections: Detections, model_version: str
    ) -> None:
        job = _HandoffJob(event, frame, detections, model_version)
        if event.event == EventKind.SIGHTING:
            try:
                self._queue.put(job, timeout=SIGHTING_WAIT_S)
            except queue.Full:
                self.dropped_sightings += 1
                log.warning("hand-off queue full: first-sighting frame of %s dropped", event.violation_id)
            return
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.keeper.handle(job.event, job.frame, job.detections, job.model_version)
            finally:
                self._queue.task_done()

    def close(self, timeout_s: float = 30.0) -> None:
        """Hand off everything queued, then stop the thread."""
        if not self._started:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error(
                "hand-off thread did not finish within %.0f s; %d items left", timeout_s, self._queue.qsize()
            )


class JsonlEventWriter:
    """Writes opened/updated/closed events as JSON lines (``ViolationEvent.to_json``)."""

    def __init__(self, out: IO[str] | Path | str) -> None:
        self._own = not hasattr(out, "write")
        self._file: IO[str] = open(out, "w", encoding="utf-8") if self._own else out  # noqa: SIM115
        self.count = 0

    def write(self, event: ViolationEvent) -> None:
        if event.event not in PUBLIC_EVENT_KINDS:
            return
        self._file.write(json.dumps(event.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
        self.count += 1

    def close(self) -> None:
        self._file.flush()
        if self._own:
            self._file.close()
