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
