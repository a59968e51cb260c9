"""Shared rule machinery: candidates that survive detector noise, places, and violation lifecycles.

Two layers, both pure (time is an argument; no clock, disk or network):

1. **Candidates** follow individual objects of the rule's kinds. A settled object is matched to
   detections by position against where it settled (IoU / centre distance; a tracker id only breaks
   ties), so tracker ID switches, ids carried over to another object, stray boxes and untracked
   streams do not move or lose it; a moving one may also follow its tracker id. Each candidate
   judges stationarity over a time window (medians, so a 1-3 frame false box or a jittery box does
   not count as movement); a *stationary episode* starts when it settles (back-dated to the first
   settled observation) and ends when it has moved for ``MOVE_RESET_S``. Settling somewhere else (a
   bike moved and re-parked) starts a new episode. Missed frames and occlusions shorter than
   ``rules.grace_s`` keep the candidate and its dwell. Two candidates settled on one object merge.
   Dwell counts only while the object is eligible: in a watching zone in force, outside exemptions
   in force, not blocked (held by a person, part of a grill stall) for ``HELD_MIN_S`` or more.
2. **Places** group eligible candidates of one zone (bikes within ~1.5 box widths form one cluster)
   and carry one violation each: ``sighting`` (internal, first evidence frame) -> ``opened`` at the
   dwell crossing -> ``updated`` every ``rules.update_interval_s`` -> ``closed`` once nothing has been
   seen for ``rules.grace_s``. A place that comes back within ``rules.reopen_cooldown_s`` re-opens the
   same violation (same ``violation_id``) instead of creating a new one.

Rule state is owned by the caller: ``step`` updates it and returns it (copying it every frame would
cost more than the rule itself).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import NamedTuple

import numpy as np

from vision.config import RulesConfig, ZoneConfig
from vision.geometry import box_diag, box_iou, box_union, centre_dist, iou_matrix
from vision.types import (
    DEFAULT_GBT_CODE,
    OBJECT_KINDS,
    Detections,
    Escalation,
    ObjectKind,
    ViolationEvent,
    ViolationKind,
)
from vision.zones import ZoneFrame

# Stationarity: judged over the last STILL_WINDOW_S of samples (or the last 3 when sparse), once the
# samples span STILL_MIN_SPAN_S. A pushed bike at walking pace drifts > 0.35 diagonals in that time.
STILL_WINDOW_S = 5.0
STILL_MIN_SPAN_S = 3.0
STILL_MIN_SAMPLES = 3
STILL_INLIER_FRACTION = 0.6
#: Samples are kept (and stationarity judged) at most this often, so the window means the same at
#: 5 fps and at 30 fps, and a settled object costs little per frame. Episodes are back-dated to
#: the first settled sample, so this costs at most this much dwell precision.
SAMPLE_MIN_GAP_S = 0.5
SAMPLES_KEPT = 80
#: Continuous movement for this long ends a stationary episode.
MOVE_RESET_S = 3.0
#: A candidate that never settled is forgotten after this long unseen (passers-by do not linger).
UNSETTLED_TTL_S = 3.0

# Matching detections to candidates.
MATCH_MIN_IOU = 0.2
MATCH_MAX_SHIFT = 0.5  # centre distance, in candidate diagonals
TRACK_MAX_SHIFT = 1.5  # a moving object with the same tracker id may move further between sightings
#: Trackers swap ids between neighbouring parked bikes; for a settled object the id only breaks ties.
SETTLED_TRACK_BONUS = 0.1

#: Two settled candidates whose boxes overlap this much are one object seen twice.
DUPLICATE_IOU = 0.5
#: An episode must have been seen in at least this fraction of the frames since it started to open.
MIN_PRESENCE = 0.25
#: A place is sighted once its objects have been stationary for dwell * 0.1 (clamped to 3..15 s).
CONFIRM_FRACTION, CONFIRM_MIN_S, CONFIRM_MAX_S = 0.1, 3.0, 15.0
#: Recent observations looked at for "blocked" (garbage held by a person) and supporting evidence.
CONTEXT_WINDOW = 10
BLOCKED_FRACTION = 0.3  # of recent observations; the other object (bin, person) is missed too
#: Blocked only counts once it has lasted this long (brief overlaps are passers-by, not holders).
HELD_MIN_S = 10.0
#: A pending violation whose dwell is due but whose score gate has not passed yet asks for a detector run
#: on every frame (``RuleState.wants_detection``) for at most this long: the opening decision then rests
#: on as many observations as without motion gating, where it would otherwise wait for periodic scans.
CONFIRM_WINDOW_S = 30.0
#: Zone membership of a settled object is recomputed only when its anchor box moved this much.
GEO_SLACK_PX = 2.0
#: Escalation places without a frontage are cells of this fraction of the frame.
ESCALATION_CELL = 0.1


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
    """

    kind: ViolationKind
    object_kinds: tuple[ObjectKind, ...]
    merge_widths: float = 0.0
    annotate: Annotator | None = None
    support_weight: float = 0.0

    class_ids: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_ids", tuple(OBJECT_KINDS.index(k) for k in self.object_kinds))


class Sample(NamedTuple):
    """One kept observation of a candidate: when, which detector run, its centre, diagonal and box."""

    ts_s: float
    frame: int  # RuleState.frame of the observation
    seen: int  # the candidate's observation count then
    cx: float
    cy: float
    diag: float
    x1: float
    y1: float
    x2: float
    y2: float

    def scaled(self, sx: float, sy: float) -> Sample:
        """The same observation in the frame resized by ``(sx, sy)``."""
        x1, y1, x2, y2 = self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy
        k = math.sqrt(sx * sy)
        return Sample(
            self.ts_s, self.frame, self.seen, self.cx * sx, self.cy * sy, self.diag * k, x1, y1, x2, y2
        )


@dataclass(slots=True)
class Candidate:
    """One followed object. Boxes are xyxy pixels; times are stream seconds."""

    cand_id: int
    class_id: int
    first_seen_s: float
    last_seen_s: float
    box: tuple[float, float, float, float]
    tracker_id: int | None
    seen: int = 0  # observations so far
    samples: deque[Sample] = field(
        default_factory=lambda: deque(maxlen=SAMPLES_KEPT)
    )  # every SAMPLE_MIN_GAP_S
    scores: deque = field(default_factory=deque)
    blocked: deque = field(default_factory=lambda: deque(maxlen=CONTEXT_WINDOW))
    support: deque = field(default_factory=lambda: deque(maxlen=CONTEXT_WINDOW))
    # stationary episode
    dwell_start_s: float | None = None
    anchor: list[float] | None = None  # running-mean box of the episode
    anchor_n: int = 0
    home: tuple[float, float] = (0.0, 0.0)  # centre where the episode settled
    episode_frame0: int = 0
    episode_seen0: int = 0
    last_still_s: float = 0.0
    hold_s: float = -math.inf  # last time it was ineligible (outside zone, exempt, blocked)
    held: bool = False  # blocked in most recent observations
    held_since_s: float | None = None  # when the current blocked streak began
    merged_into: int = 0  # a duplicate of this older candidate; dropped
    # zone membership of geo_box (the anchor when last computed) for geometry geo_of
    geo_of: object | None = None
    geo_box: tuple[float, float, float, float] | None = None
    geo_version: int = 0
    geo_watch: tuple[int, ...] = ()
    geo_exempt: tuple[int, ...] = ()
    zone_idx: int = -1
    eligible: bool = False

    def ref_box(self) -> tuple[float, ...] | list[float]:
        """Box detections are matched against: where it settled (a stray box cannot drag a settled
        object away), or its last box while it moves."""
        return self.anchor if self.anchor is not None else self.box

    def eff_start_s(self) -> float:
        assert self.dwell_start_s is not None
        return max(self.dwell_start_s, self.hold_s)

    def presence(self, frame: int) -> float:
        frames = frame - self.episode_frame0 + 1
        return (self.seen - self.episode_seen0) / max(1, frames)


@dataclass(slots=True)
class Place:
    """One violation (pending, open, or closed and cooling down) at one place."""

    violation_id: str
    zone_idx: int
    status: str  # "pending" | "open" | "closed"
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


class EscalationBook:
    """Offence times per place key, for 三色单 escalation. Seed it from the database.

    Args:
        history: ``place_key -> offence start times`` in the same clock as ``ts_s`` (epoch seconds
            live). Keys look like ``"cam-1/z1/street_vending/frontage-A12"`` or
            ``".../cell-3-7"`` (see ``place_key``).
        window_s: offences older than this are forgotten.

    Example:
        >>> book = EscalationBook({"cam-1/z1/street_vending/frontage-A": [100.0]}, window_s=86400)
        >>> book.count("cam-1/z1/street_vending/frontage-A", now_s=200.0)
        1
    """

    def __init__(
        self, history: Mapping[str, Iterable[float]] | None = None, window_s: float = 30 * 86400
    ) -> None:
        self.window_s = float(window_s)
        self._times: dict[str, list[float]] = {
            k: sorted(float(t) for t in v) for k, v in (history or {}).items()
        }

    def _neighbours(self, key: str) -> list[str]:
        head, _, last = key.rpartition("/")
        if not last.startswith("cell-"):
            return [key]
        try:
            gx, gy = (int(v) for v in last[5:].split("-"))
        except ValueError:
            return [key]
        # an object on a cell border must not escape escalation by jitter
        return [f"{head}/cell-{gx + dx}-{gy + dy}" for dx in (-1, 0, 1) for dy in (-1, 0, 1)]

    def count(self, key: str, now_s: float) -> int:
        """Offences at ``key`` (and neighbouring cells) within the window before ``now_s``."""
        since = now_s - self.window_s
        return sum(
            sum(1 for t in self._times.get(k, ()) if since <= t <= now_s) for k in self._neighbours(key)
        )

    def record(self, key: str, ts_s: float) -> None:
        since = ts_s - self.window_s
        times = [t for t in self._times.get(key, ()) if t >= since]
        times.append(float(ts_s))
        self._times[key] = times

    def snapshot(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self._times.items() if v}


def escalation_level(count: int, rules: RulesConfig) -> Escalation:
    """``count`` offences (including this one) -> blue / yellow / red."""
    if count >= rules.escalation_red_at:
        return Escalation.RED
    if count >= rules.escalation_yellow_at:
        return Escalation.YELLOW
    return Escalation.BLUE


def place_key(
    camera_id: str,
    zone: ZoneConfig,
    kind: ViolationKind,
    bbox: tuple[float, float, float, float],
    frame_wh: tuple[int, int],
) -> str:
    """Stable key of a place for escalation: the zone's frontage, else a 10 x 10 cell of the frame."""
    if zone.frontage_id:
        return f"{camera_id}/{zone.id}/{kind}/frontage-{zone.frontage_id}"
    cx = (bbox[0] + bbox[2]) / 2 / max(1, frame_wh[0])
    cy = (bbox[1] + bbox[3]) / 2 / max(1, frame_wh[1])
    cells = round(1 / ESCALATION_CELL)
    gx = min(cells - 1, max(0, int(cx / ESCALATION_CELL)))
    gy = min(cells - 1, max(0, int(cy / ESCALATION_CELL)))
    return f"{camera_id}/{zone.id}/{kind}/cell-{gx}-{gy}"


def gbt_code_for(zone: ZoneConfig, kind: ViolationKind) -> str:
    """GB/T 30428.2 code: vending is 0504 (店外经营) at a frontage, else the zone override or 0501."""
    if kind == ViolationKind.STREET_VENDING:
        if zone.gbt_code:
            return zone.gbt_code
        if zone.frontage_id:
            return "0504"
    return DEFAULT_GBT_CODE[kind]


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


# ---------------------------------------------------------------------------------------------
# layer 1: candidates


def _pair_gain(box: list[float], tid: int | None, c: Candidate) -> float | None:
    """How well a detection continues a candidate (higher is better), None if it cannot."""
    ref = c.ref_box()
    iou = box_iou(box, ref)
    shift = centre_dist(box, ref) / box_diag(ref)
    same = tid is not None and tid >= 0 and tid == c.tracker_id
    if c.anchor is not None:  # settled: position decides, the tracker id only breaks ties
        if iou >= MATCH_MIN_IOU or shift <= MATCH_MAX_SHIFT:
            return same * SETTLED_TRACK_BONUS + iou - 0.01 * shift
        return None
    if iou >= MATCH_MIN_IOU or shift <= MATCH_MAX_SHIFT or (same and shift <= TRACK_MAX_SHIFT):
        return same * 2.0 + iou - 0.01 * shift
    return None


def _match(cands: list[Candidate], det: Detections, boxes: list[list[float]]) -> list[int]:
    """Index of the candidate each detection continues, or -1. Tracker id first, then position."""
    n = len(det)
    result = [-1] * n
    if n == 0 or not cands:
        return result
    if n * len(cands) <= 36:  # small scenes: plain Python beats numpy's per-call overhead
        tids = det.tracker_id.tolist() if det.tracker_id is not None else [None] * n
        pairs = []
        for d in range(n):
            for ci, c in enumerate(cands):
                gain = _pair_gain(boxes[d], tids[d], c)
                if gain is not None:
                    pairs.append((-gain, d, ci))
        pairs.sort()
        used: set[int] = set()
        for _, d, ci in pairs:
            if result[d] < 0 and ci not in used:
                result[d] = ci
                used.add(ci)
        return result
    cboxes = np.array([c.ref_box() for c in cands], np.float32)
    iou = iou_matrix(det.xyxy, cboxes)
    dcent = (det.xyxy[:, None, :2] + det.xyxy[:, None, 2:]) / 2
    ccent = (cboxes[None, :, :2] + cboxes[None, :, 2:]) / 2
    cdiag = np.maximum(np.hypot(cboxes[:, 2] - cboxes[:, 0], cboxes[:, 3] - cboxes[:, 1]), 1.0)
    shift = np.hypot(*(dcent - ccent).transpose(2, 0, 1)) / cdiag[None, :]
    same_track = np.zeros_like(iou, bool)
    if det.tracker_id is not None:
        ctid = np.array([-1 if c.tracker_id is None else c.tracker_id for c in cands], np.int64)
        same_track = (det.tracker_id[:, None] == ctid[None, :]) & (ctid[None, :] >= 0)
    settled = np.array([c.anchor is not None for c in cands])[None, :]
    near = (iou >= MATCH_MIN_IOU) | (shift <= MATCH_MAX_SHIFT)
    ok = near | (same_track & (shift <= TRACK_MAX_SHIFT) & ~settled)
    if not ok.any():
        return result
    # higher is better: same track, then IoU, then closeness
    gain = same_track * np.where(settled, SETTLED_TRACK_BONUS, 2.0) + iou - 0.01 * shift
    di, ci = np.nonzero(ok)
    order = np.argsort(-gain[di, ci], kind="stable")
    used_c: set[int] = set()
    for k in order:
        d, c = int(di[k]), int(ci[k])
        if result[d] < 0 and c not in used_c:
            result[d] = c
            used_c.add(c)
    return result


def _judge_still(c: Candidate, max_shift: float) -> bool | None:
    """Stationary now? None while there are too few samples to tell."""
    samples = c.samples
    newest = samples[-1].ts_s
    window = [s for s in samples if s.ts_s >= newest - STILL_WINDOW_S]
    if len(window) < STILL_MIN_SAMPLES:
        window = list(samples)[-STILL_MIN_SAMPLES:]
    if len(window) < STILL_MIN_SAMPLES or window[-1].ts_s - window[0].ts_s < STILL_MIN_SPAN_S:
        return None
    cxs = [s.cx for s in window]
    cys = [s.cy for s in window]
    mcx, mcy = median(cxs), median(cys)
    tol = max_shift * median([s.diag for s in window])
    inliers = sum(1 for x, y in zip(cxs, cys, strict=True) if math.hypot(x - mcx, y - mcy) <= tol)
    if inliers < STILL_INLIER_FRACTION * len(window):
        return False
    half = len(window) // 2  # has the older half's median moved to the newer half's?
    drift = math.hypot(median(cxs[half:]) - median(cxs[:half]), median(cys[half:]) - median(cys[:half]))
    return drift <= tol


def _settling(c: Candidate, now_s: float) -> bool:
    """A new object whose stationarity is not decided yet wants its next sample now: a few detector runs
    over ``STILL_MIN_SPAN_S`` settle it, where carried frames (no samples) would leave it to the next scan."""
    if c.dwell_start_s is not None or not c.samples or now_s - c.last_seen_s > SAMPLE_MIN_GAP_S:
        return False
    return (
        c.samples[-1].ts_s - c.samples[0].ts_s < STILL_MIN_SPAN_S
        and now_s - c.samples[-1].ts_s >= SAMPLE_MIN_GAP_S
    )


def _start_episode(c: Candidate, max_shift: float) -> None:
    """Begin a stationary episode back-dated to the first sample of the current settled run."""
    window = [s for s in c.samples if s.ts_s >= c.samples[-1].ts_s - STILL_WINDOW_S] or list(c.samples)
    mcx = median(s.cx for s in window)
    mcy = median(s.cy for s in window)
    tol = max_shift * median(s.diag for s in window)
    first = c.samples[-1]
    settled = []
    misses = 0
    for s in reversed(c.samples):
        if math.hypot(s.cx - mcx, s.cy - mcy) > tol:
            misses += 1
            if misses >= 2:  # one stray box (a false detection) does not end the settled run
                break
            continue
        misses = 0
        first = s
        settled.append(s)
    if not settled:
        # The two newest samples lie off the window's median (a box that jumped or collapsed): the
        # object settles where it was seen last.
        settled = [first]
    c.dwell_start_s = first.ts_s
    c.episode_frame0 = first.frame
    c.episode_seen0 = first.seen - 1
    n = len(settled)
    c.anchor = [
        sum(s.x1 for s in settled) / n,
        sum(s.y1 for s in settled) / n,
        sum(s.x2 for s in settled) / n,
        sum(s.y2 for s in settled) / n,
    ]
    c.anchor_n = len(settled)
    # where it settled; fixed for the episode, so a slow creep cannot drag it along
    c.home = ((c.anchor[0] + c.anchor[2]) / 2, (c.anchor[1] + c.anchor[3]) / 2)
    c.geo_box = None


def _end_episode(c: Candidate) -> None:
    c.dwell_start_s = None
    c.anchor = None
    c.anchor_n = 0
    c.zone_idx = -1
    c.eligible = False
    c.geo_box = None


def _observe(
    c: Candidate,
    box: tuple[float, ...],
    score: float,
    tid: int | None,
    blocked: bool,
    support: float,
    now_s: float,
    frame: int,
    rules: RulesConfig,
    fresh: bool = True,
) -> None:
    c.last_seen_s = now_s
    c.box = box  # type: ignore[assignment]
    if tid is not None:
        c.tracker_id = tid
    if not fresh and c.seen:
        # A carried detection: still there, but no new evidence of score, place or context. A candidate's
        # first observation counts even when carried: the tracker confirms a new track on its second frame,
        # which after a scan is a carried one.
        return
    c.seen += 1
    c.scores.append(score)
    while len(c.scores) > rules.score_window:
        c.scores.popleft()
    c.blocked.append(blocked)
    c.support.append(support)
    held = sum(c.blocked) >= BLOCKED_FRACTION * len(c.blocked)
    if held and not c.held:
        c.held_since_s = now_s
    c.held = held
    if c.samples and now_s - c.samples[-1].ts_s < SAMPLE_MIN_GAP_S:
        return
    x1, y1, x2, y2 = box
    c.samples.append(
        Sample(now_s, frame, c.seen, (x1 + x2) / 2, (y1 + y2) / 2, box_diag(box), x1, y1, x2, y2)
    )
    still = _judge_still(c, rules.stationary_max_shift)
    if still is None:
        return
    if still:
        if c.dwell_start_s is None:
            _start_episode(c, rules.stationary_max_shift)
        else:
            assert c.anchor is not None
            acx, acy = c.home
            window = [s for s in c.samples if s.ts_s >= now_s - STILL_WINDOW_S]
            mcx, mcy = median(s.cx for s in window), median(s.cy for s in window)
            if math.hypot(mcx - acx, mcy - acy) > rules.stationary_max_shift * box_diag(tuple(c.anchor)):
                _start_episode(c, rules.stationary_max_shift)  # settled somewhere else: re-parked
            else:
                # running mean, capped so the anchor follows a stall that slowly grows its awning
                c.anchor_n = min(c.anchor_n + 1, 50)
                k = 1.0 / c.anchor_n
                c.anchor = [a + (b - a) * k for a, b in zip(c.anchor, box, strict=True)]
        c.last_still_s = now_s
    elif c.dwell_start_s is not None and now_s - c.last_still_s >= MOVE_RESET_S:
        _end_episode(c)


def _score(c: Candidate, spec: RuleSpec) -> float:
    s = median(c.scores) if c.scores else 0.0
    if spec.support_weight and c.support:
        s = 1.0 - (1.0 - s) * (1.0 - spec.support_weight * (sum(c.support) / len(c.support)))
    return s


def _update_eligibility(c: Candidate, zones: ZoneFrame, spec: RuleSpec, now_s: float) -> None:
    if c.dwell_start_s is None or c.anchor is None:
        c.eligible = False
        return
    geo = zones.geometry
    a, g = c.anchor, c.geo_box
    if (
        c.geo_of is not geo
        or g is None
        or abs(a[0] - g[0]) > GEO_SLACK_PX
        or abs(a[1] - g[1]) > GEO_SLACK_PX
        or abs(a[2] - g[2]) > GEO_SLACK_PX
        or abs(a[3] - g[3]) > GEO_SLACK_PX
    ):
        box = np.array([a], np.float64)
        member = geo.membership(box, np.array([c.class_id]))[0]
        watch = member & zones.watching(spec.kind)
        overlap = geo.overlap(box)[0]
        # prefer the zone holding most of the object; ties go to config order
        c.geo_watch = tuple(sorted(np.flatnonzero(watch).tolist(), key=lambda j: (-float(overlap[j]), j)))
        c.geo_exempt = tuple(np.flatnonzero(member & zones.exempting(spec.kind)).tolist())
        c.geo_of = geo
        c.geo_box = tuple(a)
        c.geo_version += 1
    active = zones.active
    c.zone_idx = next((j for j in c.geo_watch if active[j]), -1)
    exempt = any(active[j] for j in c.geo_exempt)
    # a walker passing in front of a pile looks like holding it for a moment: only a streak counts
    held = c.held and c.held_since_s is not None and now_s - c.held_since_s >= HELD_MIN_S
    c.eligible = c.zone_idx >= 0 and not exempt and not held
    if not c.eligible:
        c.hold_s = now_s  # dwell counts only from when the object became eligible


def _absorb_duplicate(state: RuleState, new: Candidate) -> None:
    """A candidate that just settled on top of another settled one is the same object seen twice
    (a tracker id swap or a split detection led a second candidate there): the older one keeps the
    object and its dwell, the newer one is dropped."""
    assert new.anchor is not None
    for old in state.candidates:
        if old is new or old.anchor is None or old.merged_into or old.cand_id > new.cand_id:
            continue
        if box_iou(old.anchor, new.anchor) >= DUPLICATE_IOU:
            old.last_seen_s = max(old.last_seen_s, new.last_seen_s)
            old.box = new.box
            new.merged_into = old.cand_id
            return


def update_candidates(
    state: RuleState,
    spec: RuleSpec,
    detections: Detections,
    zones: ZoneFrame,
    now_s: float,
    fresh: bool = True,
) -> None:
    """Layer 1: match detections of the rule's kinds to candidates, update stationarity and eligibility."""
    rules = state.rules
    objs = None
    if len(detections):
        cid = detections.class_id
        mine = cid == spec.class_ids[0]
        for other in spec.class_ids[1:]:
            mine |= cid == other
        if mine.any():
            mine &= zones.relevant(detections, spec.kind)
            if mine.any():
                objs = detections[mine]
    if objs is not None:
        ann = spec.annotate(objs, detections) if spec.annotate else None
        boxes = objs.xyxy.tolist()
        assign = _match(state.candidates, objs, boxes)
        tids = None if objs.tracker_id is None else objs.tracker_id.tolist()
        for i in range(len(objs)):
            box = tuple(boxes[i])
            tid = None if tids is None else tids[i]
            blocked = bool(ann.blocked[i]) if ann is not None else False
            support = float(ann.support[i]) if ann is not None else 0.0
            if assign[i] >= 0:
                c = state.candidates[assign[i]]
            else:
                c = Candidate(state.next_cand_id, int(objs.class_id[i]), now_s, now_s, box, tid)  # type: ignore[arg-type]
                state.next_cand_id += 1
                state.candidates.append(c)
            settled_before = c.dwell_start_s
            _observe(
                c, box, float(objs.confidence[i]), tid, blocked, support, now_s, state.frame, rules, fresh
            )
            if c.dwell_start_s is not None and c.dwell_start_s != settled_before:
                _absorb_duplicate(state, c)
    kept = []
    for c in state.candidates:
        unseen = now_s - c.last_seen_s
        if c.merged_into or unseen > rules.grace_s or (c.dwell_start_s is None and unseen > UNSETTLED_TTL_S):
            continue
        _update_eligibility(c, zones, spec, now_s)
        kept.append(c)
    state.candidates = kept


# ---------------------------------------------------------------------------------------------
# layer 2: places and violation lifecycle


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


def _clusters(cands: list[Candidate], merge_widths: float) -> list[_Cluster]:
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
                near = (
                    merge_widths > 0
                    and centre_dist(a, b) <= merge_widths * ((a[2] - a[0]) + (b[2] - b[0])) / 2
                )
                if touching or near:
                    parent[_find(parent, i)] = _find(parent, j)
        groups: dict[int, list[int]] = {}
        for i in range(len(group)):
            groups.setdefault(_find(parent, i), []).append(i)
        for idxs in groups.values():
            members = [group[i] for i in idxs]
            out.append(_Cluster(zone_idx, members, box_union(boxes[i] for i in idxs)))
    return out


_STATUS_RANK = {"open": 0, "pending": 1, "closed": 2}


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
    state: RuleState, spec: RuleSpec, zones: ZoneFrame, place: Place, name: str, now_s: float, evidence: bool
) -> ViolationEvent:
    return _event_in_zone(state, spec, zones.zones[place.zone_idx], place, name, now_s, evidence)


def _event_in_zone(
    state: RuleState, spec: RuleSpec, zone: ZoneConfig, place: Place, name: str, now_s: float, evidence: bool
) -> ViolationEvent:
    return ViolationEvent(
        event=name,
        violation_id=place.violation_id,
        camera_id=state.camera_id,
        zone_id=zone.id,
        kind=spec.kind,
        ts_s=now_s,
        bbox_xyxy=tuple(float(v) for v in place.bbox),  # type: ignore[arg-type]
        score=float(place.score),
        gbt_code=gbt_code_for(zone, spec.kind),
        escalation=place.escalation,
        dwell_s=float(place.dwell_s),
        first_seen_s=float(place.first_seen_s),
        object_count=int(place.object_count),
        evidence_request=evidence,
        place_key=place.place_key,
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
        s = _score(m, spec)
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
        place.members = frozenset(m.cand_id for m in cl.members)
        place.object_count = len(cl.members)
    grew = place.object_count > place.evidenced_count
    evidence_ok = now_s - place.last_evidence_s >= rules.evidence_min_gap_s
    if not ((grew and evidence_ok) or now_s - place.last_update_s >= rules.update_interval_s):
        return
    place.members = frozenset(m.cand_id for m in cl.members)
    score = _cluster_stats(state, spec, cl, now_s)[0]
    place.score = score or place.score
    place.dwell_s = now_s - place.first_seen_s
    want = grew and evidence_ok
    place.last_update_s = now_s
    if want:
        place.last_evidence_s = now_s
        place.evidenced_count = place.object_count
    events.append(_event(state, spec, zones, place, "updated", now_s, evidence=want))


def advance_places(state: RuleState, spec: RuleSpec, zones: ZoneFrame, now_s: float) -> list[ViolationEvent]:
    """Layer 2: cluster eligible candidates into places and move each place's violation along."""
    rules = state.rules
    events: list[ViolationEvent] = []
    # a closed place past its cooldown is forgotten before matching, so it cannot hold a cluster hostage
    state.places = [
        p
        for p in state.places
        if not (p.status == "closed" and now_s - (p.closed_s or now_s) > rules.reopen_cooldown_s)
    ]
    eligible = [c for c in state.candidates if c.eligible]
    signature = tuple((c.cand_id, c.zone_idx, c.geo_version) for c in eligible)
    if state.cluster_cache is not None and state.cluster_cache[0] == signature:
        clusters = state.cluster_cache[1]
    else:
        clusters = _clusters(eligible, spec.merge_widths) if eligible else []
        state.cluster_cache = (signature, clusters)
    assigned = {}
    if clusters and state.places:
        key = (signature, tuple((id(p), p.status, p.bbox) for p in state.places))
        if state.assign_cache is not None and state.assign_cache[0] == key:
            assigned = state.assign_cache[1]
        else:
            assigned = _assign_places(clusters, state.places)
            state.assign_cache = (key, assigned)
    matched_places: set[int] = set()

    for ci, cl in enumerate(clusters):
        pi = assigned.get(ci)
        place = state.places[pi] if pi is not None else None
        fresh = False
        present_s = -math.inf
        for m in cl.members:
            if m.last_seen_s > present_s:
                present_s = m.last_seen_s
        fresh = present_s == now_s
        if place is not None:
            matched_places.add(pi)  # type: ignore[arg-type]
            place.bbox = cl.bbox
            place.last_present_s = max(place.last_present_s, present_s)
            if place.status == "open":
                _advance_open(state, spec, zones, place, cl, now_s, events)
                continue
        zone = zones.zones[cl.zone_idx]
        dwell_needed = zone.dwell_for(spec.kind)
        score, dwell, first_seen = _cluster_stats(state, spec, cl, now_s)
        confirmed = fresh and dwell >= _confirm_s(dwell_needed)
        if place is None:
            if not confirmed:
                continue
            place = Place(
                violation_id=_new_violation_id(state, spec, zone, first_seen),
                zone_idx=cl.zone_idx,
                status="pending",
                first_seen_s=first_seen,
                bbox=cl.bbox,
                members=frozenset(m.cand_id for m in cl.members),
                object_count=len(cl.members),
                score=score,
                last_present_s=present_s,
                last_evidence_s=now_s,
                dwell_s=dwell,
            )
            place.place_key = place_key(state.camera_id, zone, spec.kind, cl.bbox, zones.frame_wh)
            place.escalation = escalation_level(state.book.count(place.place_key, now_s) + 1, rules)
            state.places.append(place)
            matched_places.add(len(state.places) - 1)
            events.append(_event(state, spec, zones, place, "sighting", now_s, evidence=True))
            continue
        place.members = frozenset(m.cand_id for m in cl.members)
        place.object_count = len(cl.members)
        if place.status == "pending":
            place.score = score
            place.dwell_s = dwell
            evidence_ok = now_s - place.last_evidence_s >= rules.evidence_min_gap_s
            if fresh and dwell >= dwell_needed and score >= rules.min_score and evidence_ok:
                count = state.book.count(place.place_key, now_s) + 1
                place.escalation = escalation_level(count, rules)
                state.book.record(place.place_key, now_s)
                place.status = "open"
                place.opened_s = place.last_update_s = place.last_evidence_s = now_s
                place.evidenced_count = place.object_count
                events.append(_event(state, spec, zones, place, "opened", now_s, evidence=True))
            elif evidence_ok and 0.0 <= now_s - (place.first_seen_s + dwell_needed) <= CONFIRM_WINDOW_S:
                # due, and only the score gate is missing (waiting out the evidence gap needs no detector)
                state.wants_detection = True
        elif confirmed and score >= rules.min_score:  # closed, within the cooldown: same violation again
            place.status = "open"
            place.closed_s = None
            place.score = score
            place.dwell_s = now_s - place.first_seen_s
            place.last_update_s = now_s
            want = now_s - place.last_evidence_s >= rules.evidence_min_gap_s
            if want:
                place.last_evidence_s = now_s
            place.evidenced_count = place.object_count
            events.append(_event(state, spec, zones, place, "opened", now_s, evidence=want))

    kept: list[Place] = []
    for pi, place in enumerate(state.places):
        if pi not in matched_places:
            if place.status == "pending" and now_s - place.last_present_s > rules.grace_s:
                continue  # never opened: its sighting is abandoned
            if place.status == "open" and now_s - place.last_present_s > rules.grace_s:
                place.status = "closed"
                place.closed_s = now_s
                place.dwell_s = place.last_present_s - place.first_seen_s
                events.append(_event(state, spec, zones, place, "closed", now_s, evidence=False))
        kept.append(place)
    state.places = kept
    return events


def rescale(state: RuleState, sx: float, sy: float) -> None:
    """The stream changed resolution but not its view: scale every remembered box by (sx, sy)."""

    def box(b: Iterable[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = b
        return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)

    for c in state.candidates:
        c.box = box(c.box)
        if c.anchor is not None:
            c.anchor = list(box(c.anchor))
        c.home = (c.home[0] * sx, c.home[1] * sy)
        c.geo_box = None
        c.samples = deque((s.scaled(sx, sy) for s in c.samples), maxlen=SAMPLES_KEPT)
    for p in state.places:
        p.bbox = box(p.bbox)
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
    state.wants_detection = any(_settling(c, now_s) for c in state.candidates)
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
    events: list[ViolationEvent] = []
    kept: list[Place] = []
    for place in state.places:
        new_idx = -1 if close_all else remap[place.zone_idx]
        if new_idx >= 0:
            place.zone_idx = new_idx
            kept.append(place)
            continue
        if place.status == "open":
            place.status = "closed"
            place.closed_s = ts_s
            place.dwell_s = max(0.0, place.last_present_s - place.first_seen_s)
            events.append(
                _event_in_zone(state, spec, old_zones[place.zone_idx], place, "closed", ts_s, False)
            )
    state.places = kept
    for cand in state.candidates:
        cand.zone_idx = remap[cand.zone_idx] if cand.zone_idx >= 0 else -1
        # Membership was computed against the old geometry: recompute it on the next frame.
        cand.geo_of = None
        cand.geo_box = None
        cand.geo_watch = ()
        cand.geo_exempt = ()
        cand.geo_version += 1
    state.cluster_cache = None
    state.assign_cache = None
    return events
