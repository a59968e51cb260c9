"""Open-air barbecue (露天烧烤, GB/T 0510): a ``grill`` persisting in a watched zone (60 s default).

``smoke`` near the grill (beside it or rising above it) is supporting evidence: it raises the
score, so a grill the detector is unsure of still passes the score gate when it is smoking.
"""

from __future__ import annotations

import numpy as np

from vision.rules.common import Annotations, RuleSpec
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind

#: Smoke counts when its box meets the grill box widened by one width each side and raised by
#: SMOKE_RISE heights (smoke rises).
SMOKE_RISE = 3.0


def smoke_support(grills: np.ndarray, smoke: np.ndarray, smoke_score: np.ndarray) -> np.ndarray:
    """(n, 4) grill boxes, (m, 4) smoke boxes with (m,) scores -> (n,) best nearby smoke score."""
    if len(grills) == 0 or len(smoke) == 0:
        return np.zeros(len(grills), np.float32)
    w = grills[:, 2] - grills[:, 0]
    h = grills[:, 3] - grills[:, 1]
    rx1, rx2 = grills[:, 0] - w, grills[:, 2] + w
    ry1, ry2 = grills[:, 1] - SMOKE_RISE * h, grills[:, 3]
    meets = (
        (smoke[None, :, 0] < rx2[:, None])
        & (smoke[None, :, 2] > rx1[:, None])
        & (smoke[None, :, 1] < ry2[:, None])
        & (smoke[None, :, 3] > ry1[:, None])
    )
    return np.where(meets, smoke_score[None, :], 0.0).max(axis=1).astype(np.float32)


_SMOKE = OBJECT_KINDS.index(ObjectKind.SMOKE)


def _annotate(grills: Detections, frame: Detections) -> Annotations:
    smoke = frame.class_id == _SMOKE
    return Annotations(
        blocked=np.zeros(len(grills), bool),
        support=smoke_support(grills.xyxy, frame.xyxy[smoke], frame.confidence[smoke]),
    )


SPEC = RuleSpec(
    kind=ViolationKind.OPEN_AIR_BARBECUE,
    object_kinds=(ObjectKind.GRILL,),
    merge_widths=1.5,
    annotate=_annotate,
    support_weight=0.5,
)
