"""int8 quantisation end to end: a tiny training run -> ONNX -> ``urbaneye quantize`` -> our detector.

The tiny model detects nothing useful; what is checked is that the int8 file is a real QDQ model our
detector loads and runs, with the decode kept float and the metadata kept, and that its card and the
gate record what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from models.quantize import (
    PARENT_SHA_KEY,
    PRECISION_KEY,
    Int8Build,
    QuantizeError,
    build_int8,
    float_node_names,
    folder_calibration,
    quantize_model,
    synthetic_calibration,
)
from models.train import TrainResult, train_model
from urbaneye.cli import main as urbaneye_main
from urbaneye.model_card import ModelCard, int8_card_path
from vision.detector import BOOTSTRAP_MODEL_PATH, OnnxDetector
from vision.types import OBJECT_KINDS, Detections


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_model(
        tiny_dataset, tmp_path_factory.mktemp("train"), recipe="tiny", name="ue-tiny", version="ue-tiny-1"
    )


@pytest.fixture(scope="module")
def tiny_int8(tiny_run: TrainResult, tiny_dataset: Path) -> Int8Build:
    return build_int8(
        tiny_run.onnx_path,
        tiny_run.onnx_path.with_suffix(".int8.onnx"),
        calib=folder_calibration(tiny_dataset.parent / "images"),
        data_yaml=tiny_dataset,
        split="val",
    )


def _decode_outputs_quantised(model: onnx.ModelProto, names: list[str]) -> list[str]:
    """Float nodes whose output goes through a QuantizeLinear (the decode must never pass through int8)."""
    quantised_inputs = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    return [n.name for n in model.graph.node if n.name in names and set(n.output) & quantised_inputs]


def test_tiny_int8_runs_through_our_detector(tiny_int8: Int8Build, tiny_run: TrainResult, tiny_dataset: Path):
    fp32, int8 = OnnxDetector(tiny_run.onnx_path), OnnxDetector(tiny_int8.result.dst)
    assert int8.labels == fp32.labels == [str(k) for k in OBJECT_KINDS]
    assert int8.imgsz == fp32.imgsz == (64, 64)
    assert int8.metadata[PRECISION_KEY] == "int8"
    assert int8.metadata[PARENT_SHA_KEY] == fp32.sha256 == tiny_int8.result.fp32_sha256
    assert int8.version == f"ue-tiny-1-int8-{int8.sha256[:12]}"
    frame = cv2.imread(str(sorted((tiny_dataset.parent / "images" / "val").iterdir())[0]))
    detections = int8.detect(frame)
    assert isinstance(detections, Detections)
    raw_fp32 = fp32.session.run(None, {fp32.input_name: fp32.input_tensor(frame)})[0]
    raw_int8 = int8.session.run(None, {int8.input_name: int8.input_tensor(frame)})[0]
    assert raw_int8.shape == raw_fp32.shape


def test_tiny_int8_is_qdq_with_the_decode_float(tiny_int8: Int8Build):
    model = onnx.load(str(tiny_int8.result.dst))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    weights = {i.name: i for i in model.graph.initializer}
    int8_weights = [w for w in weights.values() if w.data_type == onnx.TensorProto.INT8 and len(w.dims) == 4]
    assert int8_weights, "Conv weights are stored as int8"
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
    assert any(len(weights[n.input[1]].dims) == 1 and weights[n.input[1]].dims[0] > 1 for n in per_channel)
    names = list(tiny_int8.result.float_nodes)
    assert names and all(n in {m.name for m in model.graph.node} for n in names)
    assert _decode_outputs_quantised(model, names) == []
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer[model.graph.output[0].name].name in names  # the output concat is float


def test_tiny_int8_card_records_precision_calibration_and_delta(tiny_int8: Int8Build, tiny_run: TrainResult):
    card = ModelCard.load(int8_card_path(tiny_int8.result.dst))
    assert tiny_int8.card_path == int8_card_path(tiny_int8.result.dst)
    assert card.precision == "int8" and card.name == "ue-tiny-int8"
    q = card.quantization
    assert q is not None
    assert q.parent_sha256 == ModelCard.load(tiny_run.card_path).artifacts["onnx"].sha256
    assert q.calibration["source"] == "dir" and q.calibration["frames"] == 10
    cmp = tiny_int8.comparison
    assert cmp is not None
    assert q.accuracy["fp32_map50"] == cmp.fp32["map50"] and q.accuracy["int8_map50"] == cmp.int8["map50"]
    assert q.accuracy["map50_delta"] == pytest.approx(cmp.int8["map50"] - cmp.fp32["map50"], abs=1e-5)
    assert set(q.accuracy["per_class_ap50_delta"]) == {str(k) for k in OBJECT_KINDS}
    assert q.accuracy["fp32_ms"] > 0 and q.accuracy["int8_ms"] > 0
    assert q.gate == cmp.gate.to_json() and q.passed == cmp.gate.promote
    assert card.verify(card_dir=tiny_int8.result.dst.parent) == []


def test_quantize_cli_writes_model_and_card(tiny_run: TrainResult, tiny_dataset: Path, tmp_path, capsys):
    out = tmp_path / "cli.int8.onnx"
    rc = urbaneye_main(
        ["quantize", "--model", str(tiny_run.onnx_path), "--out", str(out),
         "--calib", str(tiny_dataset.parent / "images"), "--frames", "4", "--json"]
    )  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dst"] == str(out) and result["calibration"]["frames"] == 4
    assert result["comparison"] is None  # no --data: not measured
    card = ModelCard.load(int8_card_path(out))
    assert card.quantization is not None and card.quantization.passed is False  # never measured, never passes
    assert isinstance(OnnxDetector(out).detect(np.zeros((64, 64, 3), np.uint8)), Detections)


def test_quantize_refuses_an_int8_model_and_an_empty_folder(tiny_int8: Int8Build, tmp_path):
    with pytest.raises(QuantizeError, match="already int8"):
        quantize_model(
            tiny_int8.result.dst, tmp_path / "again.onnx", calib=synthetic_calibration(1, size=(64, 48))
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizeError, match="has no images"):
        folder_calibration(tmp_path / "empty")


def test_synthetic_calibration_yields_street_frames():
    calib = synthetic_calibration(2, size=(160, 96))
    frames = list(calib.frames())
    assert calib.source == "synthetic" and calib.count == 2 and len(frames) == 2
    assert all(f.shape == (96, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_float_nodes_of_the_shipped_model_are_its_decode():
    model = onnx.load(str(BOOTSTRAP_MODEL_PATH))
    names = float_node_names(model)
    by_name = {n.name: n for n in model.graph.node}
    producer = {o: n for n in model.graph.node for o in n.output}
    output_concat = producer[model.graph.output[0].name]
    assert output_concat.op_type == "Concat" and output_concat.name in names
    weights = {i.name: i for i in model.graph.initializer}
    convs = [by_name[n] for n in names if by_name[n].op_type == "Conv"]
    assert len(convs) == 4  # three class convolutions (one per level) and the DFL convolution
    assert all(list(weights[c.input[1]].dims[2:]) == [1, 1] for c in convs)  # all 1x1: cheap to keep float
    # the class-score sigmoid and the box arithmetic feeding the concat are float, nothing of the backbone is
    assert any(by_name[n].op_type == "Sigmoid" for n in names)
    assert all(producer[i].name in names for i in output_concat.input if i in producer)
    assert all(n.startswith("/model.22/") for n in names)  # ultralytics names its detect head model.22
    assert not any(n.endswith("/act/Sigmoid") or n.endswith("/act/Mul") for n in names)  # conv activations


def test_shipped_int8_keeps_its_decode_float():
    int8_path = BOOTSTRAP_MODEL_PATH.with_suffix(".int8.onnx")
    fp32_names = float_node_names(onnx.load(str(BOOTSTRAP_MODEL_PATH)))
    model = onnx.load(str(int8_path))
    assert set(fp32_names) <= {n.name for n in model.graph.node}
    assert _decode_outputs_quantised(model, fp32_names) == []
    card = ModelCard.load(int8_card_path(int8_path))
    assert card.precision == "int8" and card.quantization is not None and card.quantization.passed
    assert card.quantization.float_nodes == fp32_names
