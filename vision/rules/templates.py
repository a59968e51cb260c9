"""Rule templates: a violation kind (``vision.kinds.KindSpec``) -> the ``RuleSpec`` the shared machinery runs.

Three templates, all on the same candidates -> places machinery (``vision.rules.common``):

- ``stationary_object``: an object of the kind's classes stays in a watching zone for the dwell (vending,
  exposed garbage, bike mis-parking).
- ``cluster``: the same, but a place needs ``min_count`` or more such objects together (within
  ``merge_widths`` box widths), e.g. 乱堆物料 (several piles at a frontage).
- ``pair``: an object with a partner of other classes beside it (within ``partner_reach`` widths, or up to
  ``partner_rise`` heights above): with ``partner_required`` the object counts only while the partner is
  there (垃圾桶满溢: garbage touching a bin), else the partner raises the score (露天烧烤: grill + smoke).

Options every template takes: ``not_held`` (an object in a standing person's hands does not count),
``not_same_box_as`` (a box that is another kind's box again is that object), ``not_around`` (a box around
another kind's centre is that object's: a stall built around a grill is the barbecue's).
"""

from __future__ import annotations

import numpy as np

from vision.kinds import KindSpec, KindTemplate
from vision.rules.common import Annotations, Annotator, RuleSpec
from vision.rules.context import around, held_by_person, partner_support, same_box
from vision.types import OBJECT_KINDS, UNKNOWN_OBJECT_CLASS_ID, Detections, ObjectKind, kind_of

_PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)


def _class_ids(names: list[str]) -> np.ndarray:
    return np.array([OBJECT_KINDS.index(ObjectKind(n)) for n in names], np.int32)


def annotator(kind: KindSpec) -> Annotator | None:
    """The per-frame context of a kind's objects (blocked flags, partner support), or None when it has none.

    Example:
        >>> ann = annotator(BUILTIN_KINDS[ViolationKind.EXPOSED_GARBAGE])
        >>> ann(garbage_detections, frame_detections).blocked   # (n,) held by a person, or a bin's box
    """
    same_ids = _class_ids(kind.not_same_box_as)
    around_ids = _class_ids(kind.not_around)
    partner_ids = _class_ids(kind.partner_classes)
    if not (kind.not_held or len(same_ids) or len(around_ids) or len(partner_ids)):
        return None
    required = kind.partner_required

    def annotate(objs: Detections, frame: Detections) -> Annotations:
        boxes, cls = objs.xyxy, frame.class_id
        blocked = np.zeros(len(objs), bool)
        if kind.not_held:
            blocked |= held_by_person(boxes, frame.xyxy[cls == _PERSON])
        if len(same_ids):  # the detector labelling one object twice; a static region is no label
            blocked |= same_box(boxes, frame.xyxy[np.isin(cls, same_ids)]) & (
                objs.class_id != UNKNOWN_OBJECT_CLASS_ID
            )
        if len(around_ids):
            blocked |= around(boxes, frame.xyxy[np.isin(cls, around_ids)])
        support = np.zeros(len(objs), np.float32)
        if len(partner_ids):
            near = np.isin(cls, partner_ids)
            partners, scores = frame.xyxy[near], frame.confidence[near]
            if required:  # no partner beside it: this is not the kind's violation (yet)
                blocked |= partner_support(boxes, partners, np.ones(len(partners)), *_reach(kind)) <= 0
            else:
                support = partner_support(boxes, partners, scores, *_reach(kind))
        return Annotations(blocked=blocked, support=support)

    return annotate


def _reach(kind: KindSpec) -> tuple[float, float]:
    return kind.partner_reach, kind.partner_rise


def rule_spec(kind: KindSpec) -> RuleSpec:
    """The ``RuleSpec`` of a kind: its classes, clustering, context and score support.

    Example:
        >>> spec = rule_spec(kind_catalogue(cameras_file)["goods_display"])
        >>> Rule(spec).step(state, detections, zones, now_s=12.0)
    """
    supported = kind.template is KindTemplate.PAIR and not kind.partner_required
    return RuleSpec(
        kind=kind_of(kind.id),
        object_kinds=tuple(ObjectKind(c) for c in kind.classes),
        merge_widths=kind.merge_widths,
        annotate=annotator(kind),
        support_weight=kind.support_weight if supported else 0.0,
        min_count=kind.min_count,
        definition=kind,
    )
