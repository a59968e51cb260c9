"""Street vending (占道经营): a ``vending_stall`` stationary in a zone watching ``street_vending``.

Dwell comes from the zone (180 s main road, 300 s secondary, 600 s lane); an ``allowed_vending``
zone (便民摊区 / 夜市) exempts stalls inside it while its schedule is in force. GB/T code 0501
(游商), or 0504 (店外经营) for a zone with a ``frontage_id`` or a ``gbt_code`` override.

A stall built around a grill is reported once, as open-air barbecue (the more specific code), not
also as vending: reviewers should get one case per incident (``not_around: [grill]``).

An instance of the ``stationary_object`` template (``vision.kinds.BUILTIN_KINDS``).
"""

from __future__ import annotations

from vision.kinds import BUILTIN_KINDS
from vision.rules.templates import rule_spec
from vision.types import ViolationKind

SPEC = rule_spec(BUILTIN_KINDS[ViolationKind.STREET_VENDING])
