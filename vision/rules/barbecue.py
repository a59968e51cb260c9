"""Open-air barbecue (露天烧烤, GB/T 0510): a ``grill`` persisting in a watched zone (60 s default).

``smoke`` near the grill (beside it or rising above it) is supporting evidence: it raises the
score, so a grill the detector is unsure of still passes the score gate when it is smoking.

An instance of the ``pair`` template with an optional partner (``vision.kinds.BUILTIN_KINDS``).
"""

from __future__ import annotations

import numpy as np

from vision.kinds import BUILTIN_KINDS
from vision.rules.context import partner_support
from vision.rules.templates import rule_spec
from vision.types import ViolationKind

#: Smoke counts when its box meets the grill box widened by one width each side and raised by
#: SMOKE_RISE heights (smoke rises).
SMOKE_RISE = BUILTIN_KINDS[ViolationKind.OPEN_AIR_BARBECUE].partner_rise


def smoke_support(grills: np.ndarray, smoke: np.ndarray, smoke_score: np.ndarray) -> np.ndarray:
    """(n, 4) grill boxes, (m, 4) smoke boxes with (m,) scores -> (n,) best nearby smoke score."""
    return partner_support(grills, smoke, smoke_score, 1.0, SMOKE_RISE)


SPEC = rule_spec(BUILTIN_KINDS[ViolationKind.OPEN_AIR_BARBECUE])
