"""Layer 1 of a rule: candidates, individual objects of the rule's kinds followed through detector noise.

A settled object is matched to detections by position against where it settled (IoU / centre
distance; a tracker id only breaks ties), so tracker ID switches, ids carried over to another object,
stray boxes and untracked streams do not move or lose it; a moving one may also follow its tracker id.
Each candidate judges stationarity over a time window (medians, so a 1-3 frame false box or a jittery
box does not count as movement); a *stationary episode* starts when it settles (back-dated to the first
settled observation) and ends when it has moved for ``MOVE_RESET_S``. Settling somewhere else (a bike
moved and re-parked) starts a new episode. Missed frames and occlusions shorter than ``rules.grace_s``
keep the candidate and its dwell. Two candidates settled on one object merge. Dwell counts only while
the object is eligible: in a watching zone in force, outside exemptions in force, not blocked (held by
a person, part of a grill stall) for ``HELD_MIN_S`` or more.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from vision.config import RulesConfig
from vision.geometry import box_diag, box_iou, centre_dist, iou_matrix, scale_box
from vision.types import STILL_S_KEY, UNKNOWN_OBJECT_CLASS_ID, Detections
from vision.zones import ZoneFrame

if TYPE_CHECKING:  # annotations only: common imports this module
    from vision.rules.common import RuleSpec, RuleState

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
#: Recent observations looked at for "blocked" (garbage held by a person) and supporting evidence.
CONTEXT_WINDOW = 10
BLOCKED_FRACTION = 0.3  # of recent observations; the other object (bin, person) is missed too
#: Blocked only counts once it has lasted this long (brief overlaps are passers-by, not holders).
HELD_MIN_S = 10.0
#: Zone membership of a settled object is recomputed only when its anchor box moved this much.
GEO_SLACK_PX = 2.0


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
        return self._replace(
            cx=self.cx * sx,
            cy=self.cy * sy,
            diag=self.diag * math.sqrt(sx * sy),
            x1=self.x1 * sx,
            y1=self.y1 * sy,
            x2=self.x2 * sx,
            y2=self.y2 * sy,
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
    # one every SAMPLE_MIN_GAP_S at most, for stationarity
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    scores: deque[float] = field(default_factory=deque)
    blocked: deque[bool] = field(default_factory=lambda: deque(maxlen=CONTEXT_WINDOW))
    support: deque[float] = field(default_factory=lambda: deque(maxlen=CONTEXT_WINDOW))
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
    #: an unknown_object region is first seen once the static-object detector has watched it stay still this
    #: long: its first stationary episode is back-dated by as much (dwell counts from when it was left)
    still_before_s: float = 0.0

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

    def score(self, support_weight: float) -> float:
        """Median of recent detector scores, raised by mean support: 1 - (1 - s)(1 - w * support)."""
        s = median(self.scores) if self.scores else 0.0
        if support_weight and self.support:
            s = 1.0 - (1.0 - s) * (1.0 - support_weight * (sum(self.support) / len(self.support)))
        return s


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


def settling(c: Candidate, now_s: float) -> bool:
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
    c.dwell_start_s = first.ts_s - (c.still_before_s if first.ts_s == c.first_seen_s else 0.0)
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
    _follow_episode(c, box, now_s, rules.stationary_max_shift)


def _follow_episode(c: Candidate, box: tuple[float, ...], now_s: float, max_shift: float) -> None:
    """After a new sample: start, move (re-parked), extend or end the stationary episode."""
    still = _judge_still(c, max_shift)
    if still is None:
        return
    if still:
        if c.dwell_start_s is None:
            _start_episode(c, max_shift)
        else:
            assert c.anchor is not None
            acx, acy = c.home
            window = [s for s in c.samples if s.ts_s >= now_s - STILL_WINDOW_S]
            mcx, mcy = median(s.cx for s in window), median(s.cy for s in window)
            if math.hypot(mcx - acx, mcy - acy) > max_shift * box_diag(tuple(c.anchor)):
                _start_episode(c, max_shift)  # settled somewhere else: re-parked
            else:
                # running mean, capped so the anchor follows a stall that slowly grows its awning
                c.anchor_n = min(c.anchor_n + 1, 50)
                k = 1.0 / c.anchor_n
                c.anchor = [a + (b - a) * k for a, b in zip(c.anchor, box, strict=True)]
        c.last_still_s = now_s
    elif c.dwell_start_s is not None and now_s - c.last_still_s >= MOVE_RESET_S:
        _end_episode(c)


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
        if c.class_id == UNKNOWN_OBJECT_CLASS_ID:  # raised from an unknown object only where the zone says so
            watch &= zones.watching_unknown(spec.kind)
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
            _take_label(old, new.class_id)
            old.last_seen_s = max(old.last_seen_s, new.last_seen_s)
            old.box = new.box
            new.merged_into = old.cand_id
            return


def _take_label(c: Candidate, class_id: int) -> None:
    """The model's label wins over the static-object detector's unknown_object for the same object."""
    if c.class_id == UNKNOWN_OBJECT_CLASS_ID and class_id != UNKNOWN_OBJECT_CLASS_ID:
        c.class_id = class_id
        c.geo_of = None  # its zone membership follows its kind's anchor


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
        mine = zones.rule_rows(detections, spec.kind, spec.class_ids)
        if mine.any():
            objs = detections[mine]
    if objs is not None:
        ann = spec.annotate(objs, detections) if spec.annotate else None
        boxes = objs.xyxy.tolist()
        assign = _match(state.candidates, objs, boxes)
        tids = None if objs.tracker_id is None else objs.tracker_id.tolist()
        # an unknown_object region is the static-object detector's own observation of this frame, new even
        # when the model's detections are carried
        observed = ((objs.class_id == UNKNOWN_OBJECT_CLASS_ID) | fresh).tolist()
        still = objs.data.get(STILL_S_KEY)  # present on frames with unknown regions
        for i in range(len(objs)):
            box = tuple(boxes[i])
            tid = None if tids is None else tids[i]
            blocked = bool(ann.blocked[i]) if ann is not None else False
            support = float(ann.support[i]) if ann is not None else 0.0
            if assign[i] >= 0:
                c = state.candidates[assign[i]]
                _take_label(c, int(objs.class_id[i]))
            else:
                c = Candidate(state.next_cand_id, int(objs.class_id[i]), now_s, now_s, box, tid)  # type: ignore[arg-type]
                if still is not None:
                    c.still_before_s = float(still[i])
                state.next_cand_id += 1
                state.candidates.append(c)
            settled_before = c.dwell_start_s
            _observe(
                c,
                box,
                float(objs.confidence[i]),
                tid,
                blocked,
                support,
                now_s,
                state.frame,
                rules,
                observed[i],
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


def remap_candidates(candidates: list[Candidate], remap: list[int]) -> None:
    """Re-index zone membership for a new zone set (``remap[old_idx] -> new_idx`` or -1).

    Candidates keep their stationarity; membership was computed against the old geometry, so it is
    recomputed on the next frame.
    """
    for cand in candidates:
        cand.zone_idx = remap[cand.zone_idx] if cand.zone_idx >= 0 else -1
        cand.geo_of = None
        cand.geo_box = None
        cand.geo_watch = ()
        cand.geo_exempt = ()
        cand.geo_version += 1


def rescale_candidates(candidates: list[Candidate], sx: float, sy: float) -> None:
    """The stream changed resolution but not its view: scale every remembered box by ``(sx, sy)``."""
    for c in candidates:
        c.box = scale_box(c.box, sx, sy)
        if c.anchor is not None:
            c.anchor = list(scale_box(c.anchor, sx, sy))
        c.home = (c.home[0] * sx, c.home[1] * sy)
        c.geo_box = None
        c.samples = deque((s.scaled(sx, sy) for s in c.samples), maxlen=SAMPLES_KEPT)
