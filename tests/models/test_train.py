"""Training: recipes, and a seconds-long real run (train -> ONNX -> our detector -> eval -> card)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.train import TrainResult, load_recipe, train_model
from urbaneye.model_card import ModelCard
from vision.detector import OnnxDetector
from vision.types import OBJECT_KINDS, Detections


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_model(
        tiny_dataset, tmp_path_factory.mktemp("train"), recipe="tiny", name="ue-tiny", version="ue-tiny-1"
    )


def test_tiny_run_exports_an_onnx_our_detector_runs(tiny_run: TrainResult, tiny_dataset: Path) -> None:
    det = OnnxDetector(tiny_run.onnx_path)
    assert det.labels == [str(k) for k in OBJECT_KINDS]
    assert det.imgsz == (64, 64)
    assert det.batch == 1
    assert det.version == f"ue-tiny-1-{det.sha256[:12]}"
    assert (
        det.metadata["urbaneye_classes"]
        == '["person", "bicycle", "e_bike", "vending_stall", "garbage", "trash_bin", "grill", "smoke"]'
    )
    frame = cv2.imread(str(next((tiny_dataset.parent / "images" / "val").iterdir())))
    assert isinstance(det.detect(frame), Detections)


def test_tiny_run_writes_a_complete_card(tiny_run: TrainResult, tiny_dataset: Path) -> None:
    card = ModelCard.load(tiny_run.card_path)
    out = tiny_run.card_path.parent
    assert card.classes == [str(k) for k in OBJECT_KINDS]
    assert card.imgsz_px == [64, 64]
    assert card.architecture == "yolov8n.yaml"
    assert card.init_weights is None
    assert card.dataset["train_images"] == 6 and card.dataset["val_images"] == 4
    assert card.dataset["seed"] == 0
    assert card.recipe["name"] == "tiny"
    assert card.recipe["train_args"]["pretrained"] is False and card.recipe["train_args"]["amp"] is False
    assert card.training["epochs"] == 1 and card.training["time_s"] > 0
    assert card.training["images_per_epoch"] == 6
    assert card.training["hardware"]["device"] == "cpu" and card.training["hardware"]["torch_threads"] == 2
    assert set(card.artifacts) == {"onnx", "pt"}
    assert card.artifacts["onnx"].file == "ue-tiny.onnx" and card.artifacts["onnx"].extra["opset"] == 17
    assert card.verify(out) == []
    val = card.metrics["val"]
    assert val["images"] == 4 and val["inference_path"] == "vision.detector.OnnxDetector"
    assert set(val["per_class"]) == {str(k) for k in OBJECT_KINDS}
    assert (out / "plots" / "pr_curve.png").is_file() and (out / "plots" / "confusion_matrix.png").is_file()


def test_init_weights_start_from_the_parent(
    tiny_run: TrainResult, tiny_dataset: Path, tmp_path: Path
) -> None:
    import torch

    # lr 0: the child's conv weights must equal the parent's exactly if --init loaded them.
    child = train_model(
        tiny_dataset,
        tmp_path,
        recipe="tiny",
        init_weights=tiny_run.pt_path,
        evaluate=False,
        extra_train_args={"optimizer": "AdamW", "lr0": 0.0, "warmup_bias_lr": 0.0},
    )
    assert child.card.init_weights == str(tiny_run.pt_path)

    def conv_weights(pt: Path) -> dict[str, np.ndarray]:
        model = torch.load(pt, map_location="cpu", weights_only=False)["model"]
        return {k: v.float().numpy() for k, v in model.state_dict().items() if k.endswith("conv.weight")}

    parent, kid = conv_weights(tiny_run.pt_path), conv_weights(child.pt_path)
    assert parent.keys() == kid.keys() and len(parent) > 10
    for key in parent:
        np.testing.assert_array_equal(parent[key], kid[key], err_msg=key)


def test_epoch_images_draws_a_subset_each_epoch(tiny_dataset: Path, tmp_path: Path) -> None:
    recipe = dataclasses.replace(load_recipe("tiny"), epoch_images=4, epochs=2, batch=2)
    result = train_model(tiny_dataset, tmp_path, recipe=recipe, evaluate=False)
    assert result.card.training["images_per_epoch"] == 4  # of 6 train images
    assert result.card.training["epochs"] == 2
    assert result.card.recipe["epoch_images"] == 4


@pytest.mark.parametrize("name", ["cpu", "finetune", "gpu", "tiny"])
def test_shipped_recipes_load(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.model in {"yolov8n.yaml", "yolo11n.yaml"}
    assert all(v % 32 == 0 for v in recipe.export_imgsz_px)
    args = recipe.train_args()
    assert args["amp"] is False and args["plots"] is False
    assert recipe.finetune == (name == "finetune")


def test_finetune_recipe_continues_the_bootstrap_gently() -> None:
    finetune, cpu = load_recipe("finetune"), load_recipe("cpu")
    # what the network sees must not change between the bootstrap's training and its fine-tunes
    assert (finetune.model, finetune.imgsz_px, finetune.export_imgsz_px) == (
        cpu.model,
        cpu.imgsz_px,
        cpu.export_imgsz_px,
    )
    args = finetune.train_args()
    assert args["lr0"] < cpu.train_args()["lr0"] and args["optimizer"] == "AdamW"
    assert args["warmup_bias_lr"] == 0.0  # warm-up ramps every lr up from 0, the bias lr included
    assert 0 < args["freeze"] <= 10  # at most the backbone


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "model: yolov8n.yaml\nimgsz: 64\nepochs: 1\nbatch: 2\nlr0: 0.1\n",
            "unknown key.*lr0.*under 'ultralytics:'",
        ),
        ("model: yolov8n.yaml\nimgsz: 64\nepochs: 1\n", r"missing key\(s\) \['batch'\]"),
        (
            "model: yolov8n.yaml\nimgsz: 64\nepochs: 1\nbatch: 2\nultralytics: {amp: true}\n",
            r"\['amp'\] are fixed by urbaneye train",
        ),
    ],
)
def test_bad_recipes_say_what_to_fix(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_recipe(path)


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(FileNotFoundError, match=r"\['cpu', 'finetune', 'gpu', 'tiny'\]"):
        load_recipe("nonesuch")
