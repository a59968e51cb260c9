"""Violation rules: one module per kind defines its ``SPEC``; all run on the shared machinery in ``common``.

``RULES[kind]`` is a ``Rule`` with ``spec``, ``init_state(camera_id, rules, escalation=None)`` and the pure
``step(state, detections, zones, now_s) -> (state, events)``.
"""

from __future__ import annotations

from vision.rules import barbecue, bikes, garbage, vending
from vision.rules.common import Rule
from vision.types import ViolationKind

#: The rule of each violation kind, in the order the pipeline runs them.
RULES: dict[ViolationKind, Rule] = {
    spec.kind: Rule(spec) for spec in (vending.SPEC, garbage.SPEC, bikes.SPEC, barbecue.SPEC)
}

__all__ = ["RULES", "Rule", "barbecue", "bikes", "garbage", "vending"]
