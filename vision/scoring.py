"""Score violation events against scenario ground truth: precision, recall, delay, false alarms.

An event is one *violation* (its first ``opened`` line; a re-open of the same ``violation_id`` is
the same violation). It matches a truth violation of the same camera and kind when it opened while
the truth violation was there (``start_s - TIME_SLACK_S <= ts_s <= end_s + TIME_SLACK_S``) and its
box overlaps the truth box (IoU >= ``MIN_IOU``; low, because a cluster's box is the union of its
bikes). Matching is one-to-one, best IoU first: a second violation for the same truth is a false
alarm, as a reviewer would see it.

Truth file (written by the scenario renderer)::

    {"scenario", "camera_id", "duration_s", "fps", "frame_wh", "must_not_alert",
     "violations": [{"kind", "zone_id", "start_s", "end_s", "dwell_s", "bbox_xyxy"}]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from vision.geometry import box_iou
from vision.jsonl import JsonlError, read_jsonl

MIN_IOU = 0.1
TIME_SLACK_S = 5.0


class ScoringInputError(ValueError):
    """A truth or events file that cannot be scored, with a message naming the item and the fix."""


@dataclass(frozen=True)
class TruthViolation:
    camera_id: str
    kind: str
    zone_id: str
    start_s: float
    end_s: float
    dwell_s: float
    bbox_xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class Truth:
    scenario: str
    camera_id: str
    duration_s: float
    must_not_alert: bool
    violations: tuple[TruthViolation, ...]
    origin: str = ""


@dataclass(frozen=True)
class OpenedEvent:
    violation_id: str
    camera_id: str
    kind: str
    ts_s: float
    bbox_xyxy: tuple[float, float, float, float]


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    median_delay_s: float | None
    false_alarms_per_hour: float
    true_positives: int
    false_positives: int
    false_negatives: int
    events: int
    truths: int
    hours: float
    must_not_alert_events: int
    median_delay_over_dwell_s: float | None
    ignored_events: int
    per_kind: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "matches"}
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def _box(value: Any, where: str) -> tuple[float, float, float, float]:
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4:
        raise ScoringInputError(f"{where}: bbox_xyxy must be [x1, y1, x2, y2] pixels, got {value!r}")
    return box  # type: ignore[return-value]


def parse_truth(raw: Mapping[str, Any], origin: str = "truth") -> Truth:
    """Validate one truth document."""
    if not isinstance(raw, Mapping):
        raise ScoringInputError(f"{origin}: top level must be an object with camera_id and violations")
    for key in ("camera_id", "duration_s", "violations"):
        if key not in raw:
            raise ScoringInputError(f"{origin}: missing '{key}'; truth files come from the scenario renderer")
    camera_id = str(raw["camera_id"])
    violations = []
    for i, v in enumerate(raw["violations"] or []):
        where = f"{origin}: violations[{i}]"
        try:
            violations.append(
                TruthViolation(
                    camera_id=camera_id,
                    kind=str(v["kind"]),
                    zone_id=str(v.get("zone_id", "")),
                    start_s=float(v["start_s"]),
                    end_s=float(v["end_s"]),
                    dwell_s=float(v.get("dwell_s", 0.0)),
                    bbox_xyxy=_box(v["bbox_xyxy"], where),
                )
            )
        except KeyError as exc:
            raise ScoringInputError(
                f"{where}: missing {exc}; each needs kind, start_s, end_s, bbox_xyxy"
            ) from None
        except (TypeError, ValueError) as exc:
            raise ScoringInputError(f"{where}: {exc}") from None
    return Truth(
        scenario=str(raw.get("scenario", "")),
        camera_id=camera_id,
        duration_s=float(raw["duration_s"]),
        must_not_alert=bool(raw.get("must_not_alert", False)),
        violations=tuple(violations),
        origin=origin,
    )


def load_truth(path: str | Path) -> Truth:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScoringInputError(
            f"cannot read truth file {path}: {exc.strerror}; pass the scenario's truth JSON"
        ) from None
    except json.JSONDecodeError as exc:
        raise ScoringInputError(f"truth file {path} is not valid JSON: {exc}") from None
    return parse_truth(raw, origin=str(path))


def opened_events(lines: Iterable[Mapping[str, Any]], origin: str = "events") -> list[OpenedEvent]:
    """The first ``opened`` of each violation, from event dicts (``ViolationEvent.to_json``)."""
    seen: set[str] = set()
    out = []
    for n, e in enumerate(lines, 1):
        if e.get("event") != "opened":
            continue
        vid = str(e.get("violation_id", ""))
        if vid in seen:
            continue  # re-opened within the cooldown: the same violation
        seen.add(vid)
        try:
            out.append(
                OpenedEvent(
                    violation_id=vid,
                    camera_id=str(e["camera_id"]),
                    kind=str(e["kind"]),
                    ts_s=float(e["ts_s"]),
                    bbox_xyxy=_box(e["bbox_xyxy"], f"{origin} line {n}"),
                )
            )
        except KeyError as exc:
            raise ScoringInputError(f"{origin} line {n}: missing {exc}; use rules-replay output") from None
    return out


def load_events(path: str | Path) -> list[OpenedEvent]:
    """The opened events of a ``rules-replay`` output file (one event object per line)."""
    lines = []
    try:
        for n, obj in read_jsonl(path, what="events", hint="run rules-replay first"):
            if not isinstance(obj, dict):
                raise ScoringInputError(f"{path} line {n}: expected a JSON object per line")
            lines.append(obj)
    except JsonlError as exc:
        raise ScoringInputError(str(exc)) from None
    return opened_events(lines, origin=str(path))


def score_events(events: Sequence[OpenedEvent], truths: Sequence[Truth]) -> Score:
    """Match opened violations to truth violations and compute the headline numbers.

    Precision is 1.0 when there are no events and recall 1.0 when there is no truth (nothing was
    wrong / nothing was missed); ``median_delay_s`` is None without matches.
    """
    by_camera = _truth_by_camera(truths)
    scored = [e for e in events if e.camera_id in by_camera]
    ignored = len(events) - len(scored)
    truth_list = [v for t in truths for v in t.violations]
    matches, t_used = _match_events(scored, truth_list)
    tp = len(matches)
    fp = len(scored) - tp
    fn = len(truth_list) - len(t_used)
    precision = tp / len(scored) if scored else 1.0
    recall = tp / len(truth_list) if truth_list else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    hours = sum(t.duration_s for t in truths) / 3600
    delays = [m["delay_s"] for m in matches]
    quiet = {t.camera_id for t in truths if t.must_not_alert}
    return Score(
        precision=precision,
        recall=recall,
        f1=f1,
        median_delay_s=median(delays) if delays else None,
        false_alarms_per_hour=fp / hours if hours > 0 else float(fp),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        events=len(scored),
        truths=len(truth_list),
        hours=hours,
        must_not_alert_events=sum(1 for e in scored if e.camera_id in quiet),
        median_delay_over_dwell_s=median(m["delay_s"] - m["dwell_s"] for m in matches) if matches else None,
        ignored_events=ignored,
        per_kind=_per_kind(scored, truth_list, matches),
        matches=matches,
    )


def _truth_by_camera(truths: Sequence[Truth]) -> dict[str, Truth]:
    by_camera: dict[str, Truth] = {}
    for t in truths:
        if t.camera_id in by_camera:
            raise ScoringInputError(
                f"truth files {by_camera[t.camera_id].origin} and {t.origin} both describe camera "
                f"'{t.camera_id}'; give each scenario its own camera id or score them separately"
            )
        by_camera[t.camera_id] = t
    return by_camera


def _match_events(
    scored: Sequence[OpenedEvent], truth_list: Sequence[TruthViolation]
) -> tuple[list[dict[str, Any]], set[int]]:
    """Greedy one-to-one matching, best IoU first (then earliest): the matches and the truth indexes used."""
    pairs = []
    for ei, e in enumerate(scored):
        for ti, v in enumerate(truth_list):
            if v.camera_id != e.camera_id or v.kind != e.kind:
                continue
            if not (v.start_s - TIME_SLACK_S <= e.ts_s <= v.end_s + TIME_SLACK_S):
                continue
            iou = box_iou(e.bbox_xyxy, v.bbox_xyxy)
            if iou >= MIN_IOU:
                pairs.append((-iou, e.ts_s, ei, ti))
    pairs.sort()
    e_used: set[int] = set()
    t_used: set[int] = set()
    matches = []
    for neg_iou, _, ei, ti in pairs:
        if ei in e_used or ti in t_used:
            continue
        e_used.add(ei)
        t_used.add(ti)
        e, v = scored[ei], truth_list[ti]
        matches.append(
            {
                "violation_id": e.violation_id,
                "camera_id": e.camera_id,
                "kind": e.kind,
                "iou": round(-neg_iou, 3),
                "delay_s": e.ts_s - v.start_s,
                "dwell_s": v.dwell_s,
            }
        )
    return matches, t_used


def _per_kind(
    scored: Sequence[OpenedEvent], truth_list: Sequence[TruthViolation], matches: list[dict[str, Any]]
) -> dict[str, dict[str, float | int | None]]:
    per_kind: dict[str, dict[str, float | int | None]] = {}
    kinds = sorted({e.kind for e in scored} | {v.kind for v in truth_list})
    for kind in kinds:
        k_tp = sum(1 for m in matches if m["kind"] == kind)
        k_ev = sum(1 for e in scored if e.kind == kind)
        k_truth = sum(1 for v in truth_list if v.kind == kind)
        k_delays = [m["delay_s"] for m in matches if m["kind"] == kind]
        per_kind[kind] = {
            "precision": round(k_tp / k_ev, 4) if k_ev else 1.0,
            "recall": round(k_tp / k_truth, 4) if k_truth else 1.0,
            "events": k_ev,
            "truths": k_truth,
            "median_delay_s": round(median(k_delays), 2) if k_delays else None,
        }
    return per_kind
