"""Exposed garbage (暴露垃圾, GB/T 0102): a ``garbage`` object persisting outside bin areas.

A bag carried by a walker moves with them and never settles; a bag *held* by someone standing
still (its box mostly inside a person's box and off the ground) does not count either, and its
dwell starts only once it has been put down. ``bin_area`` zones exempt garbage inside them, and a
``garbage`` box that is a detected ``trash_bin``'s box again is the bin itself, labelled twice.
Piles next to each other (centres within 1.5 box widths) are one place.
"""

from __future__ import annotations

import numpy as np

from vision.geometry import iou_matrix
from vision.rules.common import Annotations, RuleSpec
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind

#: Fraction of the garbage box inside a person's box for it to be "in their hands".
HELD_OVERLAP = 0.5
#: Its bottom must be this fraction of the person's height above their feet (a pile lies on the ground).
HELD_LIFT = 0.08
#: A garbage box this similar to a trash_bin box is the bin, labelled twice by the detector.
BIN_IOU = 0.5


def held_by_person(garbage: np.ndarray, persons: np.ndarray) -> np.ndarray:
    """(n, 4) garbage boxes, (m, 4) person boxes -> (n,) bool held in someone's hands.

    Example:
        >>> held_by_person(np.array([[40, 50, 50, 70.0]]), np.array([[30, 0, 60, 100.0]]))
        array([ True])
    """
    if len(garbage) == 0 or len(persons) == 0:
        return np.zeros(len(garbage), bool)
    g, p = garbage[:, None, :], persons[None, :, :]
    iw = np.clip(np.minimum(g[..., 2], p[..., 2]) - np.maximum(g[..., 0], p[..., 0]), 0, None)
    ih = np.clip(np.minimum(g[..., 3], p[..., 3]) - np.maximum(g[..., 1], p[..., 1]), 0, None)
    area = np.maximum((g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]), 1e-6)
    lifted = g[..., 3] <= p[..., 3] - HELD_LIFT * (p[..., 3] - p[..., 1])
    return ((iw * ih / area >= HELD_OVERLAP) & lifted).any(axis=1)


_PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)
_BIN = OBJECT_KINDS.index(ObjectKind.TRASH_BIN)


def is_a_bin(garbage: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """(n,) bool: the garbage box is a detected bin's box again (IoU >= BIN_IOU), i.e. the detector
    labelled one bin both ways. A pile beside a bin overlaps it far less."""
    if len(garbage) == 0 or len(bins) == 0:
        return np.zeros(len(garbage), bool)
    return (iou_matrix(garbage, bins) >= BIN_IOU).any(axis=1)


def _annotate(objs: Detections, frame: Detections) -> Annotations:
    persons = frame.xyxy[frame.class_id == _PERSON]
    bins = frame.xyxy[frame.class_id == _BIN]
    blocked = held_by_person(objs.xyxy, persons) | is_a_bin(objs.xyxy, bins)
    return Annotations(blocked=blocked, support=np.zeros(len(objs), np.float32))


SPEC = RuleSpec(
    kind=ViolationKind.EXPOSED_GARBAGE,
    object_kinds=(ObjectKind.GARBAGE,),
    merge_widths=1.5,
    annotate=_annotate,
)
