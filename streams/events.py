"""What happens to a camera's violation events: evidence frames and the hand-off to cases.

``EvidenceKeeper`` turns events into ``Handoff.submit`` calls:

- ``sighting``: render that frame (clean JPEG, annotated, crop via ``vision.evidence``) and keep it in a
  bounded per-camera store: it becomes evidence seq 1 if the place goes on to open; the frame strip
  (``streams.frame_strip``) starts keeping frames of the camera for it;
- ``opened``: submit seq 1 (the stored first sighting) + seq 2 (this frame, the dwell crossing) + the
  frame strip across the dwell (seq ``STRIP_SEQ_BASE``.., annotated);
- ``updated``: submit it, with this frame as the next seq when the rules ask for evidence;
- ``closed``: submit the close; forget the violation.

A camera with an ``evidence_source`` (detection on the sub-stream, evidence from the main stream) has its
evidence frames taken from the main stream at the event's moment (``streams.evidence_stream``), boxes
mapped to the main stream's pixels; the case's event box and ``frame_wh`` are then the main stream's and
``CaseContext.evidence_stream`` says "main". If the main stream gives no frame for either legal moment,
both come from the sub-stream and the case says "sub_fallback": a case's frames are always of one size.

``HandoffQueue`` runs the keeper on its own thread behind a bounded queue, so JPEG encoding, main-stream
reads and the spool's fsync never hold up the processing thread; only sightings may be dropped when it
is full. ``JsonlEventWriter`` is the service-free sink of ``urbaneye replay``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from streams.capture import SampledFrame
from streams.evidence_stream import (
    EvidenceMoment,
    EvidenceStreams,
    MainFrame,
    MainStreamError,
    map_box,
    map_detections,
)
from streams.frame_strip import FRAME_STRIPS, FrameStrips
from urbaneye.cases.spool import STRIP_SEQ_BASE, CaseContext, EvidenceFrame
from vision.config import CameraConfig
from vision.evidence import render_evidence, render_strip_frame
from vision.geometry import polygon_px_int
from vision.types import PUBLIC_EVENT_KINDS, Detections, EventKind, ViolationEvent

log = logging.getLogger(__name__)

#: Violations whose first-sighting evidence is kept per camera; the oldest is forgotten beyond this.
SIGHTINGS_PER_CAMERA = 64
#: Closed violations whose evidence numbering a keeper remembers, for a re-open within the rules' cooldown.
CLOSED_REMEMBERED = 4096
#: Events waiting for the hand-off thread.
HANDOFF_QUEUE_SIZE = 128
SIGHTING_WAIT_S = 2.0

#: CaseContext.evidence_stream values.
STREAM_MAIN = "main"
STREAM_SUB_FALLBACK = "sub_fallback"


class HandoffLike(Protocol):
    def submit(self, event: ViolationEvent, frames: list[EvidenceFrame], context: CaseContext) -> Any: ...


@dataclass(frozen=True)
class _Rendered:
    frame_ts: dt.datetime  # wall clock, UTC
    clean_jpg: bytes
    annotated_jpg: bytes
    crop_jpg: bytes
    wh: tuple[int, int]  # of the rendered frame


@dataclass(frozen=True)
class _Sighting:
    """A first sighting rendered from the sub-stream frame, and from the main stream when it gave one."""

    sub: _Rendered
    main: _Rendered | None


@dataclass(frozen=True)
class _CaseFrames:
    """What a case's evidence is in: the stream it came from ("", main, sub_fallback) and its frame size."""

    stream: str
    wh: tuple[int, int]


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
        strips: the frame strips fed by the worker's frame observers (default: the process's).
        main_streams: main-stream access of cameras with an ``evidence_source`` (default: a new one).
    """

    def __init__(
        self,
        cameras: dict[str, CameraConfig],
        handoff: HandoffLike,
        *,
        on_submitted: Callable[[ViolationEvent], None] | None = None,
        sightings_per_camera: int = SIGHTINGS_PER_CAMERA,
        strips: FrameStrips = FRAME_STRIPS,
        main_streams: EvidenceStreams | None = None,
    ) -> None:
        # replaced whole under the lock by set_camera (supervisor thread), read by handle (hand-off thread)
        self._cameras_lock = threading.Lock()
        self.cameras: dict[str, CameraConfig] = dict(cameras)
        self.handoff = handoff
        self.on_submitted = on_submitted
        self.sightings_per_camera = sightings_per_camera
        self.strips = strips
        self.main_streams = main_streams or EvidenceStreams()
        self._sightings: dict[str, collections.OrderedDict[str, _Sighting]] = {}
        self._next_seq: dict[str, int] = {}
        self._case_frames: dict[str, _CaseFrames] = {}
        #: closed violations (next seq, case frames): one back within the rules' cooldown re-opens the same case
        self._closed: collections.OrderedDict[str, tuple[int, _CaseFrames | None]] = collections.OrderedDict()
        self.failed = 0

    def _render(
        self,
        camera: CameraConfig,
        event: ViolationEvent,
        frame: SampledFrame,
        det: Detections,
        main: MainFrame | None = None,
    ) -> _Rendered:
        """Evidence images of the event: of the sub-stream ``frame``, or of ``main`` with the boxes mapped."""
        if main is None:
            image, wh, frame_ts = frame.image, frame.wh, frame.frame_time
            local = camera.local_time(frame.ts_s, live=frame.live)
        else:
            image, wh, frame_ts = main.image, main.wh, main.frame_time
            local = main.frame_time.astimezone(ZoneInfo(camera.timezone))
            event = dataclasses.replace(event, bbox_xyxy=map_box(event.bbox_xyxy, frame.wh, wh))
            det = map_detections(det, frame.wh, wh)
        images = render_evidence(
            image,
            event,
            det,
            zone_polygon_px(camera, event.zone_id, wh),
            camera.name or camera.id,
            local,
            zone_name=_zone_name(camera, event.zone_id),
        )
        return _Rendered(frame_ts, images.clean_jpg, images.annotated_jpg, images.crop_jpg, wh)

    def _main_frame(self, camera: CameraConfig, frame: SampledFrame) -> MainFrame | None:
        """The main-stream frame at ``frame``'s moment, or None (no main stream, or it failed: logged)."""
        if camera.evidence_source is None:
            return None
        moment = EvidenceMoment(frame.frame_time, self.strips.video_s(camera.id, frame.ts_s, frame.live))
        try:
            return self.main_streams.frame_at(camera, moment)
        except MainStreamError as exc:
            log.warning("camera %s: evidence from the sub-stream: %s", camera.id, exc)
            return None

    @staticmethod
    def _frames(seq: int, rendered: _Rendered) -> list[EvidenceFrame]:
        return [
            EvidenceFrame(seq, "clean", rendered.clean_jpg, rendered.frame_ts),
            EvidenceFrame(seq, "annotated", rendered.annotated_jpg, rendered.frame_ts),
            EvidenceFrame(seq, "crop", rendered.crop_jpg, rendered.frame_ts),
        ]

    def context(
        self,
        camera: CameraConfig,
        event: ViolationEvent,
        frame: SampledFrame,
        model_version: str,
        case_frames: _CaseFrames | None = None,
    ) -> CaseContext:
        wh = case_frames.wh if case_frames else frame.wh
        return CaseContext(
            camera_id=camera.id,
            camera_name=camera.name,
            model_version=model_version,
            frame_wh=(int(wh[0]), int(wh[1])),
            zone_name=_zone_name(camera, event.zone_id),
            location=camera.location,
            timezone=camera.timezone,
            event_time=frame.frame_time,
            bike_operator_routing=camera.bike_operator_routing,
            evidence_stream=case_frames.stream if case_frames else "",
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
        vid = event.violation_id
        if event.event == EventKind.SIGHTING:
            self._keep_sighting(camera, event, frame, detections)
            return
        if event.event not in PUBLIC_EVENT_KINDS:
            log.debug("camera %s: ignoring event kind %r", camera.id, event.event)
            return
        frames: list[EvidenceFrame] = []
        if event.event == EventKind.OPENED and self._reopening(camera, vid):
            # the rules re-opened a violation that closed within their cooldown (same id): its case has its
            # two legal moments already, so this is an update of that case from this frame
            event = dataclasses.replace(event, event=EventKind.UPDATED)
        if event.event == EventKind.OPENED:
            frames = self._opened_frames(camera, event, frame, detections)
        elif event.event == EventKind.UPDATED and event.evidence_request:
            frames = self._update_frames(camera, event, frame, detections)
        case_frames = self._case_frames.get(vid)
        if event.event == EventKind.CLOSED:
            self._closed[vid] = (self._next_seq.pop(vid, 3), self._case_frames.pop(vid, None))
            while len(self._closed) > CLOSED_REMEMBERED:
                self._closed.popitem(last=False)
            self._sightings.get(camera.id, {}).pop(vid, None)
            self.strips.drop(camera.id, vid)
        if case_frames is not None and case_frames.wh != frame.wh:  # the case is in main-stream pixels
            event = dataclasses.replace(event, bbox_xyxy=map_box(event.bbox_xyxy, frame.wh, case_frames.wh))
        self.handoff.submit(event, frames, self.context(camera, event, frame, model_version, case_frames))
        if self.on_submitted:
            self.on_submitted(event)

    def _reopening(self, camera: CameraConfig, vid: str) -> bool:
        """Whether an ``opened`` event re-opens a violation this keeper handed off and saw close (no new
        first sighting was kept for it); if so its evidence numbering and stream carry on."""
        if vid not in self._closed or vid in self._sightings.get(camera.id, {}):
            return False
        seq, case_frames = self._closed.pop(vid)
        self._next_seq[vid] = seq
        if case_frames is not None:
            self._case_frames[vid] = case_frames
        return True

    def _keep_sighting(
        self, camera: CameraConfig, event: ViolationEvent, frame: SampledFrame, det: Detections
    ) -> None:
        self.strips.begin(camera.id, event.violation_id, event.ts_s)
        main = self._main_frame(camera, frame)
        sighting = _Sighting(
            self._render(camera, event, frame, det),
            self._render(camera, event, frame, det, main) if main is not None else None,
        )
        store = self._sightings.setdefault(camera.id, collections.OrderedDict())
        store[event.violation_id] = sighting
        store.move_to_end(event.violation_id)
        while len(store) > self.sightings_per_camera:
            store.popitem(last=False)

    def _opened_frames(
        self, camera: CameraConfig, event: ViolationEvent, frame: SampledFrame, det: Detections
    ) -> list[EvidenceFrame]:
        """seq 1 (first sighting) + seq 2 (dwell crossing), both from the main stream or both from the
        sub-stream, then the frame strip; records what the case's frames are in."""
        vid = event.violation_id
        first = self._sightings.get(camera.id, {}).pop(vid, None)
        main = None
        if first is not None and first.main is not None:
            main = self._main_frame(camera, frame)
        if first is not None and first.main is not None and main is not None:
            case_frames, earlier = _CaseFrames(STREAM_MAIN, main.wh), first.main
        else:
            stream = STREAM_SUB_FALLBACK if camera.evidence_source is not None else ""
            case_frames, earlier = _CaseFrames(stream, frame.wh), first.sub if first else None
            main = None
        frames: list[EvidenceFrame] = []
        seq = 1
        if earlier is not None:
            frames += self._frames(1, earlier)
            seq = 2
        else:  # the hand-off will refuse it (two moments are required); say why first
            log.error(
                "camera %s: no first-sighting frame kept for %s (worker restarted or store overflowed)",
                camera.id,
                vid,
            )
        frames += self._frames(seq, self._render(camera, event, frame, det, main))
        frames += self._strip_frames(camera, event, frame)
        self._next_seq[vid] = seq + 1
        self._case_frames[vid] = case_frames
        return frames

    def _update_frames(
        self, camera: CameraConfig, event: ViolationEvent, frame: SampledFrame, det: Detections
    ) -> list[EvidenceFrame]:
        """The next seq from this frame, from the stream the case's evidence came from."""
        vid = event.violation_id
        seq = self._next_seq.get(vid, 3)
        if seq >= STRIP_SEQ_BASE:
            log.warning("camera %s: %s has %d evidence moments; no more are kept", camera.id, vid, seq - 1)
            return []
        case_frames = self._case_frames.get(vid)
        main = None
        if case_frames is not None and case_frames.stream == STREAM_MAIN:
            main = self._main_frame(camera, frame)
            if main is None or main.wh != case_frames.wh:
                # a sub-stream frame would mix two sizes in one case (its box is in main-stream pixels)
                log.warning("camera %s: update of %s handed off without a frame", camera.id, vid)
                return []
        self._next_seq[vid] = seq + 1
        return self._frames(seq, self._render(camera, event, frame, det, main))

    def _strip_frames(
        self, camera: CameraConfig, event: ViolationEvent, frame: SampledFrame
    ) -> list[EvidenceFrame]:
        """The frame strip of the dwell up to this frame: annotated, seq ``STRIP_SEQ_BASE``.. in time order."""
        shots = self.strips.take(camera.id, event.violation_id, event.ts_s)
        tz = ZoneInfo(camera.timezone)
        out = []
        for i, shot in enumerate(shots):
            image = shot.image()
            if image is None:
                continue
            box = map_box(event.bbox_xyxy, frame.wh, shot.wh)
            caption = f"{shot.frame_time.astimezone(tz):%H:%M:%S}  {i + 1}/{len(shots)}"
            jpeg = render_strip_frame(image, box, zone_polygon_px(camera, event.zone_id, shot.wh), caption)
            out.append(EvidenceFrame(STRIP_SEQ_BASE + i, "annotated", jpeg, shot.frame_time))
        return out

    def close(self) -> None:
        """Close the main streams kept open."""
        self.main_streams.close()


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
            # the strip starts with the next frame, not when the hand-off thread gets to the sighting
            self.keeper.strips.begin(event.camera_id, event.violation_id, event.ts_s)
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
        self.keeper.close()


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
