"""Per-detection context a rule template derives from the whole frame: blocked flags and partner support.

Each check is one vectorised function of boxes; ``vision.rules.templates`` composes the ones a kind asks
for (``KindSpec.not_held``, ``not_same_box_as``, ``not_around``, ``partner_classes``).
"""

from __future__ import annotations

import numpy as np

from vision.geometry import iou_matrix

#: Fraction of the garbage box inside a person's box for it to be "in their hands".
HELD_OVERLAP = 0.5
#: Its bottom must be this fraction of the person's height above their feet (a pile lies on the ground).
HELD_LIFT = 0.08
#: A box this similar to another kind's box is that object, labelled twice by the detector.
SAME_BOX_IOU = 0.5


def held_by_person(garbage: np.ndarray, persons: np.ndarray) -> np.ndarray:
    """(n, 4) object boxes, (m, 4) person boxes -> (n,) bool held in someone's hands.

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


def same_box(objs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(n,) bool: the object's box is another detection's box again (IoU >= SAME_BOX_IOU), i.e. the
    detector labelled one thing both ways (a bin as garbage). A pile beside a bin overlaps it far less."""
    if len(objs) == 0 or len(others) == 0:
        return np.zeros(len(objs), bool)
    return (iou_matrix(objs, others) >= SAME_BOX_IOU).any(axis=1)


def around(objs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(n,) bool: another detection's centre lies inside the object's box (a stall built around a grill)."""
    if len(objs) == 0 or len(others) == 0:
        return np.zeros(len(objs), bool)
    gx = (others[:, 0] + others[:, 2]) / 2
    gy = (others[:, 1] + others[:, 3]) / 2
    s = objs
    inside = (
        (gx[None, :] >= s[:, 0:1])
        & (gx[None, :] <= s[:, 2:3])
        & (gy[None, :] >= s[:, 1:2])
        & (gy[None, :] <= s[:, 3:4])
    )
    return inside.any(axis=1)


def partner_support(
    objs: np.ndarray, partners: np.ndarray, partner_score: np.ndarray, reach: float, rise: float
) -> np.ndarray:
    """(n, 4) object boxes, (m, 4) partner boxes with (m,) scores -> (n,) best nearby partner score.

    A partner counts when its box meets the object's box widened by ``reach`` widths each side and raised
    by ``rise`` heights (smoke rises above a grill; a full bin stands beside its garbage).
    """
    if len(objs) == 0 or len(partners) == 0:
        return np.zeros(len(objs), np.float32)
    w = objs[:, 2] - objs[:, 0]
    h = objs[:, 3] - objs[:, 1]
    rx1, rx2 = objs[:, 0] - reach * w, objs[:, 2] + reach * w
    ry1, ry2 = objs[:, 1] - rise * h, objs[:, 3]
    meets = (
        (partners[None, :, 0] < rx2[:, None])
        & (partners[None, :, 2] > rx1[:, None])
        & (partners[None, :, 1] < ry2[:, None])
        & (partners[None, :, 3] > ry1[:, None])
    )
    return np.where(meets, partner_score[None, :], 0.0).max(axis=1).astype(np.float32)
