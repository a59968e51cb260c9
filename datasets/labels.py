"""Training labels from reviewed cases: what a reviewer's verdict says about the boxes on a frame.

``verdict_of`` reads a case's review (confirmed, rejected as a false detection, rejected as permitted),
``frame_labels`` turns one case's frame into YOLO labels (the reviewed box, pseudo-labels that agree,
hard negatives removed) and ``merge_frame_labels`` joins the labels of cases sharing one image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from urbaneye.db.models import (
    CONFIRMED_STATUSES,
    Case,
    CaseStatus,
    RejectReason,
)
from vision.geometry import box_iou
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind

CLASSES: tuple[str, ...] = tuple(str(k) for k in OBJECT_KINDS)

#: Object kind the violation box of a case stands for. Bikes are resolved per frame (bicycle or e-bike).
VIOLATION_OBJECT: dict[str, str | None] = {
    ViolationKind.STREET_VENDING: ObjectKind.VENDING_STALL,
    ViolationKind.EXPOSED_GARBAGE: ObjectKind.GARBAGE,
    ViolationKind.OPEN_AIR_BARBECUE: ObjectKind.GRILL,
    ViolationKind.BIKE_MISPARKING: None,
}
BIKE_KINDS = (str(ObjectKind.BICYCLE), str(ObjectKind.E_BIKE))

#: Rejections whose box was a real object (the rule, not the detector, was wrong): positives.
POSITIVE_REJECTIONS = {RejectReason.PERMITTED_VENDING}
#: Rejections that say the detector saw something that is not there: hard negatives.
NEGATIVE_REJECTIONS = {RejectReason.FALSE_DETECTION}


MATCH_IOU = 0.5  # a pseudo-label this close to the reviewed box is the same object
NEGATIVE_IOU = 0.3  # looser for hard negatives: any same-kind box over a rejected area goes
DUPLICATE_IOU = 0.9  # two cases' reviewed boxes this close on one image are one object


class DatasetError(ValueError):
    """The dataset cannot be built or rebuilt; the message says why and what to do."""


@dataclass(frozen=True)
class Label:
    """One box of one image: ``label`` is an ``ObjectKind`` name; ``xyxy`` pixels of that image."""

    label: str
    xyxy: tuple[float, float, float, float]
    source: str  # case | correction | pseudo | synth

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "xyxy": [round(float(v), 2) for v in self.xyxy], "source": self.source}


def _kind_name(label: str) -> str:
    """Accept an object kind, or a violation kind (mapped to its object), in a correction."""
    if label in CLASSES:
        return label
    obj = VIOLATION_OBJECT.get(label)
    if obj is not None:
        return str(obj)
    if label == ViolationKind.BIKE_MISPARKING:
        return str(ObjectKind.BICYCLE)
    raise DatasetError(f"correction label {label!r} is not an object kind; use one of {list(CLASSES)}")


@dataclass(frozen=True)
class Verdict:
    """How a reviewed case is used: ``positive``, ``negative`` or None (skipped), with a short name."""

    use: str | None
    name: str


def verdict_of(case: Case) -> Verdict:
    if case.status in CONFIRMED_STATUSES:
        return Verdict("positive", "confirmed")
    if case.status == CaseStatus.REJECTED:
        reason = case.reject_reason or RejectReason.OTHER
        if reason in NEGATIVE_REJECTIONS:
            return Verdict("negative", f"rejected:{reason}")
        if reason in POSITIVE_REJECTIONS:
            return Verdict("positive", f"rejected:{reason}")
        return Verdict(None, f"rejected:{reason}")
    return Verdict(None, str(case.status))


def frame_labels(
    case: Case,
    verdict: Verdict,
    detections: Detections | None,
    image_wh: tuple[int, int],
    pseudo_conf: float,
) -> list[Label]:
    """Labels of one clean frame of ``case``, in the frame's pixels.

    Args:
        case: the reviewed case (``kind``, ``bbox_xyxy``, ``frame_wh``, ``object_count``, ``corrections``).
        verdict: from ``verdict_of``; ``use`` must be positive or negative.
        detections: the active model on this frame (any confidence; only >= ``pseudo_conf`` become labels),
            or None for no pseudo-labels.
        image_wh: (w, h) of the decoded frame; case boxes are scaled from ``case.frame_wh`` to it.
    """
    w, h = image_wh
    fw, fh = (case.frame_wh or [w, h])[:2]
    sx, sy = w / float(fw or w), h / float(fh or h)

    def scale(box: Sequence[float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = (float(v) for v in box)
        return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)

    labels: list[Label] = []
    det_all: list[tuple[str, tuple[float, float, float, float], float]] = []
    if detections is not None and len(detections):
        for box, conf, kind in zip(detections.xyxy, detections.confidence, detections.kinds, strict=True):
            det_all.append((str(kind), tuple(float(v) for v in box), float(conf)))
        labels = [Label(k, b, "pseudo") for k, b, c in det_all if c >= pseudo_conf]

    case_box = scale(case.bbox_xyxy) if len(case.bbox_xyxy or []) == 4 else None
    obj = VIOLATION_OBJECT.get(case.kind)
    kinds = (str(obj),) if obj is not None else BIKE_KINDS
    group_box = obj is None and int(case.object_count or 1) > 1  # a box around several bikes
    if case_box is not None:
        if verdict.use == "positive":
            if group_box:
                pass  # the bikes inside are labelled individually by the pseudo-labeller
            else:
                label = str(obj) if obj is not None else _bike_kind(case_box, det_all)
                labels = [
                    lb for lb in labels if not (lb.label in kinds and box_iou(lb.xyxy, case_box) >= MATCH_IOU)
                ]
                labels.append(Label(label, case_box, "case"))
        else:
            labels = [
                lb for lb in labels if not (lb.label in kinds and _overlaps(lb.xyxy, case_box, group_box))
            ]

    case_idx = next((i for i, lb in enumerate(labels) if lb.source == "case"), None)
    for corr in case.corrections or []:
        action = corr.get("action")
        box = scale(corr["xyxy"]) if corr.get("xyxy") else None
        if action == "adjust":
            if case_idx is not None and box is not None:
                old = labels[case_idx]
                new_label = _kind_name(corr["label"]) if corr.get("label") else old.label
                labels[case_idx] = Label(new_label, box, "correction")
        elif action == "relabel":
            new_label = _kind_name(corr["label"])
            target = case_idx if box is None else _best_match(labels, box)
            if target is not None:
                labels[target] = Label(new_label, labels[target].xyxy, "correction")
        elif action == "add":
            if box is None:
                raise DatasetError(f"case {case.id}: an 'add' correction needs 'xyxy'")
            labels.append(Label(_kind_name(corr["label"]), box, "correction"))
        elif action == "remove":
            if box is None:
                raise DatasetError(f"case {case.id}: a 'remove' correction needs 'xyxy'")
            labels = [lb for lb in labels if box_iou(lb.xyxy, box) < MATCH_IOU]
            case_idx = next((i for i, lb in enumerate(labels) if lb.source in ("case",)), None)
        else:
            raise DatasetError(
                f"case {case.id}: correction action {action!r} unknown; use adjust, relabel, add or remove"
            )
    return [lb for lb in (_clip(lb, w, h) for lb in labels) if lb is not None]


def merge_frame_labels(per_case: Sequence[Sequence[Label]]) -> list[Label]:
    """Labels of one image that is the evidence of several cases: every verdict on it counts.

    ``per_case`` holds ``frame_labels`` of each case on the image (same detections, same pixels). Reviewed
    boxes (case and correction) of all cases are kept (an identical second copy is dropped); a pseudo-label
    is kept only if every case kept it (a hard negative or a correction of any case removes it) and no
    reviewed box of its kind covers it.

    Example:
        >>> a = [Label("garbage", (0, 0, 10, 10), "case"), Label("person", (20, 0, 30, 40), "pseudo")]
        >>> b = [Label("person", (20, 0, 30, 40), "pseudo")]   # b: a false detection elsewhere
        >>> [lb.label for lb in merge_frame_labels([a, b])]
        ['person', 'garbage']
    """
    if len(per_case) == 1:
        return list(per_case[0])
    reviewed: list[Label] = []
    for labels in per_case:
        for lb in labels:
            if lb.source != "pseudo" and not any(
                r.label == lb.label and box_iou(r.xyxy, lb.xyxy) >= DUPLICATE_IOU for r in reviewed
            ):
                reviewed.append(lb)
    kept_by_all = set.intersection(
        *({(lb.label, lb.xyxy) for lb in labels if lb.source == "pseudo"} for labels in per_case)
    )
    pseudo = [
        lb
        for lb in per_case[0]
        if lb.source == "pseudo"
        and (lb.label, lb.xyxy) in kept_by_all
        and not any(r.label == lb.label and box_iou(r.xyxy, lb.xyxy) >= MATCH_IOU for r in reviewed)
    ]
    return pseudo + reviewed


def _overlaps(box: Sequence[float], area: Sequence[float], group: bool) -> bool:
    if group:  # a group box: any bike whose centre lies inside was part of the false detection
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return area[0] <= cx <= area[2] and area[1] <= cy <= area[3]
    return box_iou(box, area) >= NEGATIVE_IOU


def _bike_kind(
    case_box: Sequence[float], dets: list[tuple[str, tuple[float, float, float, float], float]]
) -> str:
    best = max(
        ((box_iou(b, case_box), k) for k, b, _ in dets if k in BIKE_KINDS),
        default=(0.0, str(ObjectKind.BICYCLE)),
    )
    return best[1] if best[0] >= 0.3 else str(ObjectKind.BICYCLE)


def _best_match(labels: list[Label], box: Sequence[float]) -> int | None:
    scored = [(box_iou(lb.xyxy, box), i) for i, lb in enumerate(labels)]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= MATCH_IOU else None


def _clip(lb: Label, w: int, h: int) -> Label | None:
    x1, y1, x2, y2 = lb.xyxy
    x1, x2 = sorted((min(max(x1, 0.0), w), min(max(x2, 0.0), w)))
    y1, y2 = sorted((min(max(y1, 0.0), h), min(max(y2, 0.0), h)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return Label(lb.label, (x1, y1, x2, y2), lb.source)
