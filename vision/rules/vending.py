"""Street vending (占道经营): a ``vending_stall`` stationary in a zone watching ``street_vending``.

Dwell comes from the zone (180 s main road, 300 s secondary, 600 s lane); an ``allowed_vending``
zone (便民摊区 / 夜市) exempts stalls inside it while its schedule is in force. GB/T code 0501
(游商), or 0504 (店外经营) for a zone with a ``frontage_id`` or a ``gbt_code`` override.

A stall built around a grill is reported once, as open-air barbecue (the more specific code), not
also as vending: reviewers should get one case per incident.
"""

from __future__ import annotations

import numpy as np

from vision.rules.common import Annotations, RuleSpec
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind

_GRILL = OBJECT_KINDS.index(ObjectKind.GRILL)


def _annotate(stalls: Detections, frame: Detections) -> Annotations:
    blocked = np.zeros(len(stalls), bool)
    grills = frame.xyxy[frame.class_id == _GRILL]
    if len(grills):
        gx = (grills[:, 0] + grills[:, 2]) / 2
        gy = (grills[:, 1] + grills[:, 3]) / 2
        s = stalls.xyxy
        inside = (
            (gx[None, :] >= s[:, 0:1])
            & (gx[None, :] <= s[:, 2:3])
            & (gy[None, :] >= s[:, 1:2])
            & (gy[None, :] <= s[:, 3:4])
        )
        blocked = inside.any(axis=1)
    return Annotations(blocked=blocked, support=np.zeros(len(stalls), np.float32))


SPEC = RuleSpec(
    kind=ViolationKind.STREET_VENDING,
    object_kinds=(ObjectKind.VENDING_STALL,),
    merge_widths=0.0,  # neighbouring stalls are separate offences; a split detection overlaps itself
    annotate=_annotate,
)
