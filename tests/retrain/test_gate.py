"""The promotion gate as a table: reports in, decision out."""

from __future__ import annotations

import math

import pytest

from models.gate import decide


def report(map50: float | None, **ap50: float | None) -> dict:
    return {"map50": map50, "map50_95": None, "per_class": {k: {"ap50": v} for k, v in ap50.items()}}


BASE_REG = report(0.8, garbage=0.80, grill=0.70, person=0.90)


@pytest.mark.parametrize(
    ("name", "new_val", "active_val", "new_reg", "promote", "failing"),
    [
        ("better val, same regression", 0.62, 0.60, BASE_REG, True, []),
        ("equal val is not better", 0.60, 0.60, BASE_REG, False, ["val_map50"]),
        ("worse val", 0.55, 0.60, BASE_REG, False, ["val_map50"]),
        (
            "exactly 1 point drop allowed",
            0.70,
            0.60,
            report(0.8, garbage=0.79, grill=0.70, person=0.90),
            True,
            [],
        ),
        (
            "1.1 point drop on one class refused",
            0.70,
            0.60,
            report(0.8, garbage=0.789, grill=0.70, person=0.90),
            False,
            ["regression_ap50:garbage"],
        ),
        (
            "gains elsewhere do not buy a loss",
            0.9,
            0.6,
            report(0.9, garbage=0.99, grill=0.60, person=0.99),
            False,
            ["regression_ap50:grill"],
        ),
        (
            "class missing in candidate counts as 0",
            0.7,
            0.6,
            report(0.8, garbage=0.8, person=0.9),
            False,
            ["regression_ap50:grill"],
        ),
        (
            "NaN in candidate counts as 0",
            0.7,
            0.6,
            report(0.8, garbage=0.8, grill=math.nan, person=0.9),
            False,
            ["regression_ap50:grill"],
        ),
        (
            "both failing",
            0.5,
            0.6,
            report(0.8, garbage=0.5, grill=0.7, person=0.9),
            False,
            ["val_map50", "regression_ap50:garbage"],
        ),
        ("undefined val refuses", None, 0.6, BASE_REG, False, ["val_map50"]),
        ("active undefined val refuses", 0.6, None, BASE_REG, False, ["val_map50"]),
    ],
)
def test_gate_table(name, new_val, active_val, new_reg, promote, failing):
    d = decide(
        new_val=report(new_val),
        active_val=report(active_val),
        new_regression=new_reg,
        active_regression=BASE_REG,
    )
    assert d.promote is promote, (name, d.reason)
    assert [c.name for c in d.checks if not c.passed] == failing, name
    assert d.reason.startswith("promoted" if promote else "kept as candidate")
    assert d.to_json()["decision"] == ("promote" if promote else "candidate")


def test_classes_without_ground_truth_are_skipped():
    active_reg = report(0.8, garbage=0.8, smoke=None)
    d = decide(
        new_val=report(0.7),
        active_val=report(0.6),
        new_regression=report(0.8, garbage=0.8, smoke=None),
        active_regression=active_reg,
    )
    assert d.promote
    assert [c.name for c in d.checks] == ["val_map50", "regression_ap50:garbage"]


def test_empty_regression_set_refuses():
    d = decide(
        new_val=report(0.7),
        active_val=report(0.6),
        new_regression=report(None),
        active_regression=report(None),
    )
    assert not d.promote
    assert "regression set has no scored class" in d.reason


@pytest.mark.parametrize(("tolerance", "promote"), [(0.05, True), (0.01, False)])
def test_tolerance_is_a_parameter(tolerance, promote):
    d = decide(
        new_val=report(0.7),
        active_val=report(0.6),
        new_regression=report(0.8, garbage=0.77, grill=0.7, person=0.9),
        active_regression=BASE_REG,
        max_class_drop_ap50=tolerance,
    )
    assert d.promote is promote


def test_reason_names_the_failing_class_and_numbers():
    d = decide(
        new_val=report(0.7),
        active_val=report(0.6),
        new_regression=report(0.8, garbage=0.8, grill=0.65, person=0.9),
        active_regression=BASE_REG,
    )
    assert "AP50 of 'grill' 0.700 -> 0.650 (-5.0 pt" in d.reason


def test_val_comparison_ignores_the_parents_own_pseudo_labels():
    from models.retrain import restrict_to_classes, reviewed_classes

    manifest = {
        "items": [
            {
                "split": "val",
                "labels": [{"label": "garbage", "source": "case"}, {"label": "person", "source": "pseudo"}],
            },
            {"split": "val", "labels": [{"label": "grill", "source": "correction"}]},
            {"split": "train", "labels": [{"label": "vending_stall", "source": "case"}]},
        ]
    }
    classes = reviewed_classes(manifest, "val")
    assert classes == {"garbage", "grill"}
    # the parent "finds" every person it pseudo-labelled itself; only reviewed classes decide
    parent = {
        "map50": 0.8,
        "per_class": {"garbage": {"ap50": 0.4}, "grill": {"ap50": 0.6}, "person": {"ap50": 1.0}},
    }
    new = {
        "map50": 0.7,
        "per_class": {"garbage": {"ap50": 0.6}, "grill": {"ap50": 0.6}, "person": {"ap50": 0.8}},
    }
    got_new, got_parent = restrict_to_classes(new, classes), restrict_to_classes(parent, classes)
    assert (got_new["map50"], got_parent["map50"]) == (pytest.approx(0.6), pytest.approx(0.5))
    assert restrict_to_classes(new, set())["map50"] is None
