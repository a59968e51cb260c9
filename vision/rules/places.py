"""Layer 2 of a rule: places, and the lifecycle of the one violation each place carries.

Eligible candidates of one zone are grouped into places (bikes within ~1.5 box widths form one
cluster), each carrying one violation: ``sighting`` (internal, first evidence frame) -> ``opened`` at
the dwell crossing -> ``updated`` every ``rules.update_interval_s`` -> ``closed`` once nothing has been
seen for ``rules.grace_s``. A place that comes back within ``rules.reopen_cooldown_s`` re-opens the same
violation (same ``violation_id``) instead of creating a new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from vision.config import ZoneConfig
from vision.geometry import box_diag, box_iou, box_union, centre_dist, scale_box
from vision.kinds import dwell_for, gbt_code_for, gbt_name_for
from vision.rules.candidates import Candidate
from vision.rules.escalation import escalation_level, place_key
from vision.types import UNKNOWN_OBJECT_CLASS_ID, Escalation, EventKind, ViolationEvent
from vision.zones import ZoneFrame

if TYPE_CHECKING:  # annotations only: common imports this module
    from vision.rules.common import RuleSpec, RuleState

#: An episode must have been seen in at least this fraction of the frames since it started to open.
MIN_PRESENCE = 0.25
#: A place is sighted once its objects have been stationary for dwell * 0.1 (clamped to 3..15 s).
CONFIRM_FRACTION, CONFIRM_MIN_S, CONFIRM_MAX_S = 0.1, 3.0, 15.0
#: A pending violation whose dwell is due but whose score gate has not passed yet asks for a detector run
#: on every frame (``RuleState.wants_detection``) for at most this long: the opening decision then rests
#: on as many observations as without motion gating, where it would otherwise wait for periodic scans.
CONFIRM_WINDOW_S = 30.0
#: Objects of one live (pending or open) place stay one place until they are this many times
#: ``merge_widths`` apart (hysteresis): detection jitter around the joining distance must not split one
#: violation into two (two cases for the same parked bikes).
HOLD_FACTOR = 2.0


class PlaceStatus(StrEnum):
    """Where a place's violation is in its life: seen (first evidence kept), open, or closed and cooling down."""

    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class Place:
    """One violation (pending, open, or closed and cooling down) at one place."""

    violation_id: str
    zone_idx: int
    status: PlaceStatus
    first_seen_s: float
    bbox: tuple[float, float, float, float]
    members: frozenset[int]
    object_count: int
    score: float
    last_present_s: float
    last_evidence_s: float
    escalation: Escalation = Escalation.BLUE
    place_key: str = ""
    opened_s: float | None = None
    last_update_s: float = 0.0
    closed_s: float | None = None
    evidenced_count: int = 0
    dwell_s: float = 0.0
    unclassified: bool = False  # all its objects are unknown_object regions (no known label there)

    def take_members(self, members: list[Candidate]) -> None:
        """The objects standing on the place now; a known label among them makes it classified."""
        self.members = frozenset(m.cand_id for m in members)
        self.object_count = len(members)
        self.unclassified = all(m.class_id == UNKNOWN_OBJECT_CLASS_ID for m in members)


@dataclass(slots=True)
class _Cluster:
    zone_idx: int
    members: list[Candidate]
    bbox: tuple[float, float, float, float]


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _clusters(cands: list[Candidate], merge_widths: float, held: dict[int, int]) -> list[_Cluster]:
    """Candidates of a zone that touch or stand within ``merge_widths`` mean box widths of each other;
    ``held``: candidate id -> index of the live place it belongs to (they hold together up to
    ``HOLD_FACTOR`` times as far)."""
    by_zone: dict[int, list[Candidate]] = {}
    for c in cands:
        by_zone.setdefault(c.zone_idx, []).append(c)
    out: list[_Cluster] = []
    for zone_idx, group in by_zone.items():
        boxes = [c.geo_box for c in group]
        parent = list(range(len(group)))
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                a, b = boxes[i], boxes[j]
                touching = min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
                place_i = held.get(group[i].cand_id)
                reach = merge_widths * (
                    HOLD_FACTOR if place_i is not None and place_i == held.get(group[j].cand_id) else 1.0
                )
                near = reach > 0 and centre_dist(a, b) <= reach * ((a[2] - a[0]) + (b[2] - b[0])) / 2
                if touching or near:
                    parent[_find(parent, i)] = _find(parent, j)
        groups: dict[int, list[int]] = {}
        for i in range(len(group)):
            groups.setdefault(_find(parent, i), []).append(i)
        for idxs in groups.values():
            members = [group[i] for i in idxs]
            out.append(_Cluster(zone_idx, members, box_union(boxes[i] for i in idxs)))
    return out


_STATUS_RANK = {PlaceStatus.OPEN: 0, PlaceStatus.PENDING: 1, PlaceStatus.CLOSED: 2}


def _assign_places(clusters: list[_Cluster], places: list[Place]) -> dict[int, int]:
    """cluster index -> place index; each place takes at most one cluster."""
    pairs = []
    for ci, cl in enumerate(clusters):
        ids = {m.cand_id for m in cl.members}
        for pi, p in enumerate(places):
            if p.zone_idx != cl.zone_idx:
                continue
            iou = box_iou(cl.bbox, p.bbox)
            near = centre_dist(cl.bbox, p.bbox) <= 0.5 * box_diag(p.bbox)
            if iou < 0.1 and not near:
                continue
            shared = len(ids & p.members)
            pairs.append((_STATUS_RANK[p.status], -shared, -iou, ci, pi))
    pairs.sort()
    out: dict[int, int] = {}
    taken: set[int] = set()
    for *_, ci, pi in pairs:
        if ci not in out and pi not in taken:
            out[ci] = pi
            taken.add(pi)
    return out


def _confirm_s(dwell_s: float) -> float:
    return min(CONFIRM_MAX_S, max(CONFIRM_MIN_S, CONFIRM_FRACTION * dwell_s))


def _event(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    place: Place,
    name: EventKind,
    now_s: float,
    evidence: bool,
) -> ViolationEvent:
    return _event_in_zone(state, spec, zones.zones[place.zone_idx], place, name, now_s, evidence)


def _event_in_zone(
    state: RuleState,
    spec: RuleSpec,
    zone: ZoneConfig,
    place: Place,
    name: EventKind,
    now_s: float,
    evidence: bool,
) -> ViolationEvent:
    kind = spec.kind_spec
    code = gbt_code_for(zone, kind)
    return ViolationEvent(
        event=name,
        violation_id=place.violation_id,
        camera_id=state.camera_id,
        zone_id=zone.id,
        kind=spec.kind,
        ts_s=now_s,
        bbox_xyxy=tuple(float(v) for v in place.bbox),  # type: ignore[arg-type]
        score=float(place.score),
        gbt_code=code,
        escalation=place.escalation,
        dwell_s=float(place.dwell_s),
        first_seen_s=float(place.first_seen_s),
        object_count=int(place.object_count),
        evidence_request=evidence,
        place_key=place.place_key,
        gbt_name=gbt_name_for(code, kind),
        kind_name_zh=kind.name_zh,
        unclassified=place.unclassified,
    )


def _new_violation_id(state: RuleState, spec: RuleSpec, zone: ZoneConfig, first_seen_s: float) -> str:
    base = f"{state.camera_id}-{zone.id}-{spec.kind}-{round(first_seen_s * 1000)}"
    taken = {p.violation_id for p in state.places}
    vid, n = base, 1
    while vid in taken:
        n += 1
        vid = f"{base}-{n}"
    return vid


def _cluster_stats(
    state: RuleState, spec: RuleSpec, cl: _Cluster, now_s: float
) -> tuple[float, float, float]:
    """(score, dwell_s, first_seen_s) of a cluster.

    Only members seen in enough of their frames count; dwell is the longest eligible stationary
    time among members whose score passes the gate (median of recent scores, not one frame).
    """
    score, dwell, first_seen = 0.0, 0.0, now_s
    for m in cl.members:
        if m.presence(state.frame) < MIN_PRESENCE:
            continue
        s = m.score(spec.support_weight)
        score = max(score, s)
        if s >= state.rules.min_score:
            start = m.eff_start_s()
            dwell = max(dwell, now_s - start)
            first_seen = min(first_seen, start)
    return score, dwell, first_seen


def _advance_open(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    place: Place,
    cl: _Cluster,
    now_s: float,
    events: list[ViolationEvent],
) -> None:
    rules = state.rules
    if len(cl.members) != place.object_count:
        place.take_members(cl.members)
    grew = place.object_count > place.evidenced_count and spec.kind_spec.evidence.on_growth
    evidence_ok = now_s - place.last_evidence_s >= rules.evidence_min_gap_s
    if not ((grew and evidence_ok) or now_s - place.last_update_s >= rules.update_interval_s):
        return
    place.take_members(cl.members)
    score = _cluster_stats(state, spec, cl, now_s)[0]
    place.score = score or place.score
    place.dwell_s = now_s - place.first_seen_s
    want = grew and evidence_ok
    place.last_update_s = now_s
    if want:
        place.last_evidence_s = now_s
        place.evidenced_count = place.object_count
    events.append(_event(state, spec, zones, place, EventKind.UPDATED, now_s, evidence=want))


def advance_places(state: RuleState, spec: RuleSpec, zones: ZoneFrame, now_s: float) -> list[ViolationEvent]:
    """Layer 2: cluster eligible candidates into places and move each place's violation along."""
    events: list[ViolationEvent] = []
    _forget_cooled_down(state, now_s)
    clusters, assigned = _clusters_and_places(state, spec)
    matched_places: set[int] = set()
    for ci, cl in enumerate(clusters):
        pi = assigned.get(ci)
        if pi is not None:
            matched_places.add(pi)
        sighted = _advance_cluster(
            state, spec, zones, cl, state.places[pi] if pi is not None else None, now_s, events
        )
        if sighted is not None:
            state.places.append(sighted)
            matched_places.add(len(state.places) - 1)
    _close_unseen(state, spec, zones, matched_places, now_s, events)
    return events


def _forget_cooled_down(state: RuleState, now_s: float) -> None:
    """A closed place past its cooldown is forgotten before matching, so it cannot hold a cluster hostage."""
    cooldown_s = state.rules.reopen_cooldown_s
    state.places = [
        p
        for p in state.places
        if not (p.status is PlaceStatus.CLOSED and now_s - (p.closed_s or now_s) > cooldown_s)
    ]


def _clusters_and_places(state: RuleState, spec: RuleSpec) -> tuple[list[_Cluster], dict[int, int]]:
    """Clusters of the eligible candidates, and ``cluster index -> place index``; both cached while the
    candidates' membership and the places stay the same."""
    eligible = [c for c in state.candidates if c.eligible]
    held = {
        cand_id: pi
        for pi, p in enumerate(state.places)
        if p.status is not PlaceStatus.CLOSED
        for cand_id in p.members
    }
    signature = (tuple((c.cand_id, c.zone_idx, c.geo_version) for c in eligible), tuple(held.items()))
    if state.cluster_cache is not None and state.cluster_cache[0] == signature:
        clusters = state.cluster_cache[1]
    else:
        clusters = _clusters(eligible, spec.merge_widths, held) if eligible else []
        if spec.min_count > 1:  # template cluster: fewer objects are no place of this kind
            clusters = [cl for cl in clusters if len(cl.members) >= spec.min_count]
        state.cluster_cache = (signature, clusters)
    assigned: dict[int, int] = {}
    if clusters and state.places:
        key = (signature, tuple((id(p), p.status, p.bbox) for p in state.places))
        if state.assign_cache is not None and state.assign_cache[0] == key:
            assigned = state.assign_cache[1]
        else:
            assigned = _assign_places(clusters, state.places)
            state.assign_cache = (key, assigned)
    return clusters, assigned


def _advance_cluster(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    cl: _Cluster,
    place: Place | None,
    now_s: float,
    events: list[ViolationEvent],
) -> Place | None:
    """Move the violation of the place a cluster stands on along; returns a newly sighted place."""
    present_s = -math.inf
    for m in cl.members:
        if m.last_seen_s > present_s:
            present_s = m.last_seen_s
    fresh = present_s == now_s
    if place is not None:
        place.bbox = cl.bbox
        place.last_present_s = max(place.last_present_s, present_s)
        if place.status is PlaceStatus.OPEN:
            _advance_open(state, spec, zones, place, cl, now_s, events)
            return None
    zone = zones.zones[cl.zone_idx]
    dwell_needed = dwell_for(zone, spec.kind_spec)
    score, dwell, first_seen = _cluster_stats(state, spec, cl, now_s)
    confirmed = fresh and dwell >= _confirm_s(dwell_needed)
    if place is None:
        if not confirmed:
            return None
        return _sight(state, spec, zones, cl, score, dwell, first_seen, present_s, now_s, events)
    place.take_members(cl.members)
    if place.status is PlaceStatus.PENDING:
        place.score = score
        place.dwell_s = dwell
        due = fresh and dwell >= dwell_needed
        _advance_pending(state, spec, zones, place, due, dwell_needed, score, now_s, events)
    elif confirmed and score >= state.rules.min_score:  # closed, within the cooldown: same violation again
        _reopen(state, spec, zones, place, score, now_s, events)
    return None


def _sight(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    cl: _Cluster,
    score: float,
    dwell: float,
    first_seen: float,
    present_s: float,
    now_s: float,
    events: list[ViolationEvent],
) -> Place:
    """A cluster stationary long enough to confirm: a pending place, and its first evidence frame."""
    zone = zones.zones[cl.zone_idx]
    place = Place(
        violation_id=_new_violation_id(state, spec, zone, first_seen),
        zone_idx=cl.zone_idx,
        status=PlaceStatus.PENDING,
        first_seen_s=first_seen,
        bbox=cl.bbox,
        members=frozenset(),
        object_count=0,
        score=score,
        last_present_s=present_s,
        last_evidence_s=now_s,
        dwell_s=dwell,
    )
    place.take_members(cl.members)
    place.place_key = place_key(state.camera_id, zone, spec.kind, cl.bbox, zones.frame_wh)
    place.escalation = _escalation(state, spec, place.place_key, now_s)
    evidence = spec.kind_spec.evidence.on_sighting
    events.append(_event(state, spec, zones, place, EventKind.SIGHTING, now_s, evidence=evidence))
    return place


def _escalation(state: RuleState, spec: RuleSpec, key: str, now_s: float) -> Escalation:
    """三色单 level of a new offence at ``key``; always blue for a kind with escalation off."""
    if not spec.kind_spec.escalation:
        return Escalation.BLUE
    return escalation_level(state.book.count(key, now_s) + 1, state.rules)


def _advance_pending(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    place: Place,
    due: bool,
    dwell_needed: float,
    score: float,
    now_s: float,
    events: list[ViolationEvent],
) -> None:
    """Open a pending violation once its dwell is ``due`` and its score passes the gate."""
    rules = state.rules
    evidence_ok = now_s - place.last_evidence_s >= rules.evidence_min_gap_s
    if due and score >= rules.min_score and evidence_ok:
        place.escalation = _escalation(state, spec, place.place_key, now_s)
        if spec.kind_spec.escalation:
            state.book.record(place.place_key, now_s)
        place.status = PlaceStatus.OPEN
        place.opened_s = place.last_update_s = place.last_evidence_s = now_s
        place.evidenced_count = place.object_count
        events.append(_event(state, spec, zones, place, EventKind.OPENED, now_s, evidence=True))
    elif evidence_ok and 0.0 <= now_s - (place.first_seen_s + dwell_needed) <= CONFIRM_WINDOW_S:
        # due, and only the score gate is missing (waiting out the evidence gap needs no detector)
        state.wants_detection = True


def _reopen(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    place: Place,
    score: float,
    now_s: float,
    events: list[ViolationEvent],
) -> None:
    """A closed place back within its cooldown: the same violation opens again."""
    place.status = PlaceStatus.OPEN
    place.closed_s = None
    place.score = score
    place.dwell_s = now_s - place.first_seen_s
    place.last_update_s = now_s
    want = now_s - place.last_evidence_s >= state.rules.evidence_min_gap_s
    if want:
        place.last_evidence_s = now_s
    place.evidenced_count = place.object_count
    events.append(_event(state, spec, zones, place, EventKind.OPENED, now_s, evidence=want))


def _close_unseen(
    state: RuleState,
    spec: RuleSpec,
    zones: ZoneFrame,
    matched_places: set[int],
    now_s: float,
    events: list[ViolationEvent],
) -> None:
    """Places no cluster stood on: after ``rules.grace_s`` a pending one is abandoned, an open one closes."""
    grace_s = state.rules.grace_s
    kept: list[Place] = []
    for pi, place in enumerate(state.places):
        if pi not in matched_places:
            if place.status is PlaceStatus.PENDING and now_s - place.last_present_s > grace_s:
                continue  # never opened: its sighting is abandoned
            if place.status is PlaceStatus.OPEN and now_s - place.last_present_s > grace_s:
                place.status = PlaceStatus.CLOSED
                place.closed_s = now_s
                place.dwell_s = place.last_present_s - place.first_seen_s
                events.append(_event(state, spec, zones, place, EventKind.CLOSED, now_s, evidence=False))
        kept.append(place)
    state.places = kept


def remap_places(
    state: RuleState,
    spec: RuleSpec,
    old_zones: tuple[ZoneConfig, ...],
    remap: list[int],
    ts_s: float,
    *,
    close_all: bool,
) -> list[ViolationEvent]:
    """Re-index places for a new zone set (``remap[old_idx] -> new_idx`` or -1): places of a zone that is
    gone (or all, with ``close_all``) are dropped; open ones close now and their ``closed`` events are
    returned."""
    events: list[ViolationEvent] = []
    kept: list[Place] = []
    for place in state.places:
        new_idx = -1 if close_all else remap[place.zone_idx]
        if new_idx >= 0:
            place.zone_idx = new_idx
            kept.append(place)
            continue
        if place.status is PlaceStatus.OPEN:
            place.status = PlaceStatus.CLOSED
            place.closed_s = ts_s
            place.dwell_s = max(0.0, place.last_present_s - place.first_seen_s)
            events.append(
                _event_in_zone(state, spec, old_zones[place.zone_idx], place, EventKind.CLOSED, ts_s, False)
            )
    state.places = kept
    return events


def rescale_places(places: list[Place], sx: float, sy: float) -> None:
    """The stream changed resolution but not its view: scale every place's box by ``(sx, sy)``."""
    for p in places:
        p.bbox = scale_box(p.bbox, sx, sy)
