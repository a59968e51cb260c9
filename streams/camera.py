"""Per-camera processing: motion gate → detector → false-alarm memory → static objects → rules → events.

``CameraProcessor`` runs on the worker's processing thread, which shares one detector (one ONNX session)
across all cameras of the process; frames come from the camera's capture (``streams.capture``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from streams.capture import SampledFrame
from streams.motion import GateDecision, GateReason, MotionGate
from streams.observers import FrameObserver, FrameView, notify, wants_full_scan
from streams.status import CameraHealth
from vision.config import CameraConfig, RulesConfig
from vision.geometry import box_iou
from vision.kinds import catalogue_of
from vision.memory import MemoryBook, describe, similarity
from vision.pipeline import CameraPipeline
from vision.static_objects import StaticObjectDetector, with_unknown
from vision.types import OBJECT_KINDS, STILL_S_KEY, Detections, ObjectKind, ViolationEvent

log = logging.getLogger(__name__)

_PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)


class Detector(Protocol):
    """What the per-camera loop needs from ``vision.detector.OnnxDetector``."""

    version: str

    def detect(self, frame_bgr: np.ndarray) -> Detections: ...


class Pipeline(Protocol):
    """What the per-camera loop needs from ``vision.pipeline.CameraPipeline``."""

    def step(
        self, detections: Detections, ts_s: float, frame_wh: tuple[int, int], *, fresh: bool = True
    ) -> list[ViolationEvent]: ...

    def wants_detection(self) -> bool: ...

    def rule_errors(self) -> dict[str, str]: ...


class EventSink(Protocol):
    """Receives each camera event with the frame and detections it came from."""

    def put(
        self, event: ViolationEvent, frame: SampledFrame, detections: Detections, model_version: str
    ) -> None: ...


#: Returns the detector to use for the next frame and its model version (hot reload swaps it).
DetectorSource = Callable[[], tuple[Detector, str]]
#: Returns the shadow model running on this camera, or None (``urbaneye.hot_reload.ModelWatcher.shadow``).
ShadowSource = Callable[[], tuple[Detector, str] | None]


def fixed_detector(detector: Detector) -> DetectorSource:
    version = str(getattr(detector, "version", "unknown"))
    return lambda: (detector, version)


@dataclass
class ProcessResult:
    decision: GateDecision
    detections: Detections
    events: list[ViolationEvent]
    inference_ms: float


class CameraProcessor:
    """Motion gate → detector → pipeline → event sink for one camera. One thread calls ``process``.

    When the gate skips a frame the rules still advance to its time with the last detections carried
    (see ``streams.motion``), so dwell keeps counting and a dwell crossing opens on time with the
    current frame as evidence.

    Args:
        camera / rules: the camera and the rule settings.
        detectors: a detector, or a ``DetectorSource`` giving ``(detector, model_version)`` per frame.
        sink: where events go (``HandoffQueue``), or None to only return them.
        gating: False detects every sampled frame (``--no-motion-gating``).
        live: stream times are epoch seconds (the rules' schedules then use them as wall clock).
        static_objects: run the static-object detector (``vision.static_objects``) on every processed frame,
            gated or not (~1.3 ms a frame); its ``unknown_object`` regions that no model detection explains
            join what the rules see. None = the camera's ``static_objects``, else on for live cameras.
    """

    def __init__(
        self,
        camera: CameraConfig,
        rules: RulesConfig,
        detectors: Detector | DetectorSource,
        sink: EventSink | None = None,
        *,
        gating: bool = True,
        live: bool = False,
        pipeline: Pipeline | None = None,
        health: CameraHealth | None = None,
        on_detect: Callable[[str, float], None] | None = None,
        escalation_history: dict[str, list[float]] | None = None,
        shadow: ShadowSource | None = None,
        on_shadow_opened: Callable[[str, ViolationEvent], None] | None = None,
        memory: MemoryBook | None = None,
        observers: Sequence[FrameObserver] = (),
        static_objects: bool | None = None,
    ) -> None:
        if pipeline is None:
            pipeline = CameraPipeline(camera, rules, escalation_history=escalation_history, live=live)
        self.camera = camera
        self.rules = rules
        self.live = live
        self.shadow = shadow
        self.on_shadow_opened = on_shadow_opened
        self._shadow_version: str | None = None
        self._shadow_pipeline: Pipeline | None = None
        self._shadow_carried = Detections.empty()
        self.detectors: DetectorSource = (
            fixed_detector(detectors) if hasattr(detectors, "detect") else detectors
        )
        self.sink = sink
        self.pipeline = pipeline
        #: false-alarm memory: detections matching a rejected object never reach the rules
        self.memory = memory
        #: worker-wide frame observers (``streams.observers``): annotation sampling, camera re-checks
        self.observers = tuple(observers)
        self._kept = self._kept_of = Detections.empty()
        self._static_wanted = static_objects
        #: model classes whose detection explains a static region: what some violation kind is made of
        self._explaining = frozenset(
            OBJECT_KINDS.index(ObjectKind(c)) for k in catalogue_of(rules).values() for c in k.classes
        )
        self.static = self._static_detector(camera, live)
        self.health = health
        self.on_detect = on_detect
        self.gating = gating
        self.gate = self._gate(camera)
        self._carried = Detections.empty()
        self._last_wh: tuple[int, int] | None = None
        self._last_ts_s: float | None = None
        self._pending: CameraConfig | None = None
        self._pending_timeline: bool | None = None  # live flag of a new timeline, None = same timeline
        self.detector_calls = 0
        self.frames = 0

    def _static_detector(self, camera: CameraConfig, live: bool) -> StaticObjectDetector | None:
        wanted = self._static_wanted
        if wanted is None:
            wanted = camera.static_objects if camera.static_objects is not None else live
        return StaticObjectDetector() if wanted else None

    def _gate(self, camera: CameraConfig) -> MotionGate:
        motion = camera.motion if self.gating else camera.motion.model_copy(update={"enabled": False})
        return MotionGate(motion, grace_s=self.rules.grace_s, zones=[z.polygon for z in camera.zones])

    def reconfigure(self, camera: CameraConfig, *, new_timeline_live: bool | None = None) -> None:
        """Take a new config of this camera (zones, motion, time zone, names) at the next frame.

        Rule state carries over (``CameraPipeline.replace_camera``): violations in zones that still exist stay open
        with the same ids; those of removed zones close at the next frame. Source and detect-rate
        changes are the capture's business (``CaptureThread``), not the processor's.

        ``new_timeline_live``: the stream's clock starts over (another file with video time, or a switch
        between video and epoch seconds; True if the new stream times are epoch seconds). What the
        rules remember cannot carry over: every open violation closes (stamped with the old clock's
        last time) and the camera starts afresh, keeping its escalation history.
        """
        if camera.id != self.camera.id:
            raise ValueError(f"camera '{self.camera.id}' cannot take the config of camera '{camera.id}'")
        self._pending = camera
        if new_timeline_live is not None:
            self._pending_timeline = new_timeline_live

    def _start_new_timeline(self) -> list[ViolationEvent]:
        camera, live = self._pending, bool(self._pending_timeline)
        self._pending, self._pending_timeline = None, None
        assert camera is not None
        events: list[ViolationEvent] = []
        if isinstance(self.pipeline, CameraPipeline):
            book = self.pipeline.escalation
            if self._last_ts_s is not None:  # an empty zone set closes everything that is open
                events = self.pipeline.replace_camera(
                    self.camera.model_copy(update={"zones": []}), self._last_ts_s
                )
            self.pipeline = CameraPipeline(camera, self.rules, escalation_history=book, live=live)
        self.camera, self.live = camera, live
        self.gate = self._gate(camera)
        self.static = self._static_detector(camera, live)  # its clock starts over too
        self._carried = Detections.empty()
        self._last_ts_s = None
        self._last_wh = None
        self._shadow_pipeline = None
        return events

    def _apply_pending(self, ts_s: float) -> list[ViolationEvent]:
        camera, self._pending = self._pending, None
        assert camera is not None
        old = self.camera
        events: list[ViolationEvent] = []
        if camera.zones != old.zones or camera.timezone != old.timezone:
            if isinstance(self.pipeline, CameraPipeline):
                events = self.pipeline.replace_camera(camera, ts_s)
            else:  # a pipeline we cannot re-index (tests pass their own): it keeps its zones
                log.warning("camera %s: pipeline %s keeps its zones", camera.id, type(self.pipeline).__name__)
        if camera.zones != old.zones or camera.motion != old.motion:
            # Motion only counts in and around zones; the new gate also detects the next frame afresh.
            self.gate = self._gate(camera)
        if camera.static_objects != old.static_objects:
            self.static = self._static_detector(camera, self.live)
        self.camera = camera
        self._shadow_pipeline = None  # rebuilt with the new zones at its next frame
        return events

    def process(self, frame: SampledFrame) -> ProcessResult:
        events = self._start_new_timeline() if self._pending_timeline is not None else []
        if frame.fresh or (self._last_wh is not None and frame.wh != self._last_wh):
            # Reopened (reconnect, file loop) or reconfigured: the background and the carried boxes
            # belong to another picture; detect this frame afresh.
            self.gate.reset()
            self._carried = Detections.empty()
        self._last_wh = frame.wh
        # Wall clocks can step back (NTP); the rules need time in order, so hold it at the last value.
        ts_s = frame.ts_s if self._last_ts_s is None else max(frame.ts_s, self._last_ts_s)
        self._last_ts_s = ts_s
        # A config edit lands between two frames: no frame is skipped, rule state carries over.
        if self._pending is not None:
            events += self._apply_pending(ts_s)
        decision = self.gate.decide(frame.image, ts_s, confirm=self.pipeline.wants_detection())
        if not decision.detect and self.observers and wants_full_scan(self.observers, self.camera.id, ts_s):
            decision = replace(decision, detect=True, reason=GateReason.SCAN)
        detector, model_version = self.detectors()
        inference_ms = 0.0
        if decision.detect:
            t0 = time.perf_counter()
            detections = detector.detect(frame.image)
            inference_ms = (time.perf_counter() - t0) * 1000.0
            self._carried = detections
            self.detector_calls += 1
            if self.on_detect:
                self.on_detect(self.camera.id, inference_ms)
        else:
            detections = self._carried
        self.frames += 1
        if self.shadow is not None:
            self._step_shadow(frame, ts_s, decision.detect)
        kept = self._remembered(detections, frame, ts_s, decision.detect)
        unknown = self._static_regions(frame, ts_s, detections)
        if self.observers:
            view = FrameView(self.camera, frame, ts_s, kept, unknown, decision.detect, model_version)
            notify(self.observers, view)
        seen = with_unknown(kept, unknown, self._explaining)
        events += self.pipeline.step(seen, ts_s, frame.wh, fresh=decision.detect)
        if self.health is not None:
            # a failing rule does not stop the camera; its status names the rule and the error
            failing = "; ".join(f"rule {k} failed: {e}" for k, e in self.pipeline.rule_errors().items())
            self.health.processed(decision.detect, error=failing)
        if self.sink is not None:
            for event in events:
                self.sink.put(event, frame, detections, model_version)
        return ProcessResult(decision, detections, events, inference_ms)

    def _static_regions(self, frame: SampledFrame, ts_s: float, detections: Detections) -> Detections:
        """The static-object detector's ``unknown_object`` regions of this frame (empty when it is off).

        It sees every processed frame, gated or not, with the model's person boxes (carried ones when the
        gate skipped the detector: people who stand still are still masked). A region that is an object the
        false-alarm memory remembers (a reviewer rejected its case as 误检 / 固定设施: same place, same
        appearance, as ``vision.memory`` matches detections) becomes background and is not reported.
        """
        if self.static is None:
            return Detections.empty()
        persons = detections.xyxy[detections.class_id == _PERSON]
        found = self.static.update(frame.image, ts_s, persons)
        if len(found):
            # the rules back-date an unknown object's dwell by its stillness, at most by the detector's own
            # reporting delay: older evidence may be a departed object's fading trace (a cart that left)
            still = np.minimum(found.data[STILL_S_KEY], self.static.config.still_s)
            found = found.with_(data={STILL_S_KEY: still})
        if len(found) and self.memory is not None and len(self.memory):
            remembered = [self._remembers(box, frame, ts_s) for box in found.xyxy]
            for box in found.xyxy[remembered]:
                self.static.absorb(box)
            found = found[~np.array(remembered, bool)]
        return found

    def _remembers(self, box: np.ndarray, frame: SampledFrame, ts_s: float) -> bool:
        assert self.memory is not None
        params = self.memory.params
        look = None
        for entry in self.memory.active(ts_s):
            if box_iou(box, entry.box_in(frame.wh)) < params.place_min_iou:
                continue
            look = describe(frame.image, box) if look is None else look
            if (
                look is not None
                and similarity(look, np.asarray(entry.descriptor, np.float32)) >= params.appearance_min_sim
            ):
                return True
        return False

    def _remembered(
        self, detections: Detections, frame: SampledFrame, ts_s: float, detect: bool
    ) -> Detections:
        """Detections minus those the false-alarm memory recognises (``vision.memory.MemoryBook``); carried
        detections reuse the last decision, so a gated camera compares appearance once per detector run."""
        if self.memory is None or not len(self.memory):
            return detections
        if detect or self._kept_of is not detections:
            self._kept = self.memory.filter(detections, frame.image, ts_s)
            self._kept_of = detections
        return self._kept

    def _step_shadow(self, frame: SampledFrame, ts_s: float, detect: bool) -> None:
        """Run the shadow model's own pipeline on the same frames and gate decisions; count its openings.

        Its events never become cases: ``on_shadow_opened`` records would-be cases for the comparison.
        """
        shadow = self.shadow() if self.shadow else None
        if shadow is None:
            self._shadow_version, self._shadow_pipeline = None, None
            return
        detector, version = shadow
        if version != self._shadow_version or self._shadow_pipeline is None:
            self._shadow_pipeline = CameraPipeline(self.camera, self.rules, live=self.live)
            self._shadow_version = version
            self._shadow_carried = Detections.empty()
            detect = True
        if detect:
            self._shadow_carried = detector.detect(frame.image)
        for event in self._shadow_pipeline.step(self._shadow_carried, ts_s, frame.wh, fresh=detect):
            if event.event == "opened" and self.on_shadow_opened is not None:
                self.on_shadow_opened(version, event)
