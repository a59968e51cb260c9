"""Training labels from reviewed cases: what a reviewer's verdict says about the boxes on a frame.

``verdict_of`` reads a case's review (confirmed, rejected as a false detection, rejected as permitted),
``review_cases`` reads each used case once (its kind's object classes, its corrections parsed; a correction
that cannot be used is skipped and reported), ``frame_labels`` turns one case's frame into YOLO labels (the
reviewed box, pseudo-labels that agree, hard negatives removed) and ``merge_frame_labels`` joins the labels
of cases sharing one image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from urbaneye.db.models import (
    CONFIRMED_STATUSES,
    Case,
    CaseStatus,
    RejectReason,
)
from vision.config import ConfigError, load_cameras
from vision.geometry import box_iou
from vision.kinds import BUILTIN_KINDS, Catalogue, KindTemplate, kind_catalogue
from vision.types import OBJECT_KINDS, Detections

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = tuple(str(k) for k in OBJECT_KINDS)

#: Rejections whose box was a real object (the rule, not the detector, was wrong): positives.
POSITIVE_REJECTIONS = {RejectReason.PERMITTED_VENDING}
#: Rejections that say the detector saw something that is not there: hard negatives.
NEGATIVE_REJECTIONS = {RejectReason.FALSE_DETECTION}


MATCH_IOU = 0.5  # a pseudo-label this close to the reviewed box is the same object
NEGATIVE_IOU = 0.3  # looser for hard negatives: any same-kind box over a rejected area goes
DUPLICATE_IOU = 0.9  # two cases' reviewed boxes this close on one image are one object
KIND_IOU = 0.3  # a detection this close to a box of a several-class kind says which class it is

Box = tuple[float, float, float, float]


class DatasetError(ValueError):
    """The dataset cannot be built or rebuilt; the message says why and what to do."""


@dataclass(frozen=True)
class Label:
    """One box of one image: ``label`` is an ``ObjectKind`` name; ``xyxy`` pixels of that image."""

    label: str
    xyxy: Box
    source: str  # case | correction | pseudo | synth

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "xyxy": [round(float(v), 2) for v in self.xyxy], "source": self.source}


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


# ------------------------------------------------------------------------------------ kinds -> objects


@dataclass(frozen=True)
class KindObjects:
    """The object classes a violation kind's box shows. ``group``: a case box of several objects (a cluster
    kind, or bikes) is a box around them, each labelled by the pseudo-labeller, not one object."""

    classes: tuple[str, ...]
    group: bool = False


def load_catalogue(cameras_file: Path | None) -> Catalogue:
    """The built-in kinds plus the ``violations:`` of ``cameras_file`` (built-ins only without one)."""
    if cameras_file is None:
        return {str(k): spec for k, spec in BUILTIN_KINDS.items()}
    try:
        return kind_catalogue(load_cameras(cameras_file))
    except ConfigError as exc:
        raise DatasetError(
            f"cameras file {cameras_file} cannot be read for its violation kinds ({exc}); fix it or pass "
            "another one"
        ) from None


def kind_objects(catalogue: Catalogue, stored: Iterable[StoredCorrection] = ()) -> dict[str, KindObjects]:
    """``kind id -> KindObjects`` of the catalogue, plus kinds only the case rows know: a reviewer's
    classification (a correction with ``kind`` and ``label``) says which object class such a kind is."""
    out = {
        kid: KindObjects(tuple(spec.classes), spec.template is KindTemplate.CLUSTER or len(spec.classes) > 1)
        for kid, spec in catalogue.items()
    }
    carried: dict[str, list[str]] = {}
    for corr in stored:
        if corr.kind and corr.label in CLASSES and corr.kind not in out:
            labels = carried.setdefault(corr.kind, [])
            labels += [corr.label] if corr.label not in labels else []
    out.update((kid, KindObjects(tuple(labels), len(labels) > 1)) for kid, labels in carried.items())
    return out


# ------------------------------------------------------------------------------------------- corrections


class CorrectionAction(StrEnum):
    ADJUST = "adjust"  # the case's box moved (the review UI's "move", a classification's box)
    RELABEL = "relabel"
    ADD = "add"
    REMOVE = "remove"


class StoredCorrection(BaseModel):
    """A correction as stored on ``Case.corrections``: the review API's shape (``api.schemas.cases.
    CorrectionIn``: ``action`` relabel|add|remove|move, ``bbox_xyxy``, ``label``, ``kind``, ``seq``) or a
    classification's (``urbaneye.cases.classify``: ``adjust`` with ``xyxy``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["adjust", "move", "relabel", "add", "remove"]
    bbox_xyxy: tuple[float, float, float, float] | None = None
    xyxy: tuple[float, float, float, float] | None = None
    label: str | None = None
    kind: str | None = None
    seq: int | None = None  # the evidence frame the box was drawn on (older rows: none)


@dataclass(frozen=True)
class Correction:
    """One reviewer correction, parsed: ``xyxy`` pixels of the case's ``frame_wh`` (None: the case's box, for
    relabel); ``classes`` the object classes the box shows (several: a kind's, the detection decides; empty:
    keep the label)."""

    action: CorrectionAction
    xyxy: Box | None
    classes: tuple[str, ...]
    #: the evidence frame it was drawn on: an ``add``, ``remove`` or boxed ``relabel`` names an object of
    #: that frame only; the case's own box (``adjust``, boxless ``relabel``) spans the case's frames
    seq: int | None = None

    def applies_to(self, seqs: frozenset[int] | None) -> bool:
        """Whether it labels a frame that is the case's evidence frame(s) ``seqs`` (None: any frame)."""
        if seqs is None or self.seq is None or self.action is CorrectionAction.ADJUST:
            return True
        if self.action is CorrectionAction.RELABEL and self.xyxy is None:
            return True
        return self.seq in seqs


@dataclass(frozen=True)
class ReviewedCase:
    """A used case read once: its verdict, its kind's objects (None: kind unknown, the box is not labelled)
    and its usable corrections, in order."""

    case: Case
    verdict: Verdict
    objects: KindObjects | None
    corrections: tuple[Correction, ...]


@dataclass
class LabelIssues:
    """What of the reviews could not become labels: skipped corrections, and cases of an unknown kind."""

    skipped_corrections: list[str] = field(default_factory=list)  # "case <id> correction #n (action): why"
    unknown_kinds: dict[str, list[str]] = field(default_factory=dict)  # kind -> case ids

    def skip(self, case_id: str, n: int, action: object, exc: ValueError) -> None:
        why = (
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'correction'}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        self.skipped_corrections.append(f"case {case_id} correction #{n} ({action}): {why}")

    def log(self) -> None:
        for line in self.skipped_corrections:
            log.warning("dataset build: %s (skipped)", line)
        for kind, ids in self.unknown_kinds.items():
            log.warning(
                "dataset build: kind %r is not in the catalogue; %d case box(es) unlabelled", kind, len(ids)
            )

    def to_json(self) -> dict[str, Any]:
        return {"skipped_corrections": self.skipped_corrections, "unknown_kinds": self.unknown_kinds}


def review_cases(
    used: Sequence[tuple[Case, Verdict]], catalogue: Catalogue
) -> tuple[dict[str, ReviewedCase], LabelIssues]:
    """``{case id: ReviewedCase}`` of the used cases (corrections read once, in order) and what of them could
    not be used: one bad correction is skipped and reported, it never fails the build."""
    issues = LabelIssues()
    stored: dict[str, list[tuple[int, StoredCorrection]]] = {}
    for case, _ in used:
        rows = stored.setdefault(case.id, [])
        for n, raw in enumerate(case.corrections or [], 1):
            try:
                rows.append((n, StoredCorrection.model_validate(raw)))
            except ValidationError as exc:
                issues.skip(case.id, n, raw.get("action") if isinstance(raw, dict) else None, exc)
    kinds = kind_objects(catalogue, (s for rows in stored.values() for _, s in rows))
    out: dict[str, ReviewedCase] = {}
    for case, verdict in used:
        objects = kinds.get(case.kind)
        if objects is None:
            issues.unknown_kinds.setdefault(case.kind, []).append(case.id)
        corrections: list[Correction] = []
        for n, s in stored[case.id]:
            try:
                corrections.append(parse_correction(s, kinds))
            except ValueError as exc:
                issues.skip(case.id, n, s.action, exc)
        out[case.id] = ReviewedCase(case, verdict, objects, tuple(corrections))
    return out, issues


def parse_correction(stored: StoredCorrection, kinds: dict[str, KindObjects]) -> Correction:
    """A stored correction as a ``Correction``; ``ValueError`` says why it cannot be used.

    Example:
        >>> raw = {"action": "add", "bbox_xyxy": [0, 0, 9, 9], "label": "smoke"}
        >>> parse_correction(StoredCorrection.model_validate(raw), {})
        Correction(action=<CorrectionAction.ADD: 'add'>, xyxy=(0.0, 0.0, 9.0, 9.0), classes=('smoke',), seq=None)
    """
    if stored.bbox_xyxy is not None and stored.xyxy is not None and stored.bbox_xyxy != stored.xyxy:
        raise ValueError(
            f"two different boxes, bbox_xyxy {list(stored.bbox_xyxy)} and xyxy {list(stored.xyxy)}"
        )
    box = stored.bbox_xyxy or stored.xyxy
    if box is not None:
        x1, y1, x2, y2 = box
        if not all(math.isfinite(v) for v in box) or not (x2 > x1 and y2 > y1):
            raise ValueError(f"box {list(box)} is not x1 < x2, y1 < y2 pixels")
    action = CorrectionAction.ADJUST if stored.action == "move" else CorrectionAction(stored.action)
    if box is None and action is not CorrectionAction.RELABEL:
        raise ValueError(f"a '{stored.action}' correction needs bbox_xyxy")
    classes = _classes_of(stored, kinds)
    if not classes and action in (CorrectionAction.RELABEL, CorrectionAction.ADD):
        raise ValueError(f"a '{stored.action}' correction needs a label or kind")
    return Correction(action, box, classes, stored.seq)


def _classes_of(stored: StoredCorrection, kinds: dict[str, KindObjects]) -> tuple[str, ...]:
    """The object class(es) a correction names: its ``label`` (an object kind; older rows: a violation
    kind), else its ``kind``'s classes."""
    name = stored.label or stored.kind
    if name is None:
        return ()
    if name in CLASSES:
        return (name,)
    if name in kinds and kinds[name].classes:
        return kinds[name].classes
    raise ValueError(f"label {name!r} is neither an object kind ({', '.join(CLASSES)}) nor a known kind")


# ------------------------------------------------------------------------------------------------ frames


def frame_labels(
    reviewed: ReviewedCase,
    detections: Detections | None,
    image_wh: tuple[int, int],
    pseudo_conf: float,
    seqs: frozenset[int] | None = None,
) -> list[Label]:
    """Labels of one clean frame of a reviewed case, in the frame's pixels.

    Args:
        reviewed: from ``review_cases`` (the case's ``bbox_xyxy``, ``frame_wh``, ``object_count``; its
            verdict, kind objects and corrections). The verdict's ``use`` is positive or negative.
        detections: the active model on this frame (any confidence; only >= ``pseudo_conf`` become labels),
            or None for no pseudo-labels.
        image_wh: (w, h) of the decoded frame; case boxes are scaled from ``case.frame_wh`` to it.
        seqs: which of the case's evidence frames this image is (one image can be two: first sighting and
            dwell crossing); a correction drawn on another frame does not label it (``Correction.applies_to``).
            None: every correction applies.
    """
    case, objects = reviewed.case, reviewed.objects
    w, h = image_wh
    fw, fh = (case.frame_wh or [w, h])[:2]
    sx, sy = w / float(fw or w), h / float(fh or h)

    def scale(box: Sequence[float]) -> Box:
        x1, y1, x2, y2 = (float(v) for v in box)
        return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)

    labels: list[Label] = []
    det_all: list[tuple[str, Box, float]] = []
    if detections is not None and len(detections):
        for box, conf, kind in zip(detections.xyxy, detections.confidence, detections.kinds, strict=True):
            det_all.append((str(kind), tuple(float(v) for v in box), float(conf)))
        labels = [Label(k, b, "pseudo") for k, b, c in det_all if c >= pseudo_conf]

    case_box = scale(case.bbox_xyxy) if len(case.bbox_xyxy or []) == 4 else None
    if case_box is not None and objects is not None:
        kinds = objects.classes
        group_box = objects.group and int(case.object_count or 1) > 1  # a box around several objects
        if reviewed.verdict.use != "positive":
            labels = [
                lb for lb in labels if not (lb.label in kinds and _overlaps(lb.xyxy, case_box, group_box))
            ]
        elif not group_box:  # (a group's objects are labelled one by one by the pseudo-labeller)
            label = object_label(kinds, case_box, det_all)
            labels = [
                lb for lb in labels if not (lb.label in kinds and box_iou(lb.xyxy, case_box) >= MATCH_IOU)
            ]
            labels.append(Label(label, case_box, "case"))

    case_idx = next((i for i, lb in enumerate(labels) if lb.source == "case"), None)
    for corr in reviewed.corrections:
        if not corr.applies_to(seqs):
            continue
        box = scale(corr.xyxy) if corr.xyxy is not None else None
        if corr.action is CorrectionAction.ADJUST and box is not None:
            if case_idx is not None:
                old = labels[case_idx].label
                labels[case_idx] = Label(object_label(corr.classes, box, det_all, old), box, "correction")
            elif reviewed.verdict.use == "positive" and corr.classes:  # a kind only the correction names
                labels.append(Label(object_label(corr.classes, box, det_all), box, "correction"))
                case_idx = len(labels) - 1
        elif corr.action is CorrectionAction.RELABEL:
            target = case_idx if box is None else _best_match(labels, box)
            if target is not None:
                at = labels[target].xyxy
                labels[target] = Label(object_label(corr.classes, at, det_all), at, "correction")
        elif corr.action is CorrectionAction.ADD and box is not None:
            labels.append(Label(object_label(corr.classes, box, det_all), box, "correction"))
        elif corr.action is CorrectionAction.REMOVE and box is not None:
            labels = [lb for lb in labels if box_iou(lb.xyxy, box) < MATCH_IOU]
            case_idx = next((i for i, lb in enumerate(labels) if lb.source == "case"), None)
    return [lb for lb in (_clip(lb, w, h) for lb in labels) if lb is not None]


def object_label(
    classes: Sequence[str],
    box: Sequence[float],
    dets: Sequence[tuple[str, Box, float]],
    keep: str | None = None,
) -> str:
    """The object class of ``box``: the only one of ``classes``, or of several (bikes: bicycle or e_bike) the
    class of the detection overlapping it best (IoU >= 0.3), else the first; no classes: ``keep``.

    Example:
        >>> object_label(("bicycle", "e_bike"), (0, 0, 10, 10), [("e_bike", (0, 0, 10, 9), 0.4)])
        'e_bike'
    """
    if not classes:
        assert keep is not None, "a correction without classes only adjusts an existing label"
        return keep
    best = max(((box_iou(b, box), k) for k, b, _ in dets if k in classes), default=(0.0, classes[0]))
    return best[1] if best[0] >= KIND_IOU else classes[0]


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
