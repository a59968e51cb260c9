"""Model card round trip and integrity checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from urbaneye.model_card import CARD_SCHEMA_VERSION, ArtifactInfo, ModelCard, describe_hardware
from vision.digest import sha256_file


def make_card(tmp_path: Path) -> ModelCard:
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"onnx bytes")
    card = ModelCard(
        name="urbaneye-test",
        classes=["person", "smoke"],
        imgsz_px=[288, 480],
        architecture="yolov8n.yaml",
        dataset={"seed": 1, "train_images": 10},
        recipe={"name": "cpu"},
        training={"time_s": 1.0, "hardware": describe_hardware("cpu")},
    )
    card.artifacts["onnx"] = ArtifactInfo.of(weights, tmp_path, opset=17)
    return card


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    card.metrics["holdout"] = {"map50": 0.9, "per_class": {"person": {"ap50": 0.8}}}
    path = card.save(tmp_path / "card.json")
    loaded = ModelCard.load(path)
    assert loaded == card
    raw = json.loads(path.read_text())
    assert raw["artifacts"]["onnx"] == {
        "file": "m.onnx",
        "sha256": sha256_file(tmp_path / "m.onnx"),
        "size_bytes": 10,
        "extra": {"opset": 17},
    }
    assert raw["schema_version"] == CARD_SCHEMA_VERSION
    assert raw["training"]["hardware"]["cpu_cores"] >= 1


def test_verify_reports_changed_and_missing_files(tmp_path: Path) -> None:
    card = make_card(tmp_path)
    assert card.verify(tmp_path) == []
    (tmp_path / "m.onnx").write_bytes(b"other bytes")
    assert card.verify(tmp_path) == [
        f"onnx: {tmp_path / 'm.onnx'} sha256 differs from the card; re-export or update the card"
    ]
    (tmp_path / "m.onnx").unlink()
    assert card.verify(tmp_path) == [f"onnx: {tmp_path / 'm.onnx'} is missing"]


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    data = make_card(tmp_path).to_dict()
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version 99 is not supported"):
        ModelCard.from_dict(data)
    with pytest.raises(FileNotFoundError, match="urbaneye train"):
        ModelCard.load(tmp_path / "nope.json")
