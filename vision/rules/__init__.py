"""Violation rules, one module per kind, on shared machinery in ``common``.

Each module exposes ``SPEC``, ``init_state(camera_id, rules, escalation=None)`` and the pure
``step(state, detections, zones, now_s) -> (state, events)``.
"""

from __future__ import annotations

from types import ModuleType

from vision.rules import barbecue, bikes, garbage, vending
from vision.types import ViolationKind

#: Rule module per violation kind, in the order the pipeline runs them.
RULES: dict[ViolationKind, ModuleType] = {
    ViolationKind.STREET_VENDING: vending,
    ViolationKind.EXPOSED_GARBAGE: garbage,
    ViolationKind.BIKE_MISPARKING: bikes,
    ViolationKind.OPEN_AIR_BARBECUE: barbecue,
}

__all__ = ["RULES", "barbecue", "bikes", "garbage", "vending"]
