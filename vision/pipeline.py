"""One camera's path from detections to violation events: tracker -> zones -> rules.

Pure apart from its own state: time is an argument (stream seconds, or epoch seconds live), nothing
here reads a clock, disk or network.

Example:
    >>> pipe = CameraPipeline(camera, cameras_file.rules, tracker=None)
    >>> for ts_s, det in frames:
    ...     for event in pipe.step(det, ts_s, (1920, 1080)):
    ...         handle(event)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from vision.config import CameraConfig, RulesConfig
from vision.kinds import catalogue_of, zone_watches
from vision.rules import rules_for
from vision.rules.common import Rule, RuleState, remap_zones, rescale
from vision.rules.escalation import EscalationBook
from vision.types import (
    OBJECT_KINDS,
    STILL_S_KEY,
    UNKNOWN_OBJECT_CLASS_ID,
    Detections,
    ObjectKind,
    ViolationEvent,
)
from vision.zones import ZoneIndex

log = logging.getLogger(__name__)


class TimeOrderError(ValueError):
    """A frame older than the previous one for the same camera."""


class TrackerLike(Protocol):
    """``vision.tracking.Tracker``'s interface: tracked detections, untracked ones dropped."""

    def update(self, det: Detections, ts_s: float | None = None) -> Detections: ...


def default_tracker(frame_rate: float) -> TrackerLike | None:
    """``vision.tracking.Tracker`` when it can be built here, else None (rules then match by position)."""
    try:
        from vision.tracking import Tracker
    except ImportError as exc:
        log.info("running untracked: vision.tracking unavailable (%s)", exc)
        return None
    try:
        # tracks outlive short occlusions; longer ones are bridged by the rules' own matching
        return Tracker(frame_rate)
    except Exception as exc:  # a broken optional dependency must not stop a camera
        log.warning("running untracked: Tracker(%s) failed: %s", frame_rate, exc)
        return None


class CameraPipeline:
    """Tracker -> zone membership -> each violation rule, for one camera.

    Args:
        camera: the camera's config (zones, schedules, time zone).
        rules: rule settings (grace, cooldown, score gate, escalation) and the configured violation kinds
            (``rules.kinds``; the built-in four always run where a zone watches them).
        escalation_history: ``place_key -> offence times`` from the database, for 三色单 escalation.
        tracker: ``"auto"`` builds ``vision.tracking.Tracker`` if importable; None runs untracked;
            or pass any object with ``update(Detections) -> Detections``.
        live: ``ts_s`` are epoch seconds (schedules use the wall clock) rather than stream seconds.

    ``step`` must be called in time order, once per sampled frame; on frames where motion gating
    skipped the detector, the stream loop steps with the last detections carried over, so dwell keeps
    counting for static objects. It returns ``sighting`` events (internal) besides ``opened``,
    ``updated`` and ``closed``.

    Detections may include the static-object detector's ``unknown_object`` rows (``class_id ==
    UNKNOWN_OBJECT_CLASS_ID``): they bypass the tracker and raise the kinds their zones allow
    (``ZoneConfig.unknown_kinds``), as unclassified events unless a model label joins them.
    """

    def __init__(
        self,
        camera: CameraConfig,
        rules: RulesConfig,
        escalation_history: Mapping[str, Iterable[float]] | EscalationBook | None = None,
        tracker: TrackerLike | Literal["auto"] | None = "auto",
        live: bool = False,
    ) -> None:
        self.camera = camera
        self.rules = rules
        self.kinds = catalogue_of(rules)
        self.zones = ZoneIndex(camera, live=live, kinds=self.kinds)
        self.escalation = (
            escalation_history
            if isinstance(escalation_history, EscalationBook)
            else EscalationBook(escalation_history, rules.escalation_window_days * 86400)
        )
        self.tracker: TrackerLike | None = (
            default_tracker(camera.detect_fps) if tracker == "auto" else tracker
        )
        watched = self._watched(camera)
        # only rules some zone watches run: a bikes-only camera pays nothing for the others
        self._rules: list[tuple[Rule, RuleState]] = [
            (rule, rule.init_state(camera.id, rules, self.escalation))
            for kind, rule in rules_for(self.kinds).items()
            if kind in watched
        ]
        self._class_ids = self._touch_class_ids()
        self._last_ts_s: float | None = None
        self._frame_wh: tuple[int, int] | None = None
        self._failures: dict[str, RuleFailure] = {}

    def _watched(self, camera: CameraConfig) -> set[str]:
        return {k for k, spec in self.kinds.items() if any(zone_watches(z, spec) for z in camera.zones)}

    def _touch_class_ids(self) -> list[int]:
        """Class ids whose zone touches the running rules need (unknown_object where a zone allows it)."""
        ids = {c for rule, _ in self._rules for c in rule.spec.class_ids}
        if any(self.zones.unknown_raises(rule.spec.kind) for rule, _ in self._rules):
            ids.add(UNKNOWN_OBJECT_CLASS_ID)
        return sorted(ids)

    def step(
        self, detections: Detections, ts_s: float, frame_wh: tuple[int, int], *, fresh: bool = True
    ) -> list[ViolationEvent]:
        """Detections of one frame at stream time ``ts_s`` -> events (possibly none).

        ``fresh=False`` marks detections carried from an earlier frame (motion gating skipped the
        detector): they keep objects present while time advances but are not counted as new observations.
        """
        if self._last_ts_s is not None and ts_s < self._last_ts_s:
            raise TimeOrderError(
                f"camera '{self.camera.id}': ts_s {ts_s} is earlier than the previous frame's "
                f"{self._last_ts_s}; step frames in time order"
            )
        self._last_ts_s = ts_s
        if self._frame_wh is not None and tuple(frame_wh) != self._frame_wh:
            # same view at another resolution: what the rules remember is rescaled, not forgotten
            sx, sy = frame_wh[0] / self._frame_wh[0], frame_wh[1] / self._frame_wh[1]
            for _, state in self._rules:
                rescale(state, sx, sy)
        self._frame_wh = (int(frame_wh[0]), int(frame_wh[1]))
        detections = admissible(detections, self._frame_wh)
        if self.tracker is not None:
            detections = self._tracked(detections, ts_s)
        zones = self.zones.frame(frame_wh, ts_s)
        if len(detections) and self._rules:
            detections = zones.with_touch(detections, self._class_ids)
        events: list[ViolationEvent] = []
        for i, (rule, state) in enumerate(self._rules):
            events.extend(self._step_rule(i, rule, state, detections, zones, ts_s, fresh))
        return events

    def _tracked(self, detections: Detections, ts_s: float) -> Detections:
        """The model's detections through the tracker (empty frames too: tracks age out); unknown_object
        regions bypass it (they stand still by construction) with tracker id -1."""
        assert self.tracker is not None
        unknown = detections.class_id == UNKNOWN_OBJECT_CLASS_ID
        if not unknown.any():
            return self.tracker.update(detections, ts_s=ts_s)
        tracked = self.tracker.update(detections[~unknown], ts_s=ts_s)
        regions = detections[unknown]
        regions = regions.with_(tracker_id=np.full(len(regions), -1, np.int64))
        if not len(tracked):
            return regions
        if STILL_S_KEY in regions.data:  # merge keeps only shared keys: the regions' stillness must survive
            tracked = tracked.with_(data={STILL_S_KEY: np.zeros(len(tracked), np.float32)})
        return Detections.merge([tracked, regions])

    def _step_rule(
        self,
        i: int,
        rule: Rule,
        state: RuleState,
        detections: Detections,
        zones: Any,
        ts_s: float,
        fresh: bool,
    ) -> list[ViolationEvent]:
        """One rule's step, fenced: a rule that raises keeps its own state (and every other rule keeps
        theirs); the failure is reported by ``rule_errors`` with its kind. A rule that fails
        ``RULE_RESET_AFTER`` frames in a row is restarted: its open violations are closed first, so no
        case is left open for ever."""
        kind = rule.spec.kind
        try:
            state, out = rule.step(state, detections, zones, ts_s, fresh=fresh)
        except Exception as exc:
            failure = self._failures.get(kind, RuleFailure(f"{type(exc).__name__}: {exc}", 0))
            failure = RuleFailure(f"{type(exc).__name__}: {exc}", failure.in_a_row + 1)
            self._failures[kind] = failure
            if failure.in_a_row in (1, RULE_RESET_AFTER):
                log.exception(
                    "camera %s: rule %s failed at ts_s=%.3f (%d in a row)",
                    self.camera.id,
                    kind,
                    ts_s,
                    failure.in_a_row,
                )
            if failure.in_a_row < RULE_RESET_AFTER:
                return []
            closed = self._restart_rule(i, rule, state, ts_s)
            return closed
        self._rules[i] = (rule, state)
        self._failures.pop(kind, None)
        return out

    def _restart_rule(self, i: int, rule: Rule, state: RuleState, ts_s: float) -> list[ViolationEvent]:
        kind = rule.spec.kind
        try:
            zones = self.zones.zones
            closed = remap_zones(state, rule.spec, zones, list(range(len(zones))), ts_s, close_all=True)
        except Exception:
            log.exception("camera %s: rule %s: its open violations could not be closed", self.camera.id, kind)
            closed = []
        self._rules[i] = (rule, rule.init_state(self.camera.id, self.rules, self.escalation))
        log.error("camera %s: rule %s restarted after %d failures", self.camera.id, kind, RULE_RESET_AFTER)
        return closed

    def rule_errors(self) -> dict[str, str]:
        """``kind -> "ExceptionType: message"`` of rules whose last step failed; empty when all are well."""
        return {str(kind): f.error for kind, f in self._failures.items()}

    def wants_detection(self) -> bool:
        """The rules want the next frame detected even if nothing moved: a new object is still settling, or
        a violation is due and waits for its score gate (``RuleState.wants_detection``)."""
        return any(state.wants_detection for _, state in self._rules)

    def replace_camera(self, camera: CameraConfig, ts_s: float) -> list[ViolationEvent]:
        """Take a new config of the same camera (zones, time zone, schedules) between two frames.

        What the rules remember follows each zone by id: a violation open in a zone that still exists
        (edited or not) stays open with the same ``violation_id`` and is judged against the new polygon
        from the next frame; a removed zone's open violations close now; a kind no zone watches any more
        stops; a newly watched kind starts fresh, sharing the escalation history. Object stationarity is
        kept, so a bike parked for 3 minutes does not restart its dwell because a polygon was nudged.

        Returns:
            ``closed`` events (stamped ``ts_s``) of violations whose zone went; hand them off as usual.

        Example:
            >>> events = pipe.replace_camera(camera.model_copy(update={"zones": new_zones}), ts_s=120.0)
        """
        if camera.id != self.camera.id:
            raise ValueError(
                f"replace_camera: camera '{camera.id}' given for the pipeline of '{self.camera.id}'"
            )
        old_zones = self.zones.zones
        position = {z.id: j for j, z in enumerate(camera.zones)}
        remap = [position.get(z.id, -1) for z in old_zones]
        watched = self._watched(camera)
        events: list[ViolationEvent] = []
        running: dict[str, tuple[Rule, RuleState]] = {}
        for rule, state in self._rules:
            kind = rule.spec.kind
            events += remap_zones(state, rule.spec, old_zones, remap, ts_s, close_all=kind not in watched)
            if kind in watched:
                running[kind] = (rule, state)
        self._rules = [
            running.get(kind) or (rule, rule.init_state(camera.id, self.rules, self.escalation))
            for kind, rule in rules_for(self.kinds).items()
            if kind in watched
        ]
        self.camera = camera
        self.zones = ZoneIndex(camera, live=self.zones.live, kinds=self.kinds)
        self._class_ids = self._touch_class_ids()
        return events

    def escalation_snapshot(self) -> dict[str, list[float]]:
        """Offence history as it stands (to persist, or to seed the next pipeline)."""
        return self.escalation.snapshot()


#: A rule failing this many frames in a row is restarted (its open violations closed first).
RULE_RESET_AFTER = 50
#: Boxes thinner than this (px, after clipping to the frame) carry no place or size to reason about.
MIN_BOX_PX = 1.0


@dataclass(frozen=True)
class RuleFailure:
    error: str
    in_a_row: int


def admissible(detections: Detections, frame_wh: tuple[int, int]) -> Detections:
    """Detections the rules can reason about: finite, of a known kind (or ``unknown_object``), with a box of at least
    ``MIN_BOX_PX`` on each side inside the frame; scores clipped to [0, 1]. Boxes are clipped to the
    frame (an object cut by the frame edge is where its visible part is).

    Args:
        detections: (n,) detections from any model, in pixels.
        frame_wh: the frame's size in pixels.

    Returns:
        (m,) detections, m <= n; the same object when nothing had to change.

    Example:
        >>> len(admissible(Detections(xyxy=[[-5, 10, 50, 10]], confidence=[0.9], class_id=[0]), (640, 480)))
        0
    """
    n = len(detections)
    if n == 0:
        return detections
    w, h = float(frame_wh[0]), float(frame_wh[1])
    xyxy = detections.xyxy
    conf = detections.confidence
    ok = np.isfinite(xyxy).all(axis=1) & np.isfinite(conf)
    ok &= (detections.class_id >= 0) & (detections.class_id <= UNKNOWN_OBJECT_CLASS_ID)
    clipped = np.empty_like(xyxy)
    np.clip(xyxy[:, 0::2], 0.0, w, out=clipped[:, 0::2])
    np.clip(xyxy[:, 1::2], 0.0, h, out=clipped[:, 1::2])
    ok &= (clipped[:, 2] - clipped[:, 0] >= MIN_BOX_PX) & (clipped[:, 3] - clipped[:, 1] >= MIN_BOX_PX)
    in_frame = bool(ok.all()) and np.array_equal(clipped, xyxy) and bool(((conf >= 0) & (conf <= 1)).all())
    if in_frame:
        return detections
    kept = detections[ok]
    return kept.with_(xyxy=clipped[ok], confidence=np.clip(kept.confidence, 0.0, 1.0))


class FrameInputError(ValueError):
    """A detections record that cannot be replayed, with a message naming the item and the fix."""


def label_kinds(class_map: Mapping[str, str | None]) -> dict[str, int | None]:
    """Label -> class id (index into ``OBJECT_KINDS``) or None to ignore: kind names, then the class map."""
    out: dict[str, int | None] = {str(k): i for i, k in enumerate(OBJECT_KINDS)}
    for label, kind in class_map.items():
        out[label] = None if kind is None else OBJECT_KINDS.index(ObjectKind(kind))
    return out


def frame_from_json(
    record: Any, labels: Mapping[str, int | None]
) -> tuple[str, float, tuple[int, int], Detections]:
    """One detections JSONL record -> ``(camera_id, ts_s, frame_wh, Detections)``.

    Record: ``{"camera_id", "ts_s", "frame_wh": [w, h], "detections": [{"label", "xyxy", "score"}]}``.

    Example:
        >>> frame_from_json({"camera_id": "c", "ts_s": 0, "frame_wh": [640, 480],
        ...     "detections": [{"label": "garbage", "xyxy": [1, 2, 30, 40], "score": 0.7}]}, label_kinds({}))[3].kinds
        [<ObjectKind.GARBAGE: 'garbage'>]
    """
    if not isinstance(record, Mapping):
        raise FrameInputError("expected a JSON object {camera_id, ts_s, frame_wh, detections}")
    missing = [k for k in ("camera_id", "ts_s", "frame_wh", "detections") if k not in record]
    if missing:
        raise FrameInputError(f"missing {missing}; each line needs camera_id, ts_s, frame_wh and detections")
    try:
        ts_s = float(record["ts_s"])
    except (TypeError, ValueError):
        raise FrameInputError(f"ts_s {record['ts_s']!r} is not a number of seconds") from None
    wh = record["frame_wh"]
    if not (
        isinstance(wh, list | tuple)
        and len(wh) == 2
        and all(isinstance(v, int | float) and v > 0 for v in wh)
    ):
        raise FrameInputError(f"frame_wh {wh!r} must be [width, height] in pixels")
    dets = record["detections"]
    if not isinstance(dets, list):
        raise FrameInputError("detections must be a list of {label, xyxy, score}")
    boxes, scores, classes = [], [], []
    for j, d in enumerate(dets):
        if not isinstance(d, Mapping) or "label" not in d or "xyxy" not in d:
            raise FrameInputError(f"detections[{j}] must be an object with label, xyxy and score")
        label = str(d["label"])
        if label not in labels:
            raise FrameInputError(
                f"detections[{j}] label '{label}' is not an object kind; add it to model.class_map in the "
                f"cameras file (e.g. '{label}: garbage', or null to ignore it)"
            )
        cls = labels[label]
        if cls is None:
            continue
        xyxy = d["xyxy"]
        if not (
            isinstance(xyxy, list | tuple)
            and len(xyxy) == 4
            and all(isinstance(v, int | float) for v in xyxy)
        ):
            raise FrameInputError(f"detections[{j}] xyxy {xyxy!r} must be [x1, y1, x2, y2] pixels")
        if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
            raise FrameInputError(f"detections[{j}] xyxy {xyxy!r} is empty; x2 > x1 and y2 > y1 are required")
        score = d.get("score", 1.0)
        if not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            raise FrameInputError(f"detections[{j}] score {score!r} must be a number in [0, 1]")
        boxes.append(xyxy)
        scores.append(score)
        classes.append(cls)
    det = (
        Detections(
            xyxy=np.array(boxes, np.float32), confidence=np.array(scores, np.float32), class_id=classes
        )
        if boxes
        else Detections.empty()
    )
    return str(record["camera_id"]), ts_s, (int(wh[0]), int(wh[1])), det
