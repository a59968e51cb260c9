"""Promotion gate: the one rule that decides whether a retrained model replaces the active one.

A candidate is promoted only if it is measurably better where the city's reviewers just labelled data
(the new val split) and no worse, beyond a small tolerance, on a fixed synthetic regression set that never
changes between runs. Pure: reports in, decision out; ``models/retrain.py`` supplies the reports from
``models.evaluate.evaluate_model`` and records the decision in the registry.

Metrics are fractions in [0, 1] as ``evaluate_model`` returns them; "1 point AP50" is therefore 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Default tolerance: a class of the regression set may lose at most 1 point (0.01) of AP50.
MAX_CLASS_DROP_AP50 = 0.01
#: Default margin the candidate's val mAP50 must exceed the active model's by (strictly greater).
MIN_VAL_GAIN_MAP50 = 0.0


@dataclass(frozen=True)
class GateCheck:
    """One comparison the gate made. ``new``/``active`` are None where the metric is undefined."""

    name: str  # "val_map50" | "regression_ap50:<class>"
    passed: bool
    new: float | None
    active: float | None
    detail: str


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    checks: tuple[GateCheck, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": "promote" if self.promote else "candidate",
            "promote": self.promote,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
        }


def _number(value: Any) -> float | None:
    """A finite float, or None for missing/NaN (a class with no ground truth has no AP)."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _pts(delta: float) -> str:
    return f"{delta * 100:+.1f} pt"


def decide(
    *,
    new_val: Mapping[str, Any],
    active_val: Mapping[str, Any],
    new_regression: Mapping[str, Any],
    active_regression: Mapping[str, Any],
    max_class_drop_ap50: float = MAX_CLASS_DROP_AP50,
    min_val_gain_map50: float = MIN_VAL_GAIN_MAP50,
) -> GateDecision:
    """Decide promote vs keep-as-candidate from four ``evaluate_model`` reports.

    Args:
        new_val / active_val: both models on the new val split (``{"map50", "map50_95", "per_class"}``).
        new_regression / active_regression: both models on the fixed regression set.
        max_class_drop_ap50: largest AP50 loss allowed on any regression class (0.01 = 1 point).
        min_val_gain_map50: the candidate's val mAP50 must exceed the active one's by more than this.

    Returns:
        ``GateDecision``; ``promote`` is True only if every check passed. Classes the active model has no
        AP for on the regression set (no ground truth there) are skipped; a class the candidate lacks counts
        as AP50 0.

    Example:
        >>> r = {"map50": 0.5, "per_class": {"garbage": {"ap50": 0.5}}}
        >>> decide(new_val={"map50": 0.6}, active_val={"map50": 0.5}, new_regression=r,
        ...        active_regression=r).promote
        True
    """
    checks: list[GateCheck] = []
    new_m, act_m = _number(new_val.get("map50")), _number(active_val.get("map50"))
    if new_m is None or act_m is None:
        checks.append(
            GateCheck(
                "val_map50", False, new_m, act_m, "val mAP50 undefined (empty val split or failed eval)"
            )
        )
    else:
        ok = new_m > act_m + min_val_gain_map50
        verb = "beats" if ok else "does not beat"
        checks.append(
            GateCheck(
                "val_map50",
                ok,
                new_m,
                act_m,
                f"val mAP50 {new_m:.3f} {verb} active {act_m:.3f} ({_pts(new_m - act_m)})",
            )
        )

    new_pc = new_regression.get("per_class") or {}
    scored = [
        n
        for n, row in (active_regression.get("per_class") or {}).items()
        if _number((row or {}).get("ap50")) is not None
    ]
    if not scored:
        # without a scored regression class the "no regression" promise cannot be checked: refuse
        checks.append(
            GateCheck(
                "regression_ap50:*",
                False,
                None,
                None,
                "regression set has no scored class (empty or failed eval)",
            )
        )
    for name, act_row in sorted((active_regression.get("per_class") or {}).items()):
        act_ap = _number((act_row or {}).get("ap50"))
        if act_ap is None:
            continue
        new_ap = _number((new_pc.get(name) or {}).get("ap50"))
        new_ap_eff = 0.0 if new_ap is None else new_ap
        drop = act_ap - new_ap_eff
        # a tiny epsilon so that exactly 1.0 point (float noise) is still allowed
        ok = drop <= max_class_drop_ap50 + 1e-9
        checks.append(
            GateCheck(
                f"regression_ap50:{name}",
                ok,
                new_ap,
                act_ap,
                f"regression AP50 of '{name}' {act_ap:.3f} -> {new_ap_eff:.3f} ({_pts(-drop)}; "
                f"limit -{max_class_drop_ap50 * 100:.1f} pt)",
            )
        )

    failed = [c for c in checks if not c.passed]
    if not failed:
        reg = [c for c in checks if c.name.startswith("regression_ap50:")]
        worst = min(reg, key=lambda c: (c.new or 0.0) - (c.active or 0.0), default=None)
        tail = f"; worst regression class: {worst.detail}" if worst else ""
        return GateDecision(True, f"promoted: {checks[0].detail}{tail}", tuple(checks))
    return GateDecision(False, "kept as candidate: " + "; ".join(c.detail for c in failed), tuple(checks))


#: An int8 variant may lose at most this much overall mAP50 against its fp32 parent (0.5 point).
MAX_INT8_MAP50_DROP = 0.005


def decide_int8(
    *,
    int8: Mapping[str, Any],
    fp32: Mapping[str, Any],
    max_map50_drop: float = MAX_INT8_MAP50_DROP,
    max_class_drop_ap50: float = MAX_CLASS_DROP_AP50,
) -> GateDecision:
    """Whether an int8 variant may stand in for its fp32 parent, from both models' ``evaluate_model``
    reports on the same held-out set: overall mAP50 may drop by at most ``max_map50_drop`` (0.5 pt) and
    each class's AP50 by at most ``max_class_drop_ap50`` (1 pt). Classes the parent has no AP for are
    skipped; a class the int8 model lacks counts as AP50 0; no scored class at all refuses.

    Example:
        >>> fp = {"map50": 0.861, "per_class": {"garbage": {"ap50": 0.80}}}
        >>> q = {"map50": 0.858, "per_class": {"garbage": {"ap50": 0.79}}}
        >>> decide_int8(int8=q, fp32=fp).promote
        True
    """
    checks: list[GateCheck] = []
    new_m, old_m = _number(int8.get("map50")), _number(fp32.get("map50"))
    if new_m is None or old_m is None:
        checks.append(
            GateCheck("int8_map50", False, new_m, old_m, "mAP50 undefined (empty set or failed eval)")
        )
    else:
        ok = old_m - new_m <= max_map50_drop + 1e-9
        checks.append(
            GateCheck(
                "int8_map50",
                ok,
                new_m,
                old_m,
                f"int8 mAP50 {new_m:.3f} vs fp32 {old_m:.3f} ({_pts(new_m - old_m)}; "
                f"limit -{max_map50_drop * 100:.1f} pt)",
            )
        )
    new_pc = int8.get("per_class") or {}
    scored = 0
    for name, row in sorted((fp32.get("per_class") or {}).items()):
        old_ap = _number((row or {}).get("ap50"))
        if old_ap is None:
            continue
        scored += 1
        new_ap = _number((new_pc.get(name) or {}).get("ap50"))
        drop = old_ap - (new_ap or 0.0)
        checks.append(
            GateCheck(
                f"int8_ap50:{name}",
                drop <= max_class_drop_ap50 + 1e-9,
                new_ap,
                old_ap,
                f"AP50 of '{name}' {old_ap:.3f} -> {new_ap or 0.0:.3f} ({_pts(-drop)}; "
                f"limit -{max_class_drop_ap50 * 100:.1f} pt)",
            )
        )
    if not scored:
        checks.append(GateCheck("int8_ap50:*", False, None, None, "no class with ground truth to compare"))
    failed = [c for c in checks if not c.passed]
    if failed:
        return GateDecision(False, "int8 refused: " + "; ".join(c.detail for c in failed), tuple(checks))
    worst = min(checks[1:], key=lambda c: (c.new or 0.0) - (c.active or 0.0))
    return GateDecision(True, f"int8 passed: {checks[0].detail}; worst class: {worst.detail}", tuple(checks))
