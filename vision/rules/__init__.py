"""Violation rules: each kind is an instance of a rule template (``templates``); all run on the shared
machinery in ``common``.

``RULES[kind]`` is the ``Rule`` of a built-in kind (one module each defines its ``SPEC``), with ``spec``,
``init_state(camera_id, rules, escalation=None)`` and the pure ``step(state, detections, zones, now_s) ->
(state, events)``. ``rules_for(catalogue)`` adds the kinds a cameras file configures.
"""

from __future__ import annotations

from collections.abc import Mapping

from vision.kinds import KindSpec
from vision.rules import barbecue, bikes, garbage, vending
from vision.rules.common import Rule
from vision.rules.templates import rule_spec
from vision.types import ViolationKind

#: The rule of each violation kind, in the order the pipeline runs them.
RULES: dict[ViolationKind, Rule] = {
    spec.kind: Rule(spec) for spec in (vending.SPEC, garbage.SPEC, bikes.SPEC, barbecue.SPEC)
}


def rules_for(catalogue: Mapping[str, KindSpec]) -> dict[str, Rule]:
    """``kind id -> Rule`` of a kind catalogue (``vision.kinds.catalogue_of``), in its order: built-ins are
    ``RULES``' own rules, configured kinds get theirs from their template.

    Example:
        >>> list(rules_for(catalogue_of(cameras_file.rules)))[-1]
        'goods_display'
    """
    out: dict[str, Rule] = {}
    for kind_id, spec in catalogue.items():
        builtin = RULES.get(kind_id)  # type: ignore[call-overload]
        out[kind_id] = builtin if builtin is not None else Rule(rule_spec(spec))
    return out


__all__ = ["RULES", "Rule", "barbecue", "bikes", "garbage", "rules_for", "vending"]
