"""What a retraining adds to its recipe: nothing for a fine-tune recipe, a gentler lr for a from-scratch one."""

from __future__ import annotations

import pytest

from models.retrain import REGRESSION_COUNT, RetrainOptions, finetune_train_args


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (RetrainOptions(), {}),  # the finetune recipe is used as written
        (RetrainOptions(recipe="cpu"), {"lr0": pytest.approx(0.0005), "warmup_epochs": 0.0}),
        (RetrainOptions(recipe="tiny"), {"lr0": pytest.approx(0.0025), "warmup_epochs": 0.0}),
        (RetrainOptions(train_args={"freeze": 10}), {"freeze": 10}),
        (RetrainOptions(recipe="cpu", train_args={"lr0": 0.001}), {"lr0": 0.001, "warmup_epochs": 0.0}),
    ],
)
def test_finetune_train_args(options: RetrainOptions, expected: dict) -> None:
    assert finetune_train_args(options) == expected


def test_retraining_defaults_to_the_finetune_recipe_and_a_large_regression_set() -> None:
    assert RetrainOptions().recipe == "finetune"
    assert REGRESSION_COUNT >= 400  # per-class AP50 steadier than the gate's 1 point needs 300+ of each class
