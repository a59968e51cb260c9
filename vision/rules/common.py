"""Shared rule machinery: what a rule is (``RuleSpec``), what it remembers (``RuleState``), and one frame
of it (``run_rule``).

Two layers, both pure (time is an argument; no clock, disk or network):

1. **Candidates** (``vision.rules.candidates``) follow individual objects of the rule's kinds through
   detector noise, judge when each settles (a stationary episode) and whether its dwell counts.
2. **Places** (``vision.rules.places``) group eligible candidates of one zone and carry one violation
   each: ``sighting`` -> ``opened`` -> ``updated`` -> ``closed``, re-opened within a cooldown.

Escalation (三色单) is in ``vision.rules.escalation``, GB/T codes and names in ``vision.kinds``.

Rule state is owned by the caller: ``step`` updates it and returns it (copying it every frame would
cost more than the rule itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from vision.config import RulesConfig, ZoneConfig
from vision.kinds import BUILTIN_KINDS, KindSpec
from vision.rules.candidates import (
    Candidate,
    remap_candidates,
    rescale_candidates,
    settling,
    update_candidates,
)
from vision.rules.escalation import EscalationBook
from vision.rules.places import Place, advance_places, remap_places, rescale_places
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationEvent, ViolationKind
from vision.zones import ZoneFrame


@dataclass(frozen=True)
class Annotations:
    """Per-detection context a rule derives from the whole frame (shapes (n,))."""

    blocked: np.ndarray  # True: does not count this frame (garbage held by a person, a stall that is a grill)
    support: np.ndarray  # 0..1 supporting evidence (smoke over a grill)


#: ``annotate(objects, all_detections) -> Annotations``
Annotator = Callable[[Detections, Detections], Annotations]


@dataclass(frozen=True)
class RuleSpec:
    """What distinguishes one violation rule from another.

    Attributes:
        kind: the violation.
        object_kinds: detector kinds that can be the violating object.
        merge_widths: objects of one place merge when their centres are within this many mean box
            widths (0: only boxes that overlap merge).
        annotate: optional per-frame context (blocked flags, supporting evidence).
        support_weight: how much mean support raises the score: 1 - (1 - s)(1 - w * support).
        min_count: objects a place needs (template ``cluster``; 1 for the others).
        definition: the kind's catalogue entry (codes, names, dwell, escalation, evidence); None for a
            built-in kind means ``vision.kinds.BUILTIN_KINDS[kind]``.

    ``vision.rules.templates.rule_spec`` builds one from a ``KindSpec``.
    """

    kind: ViolationKind | str
    object_kinds: tuple[ObjectKind, ...]
    merge_widths: float = 0.0
    annotate: Annotator | None = None
    support_weight: float = 0.0
    min_count: int = 1
    definition: KindSpec | None = field(default=None, repr=False)

    class_ids: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_ids", tuple(OBJECT_KINDS.index(k) for k in self.object_kinds))
        if self.definition is None:
            object.__setattr__(self, "definition", BUILTIN_KINDS[ViolationKind(self.kind)])

    @property
    def kind_spec(self) -> KindSpec:
        """The kind's catalogue entry."""
        assert self.definition is not None
        return self.definition


@dataclass(slots=True)
class RuleState:
    """Everything one rule remembers for one camera."""

    camera_id: str
    rules: RulesConfig
    book: EscalationBook
    frame: int = 0  # detector runs seen (carried frames do not count)
    next_cand_id: int = 1
    candidates: list[Candidate] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    cluster_cache: tuple[tuple, list] | None = None
    assign_cache: tuple[tuple, dict] | None = None
    #: the next frame should be detected: a new object is settling, or a due violation awaits its score gate
    wants_detection: bool = False


def init_state(
    camera_id: str,
    rules: RulesConfig,
    escalation: EscalationBook | Mapping[str, Iterable[float]] | None = None,
) -> RuleState:
    """Fresh state; ``escalation`` is a shared ``EscalationBook`` or a history to seed one."""
    book = (
        escalation
        if isinstance(escalation, EscalationBook)
        else EscalationBook(escalation, rules.escalation_window_days * 86400)
    )
    return RuleState(camera_id=camera_id, rules=rules, book=book)


@dataclass(frozen=True)
class Rule:
    """One violation rule: its spec, run on the shared machinery.

    Example:
        >>> rule = RULES[ViolationKind.STREET_VENDING]  # vision.rules.RULES
        >>> state = rule.init_state("cam-1", RulesConfig())
        >>> state, events = rule.step(state, detections, zones, now_s=12.0)
    """

    spec: RuleSpec

    def init_state(
        self,
        camera_id: str,
        rules: RulesConfig,
        escalation: EscalationBook | Mapping[str, Iterable[float]] | None = None,
    ) -> RuleState:
        """Fresh state for one camera (see ``init_state``)."""
        return init_state(camera_id, rules, escalation)

    def step(
        self, state: RuleState, detections: Detections, zones: ZoneFrame, now_s: float, *, fresh: bool = True
    ) -> tuple[RuleState, list[ViolationEvent]]:
        """One frame: ``(state, detections, zones, now_s) -> (state, events)`` (see ``run_rule``)."""
        return run_rule(self.spec, state, detections, zones, now_s, fresh=fresh)


def rescale(state: RuleState, sx: float, sy: float) -> None:
    """The stream changed resolution but not its view: scale every remembered box by (sx, sy)."""
    rescale_candidates(state.candidates, sx, sy)
    rescale_places(state.places, sx, sy)
    state.cluster_cache = state.assign_cache = None


def run_rule(
    spec: RuleSpec,
    state: RuleState,
    detections: Detections,
    zones: ZoneFrame,
    now_s: float,
    *,
    fresh: bool = True,
) -> tuple[RuleState, list[ViolationEvent]]:
    """One frame of one rule: ``(state, detections, zones, now_s) -> (state, events)``.

    ``fresh=False``: the detections are carried over from an earlier frame (the motion gate skipped the
    detector because nothing changed). They keep their objects present and time advances (dwell, grace),
    but they are not new observations: no score, stationarity sample or context is recorded, so one
    detector run is never counted as fifty (a single low score or odd box on a scan would otherwise fill
    the median windows for a whole scan interval).
    """
    if fresh:  # presence = the share of detector runs that saw an object, gated or not
        state.frame += 1
    state.wants_detection = False  # set again below; stays False when there is nothing to follow
    if not state.candidates and not state.places and not len(detections):
        return state, []
    update_candidates(state, spec, detections, zones, now_s, fresh=fresh)
    state.wants_detection = any(settling(c, now_s) for c in state.candidates)
    if not state.candidates and not state.places:
        return state, []
    return state, advance_places(state, spec, zones, now_s)


def remap_zones(
    state: RuleState,
    spec: RuleSpec,
    old_zones: tuple[ZoneConfig, ...],
    remap: list[int],
    ts_s: float,
    *,
    close_all: bool,
) -> list[ViolationEvent]:
    """Re-index one rule's state in place for a new zone set (``remap[old_idx] -> new_idx`` or -1).

    Places of a zone that is gone (or all, with ``close_all``) are dropped; open ones close now and their
    ``closed`` events are returned. Candidates keep their stationarity but recompute membership.
    """
    events = remap_places(state, spec, old_zones, remap, ts_s, close_all=close_all)
    remap_candidates(state.candidates, remap)
    state.cluster_cache = None
    state.assign_cache = None
    return events
