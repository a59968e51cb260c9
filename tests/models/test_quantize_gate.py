"""The int8 gate: an int8 variant stands in for its fp32 parent only within 0.5 pt mAP50 and 1 pt per class."""

from __future__ import annotations

import pytest

from models.gate import decide_int8


def report(map50: float | None, **ap50: float | None) -> dict:
    return {"map50": map50, "per_class": {name: {"ap50": ap} for name, ap in ap50.items()}}


FP32 = report(0.861, person=0.90, garbage=0.80, smoke=None)


@pytest.mark.parametrize(
    ("int8", "promote", "failed"),
    [
        (report(0.858, person=0.895, garbage=0.792, smoke=None), True, []),  # the figures
        (report(0.856, person=0.90, garbage=0.79, smoke=None), True, []),  # exactly 0.5 pt and 1 pt
        (report(0.8555, person=0.90, garbage=0.80, smoke=None), False, ["int8_map50"]),
        (report(0.860, person=0.90, garbage=0.789, smoke=None), False, ["int8_ap50:garbage"]),
        (report(0.860, person=0.90, smoke=None), False, ["int8_ap50:garbage"]),  # a lost class is AP 0
        (report(0.870, person=0.95, garbage=0.85, smoke=0.1), True, []),  # better is fine
        (report(None, person=0.90, garbage=0.80), False, ["int8_map50"]),  # failed evaluation
    ],
)
def test_int8_gate(int8: dict, promote: bool, failed: list[str]) -> None:
    decision = decide_int8(int8=int8, fp32=FP32)
    assert decision.promote is promote
    assert [c.name for c in decision.checks if not c.passed] == failed
    assert decision.to_json()["decision"] == ("promote" if promote else "candidate")


def test_int8_gate_refuses_without_a_scored_class() -> None:
    decision = decide_int8(int8=report(0.5, smoke=0.5), fp32=report(0.5, smoke=None))
    assert not decision.promote and "no class with ground truth" in decision.reason
