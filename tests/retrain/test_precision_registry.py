"""int8 variants in the registry: a model of their own, gated against the fp32 parent, chosen per precision."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from models.gate import decide_int8
from models.quantize import int8_card, quantize_model, review_calibration, synthetic_calibration
from streams.detector_pool import PrecisionWatcher, static_model_path
from tests.retrain.conftest import T0, add_case
from tests.retrain.test_hot_reload import variant
from urbaneye import registry
from urbaneye.model_card import ModelCard, int8_card_path
from urbaneye.registry_precision import (
    int8_variant,
    register_int8,
    resolve_precision,
    shipped_int8_passed,
    variant_of,
)
from vision.detector import BOOTSTRAP_MODEL_PATH

FP32 = {"map50": 0.861, "per_class": {"person": {"ap50": 0.90}, "garbage": {"ap50": 0.80}}}
CLOSE = {"map50": 0.858, "per_class": {"person": {"ap50": 0.895}, "garbage": {"ap50": 0.792}}}
GARBAGE_LOST = {"map50": 0.858, "per_class": {"person": {"ap50": 0.90}, "garbage": {"ap50": 0.785}}}


@pytest.fixture(scope="module")
def tiny_int8(
    tiny_parent: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ModelCard]:
    """The tiny parent quantised for real (two synthetic calibration frames); its card, not yet gated."""
    _, parent_onnx = tiny_parent
    result = quantize_model(
        parent_onnx,
        tmp_path_factory.mktemp("int8") / "parent.int8.onnx",
        calib=synthetic_calibration(2, size=(160, 96)),
    )
    return result.dst, int8_card(result, None, None)


def gated(card: ModelCard, int8_report: dict) -> ModelCard:
    """The card with the int8 gate's decision for ``int8_report`` against ``FP32``."""
    q = dataclasses.replace(card.quantization, gate=decide_int8(int8=int8_report, fp32=FP32).to_json())
    return dataclasses.replace(card, quantization=q)


def register_parent(s, tiny_parent) -> None:
    registry.register(s, onnx_path=tiny_parent[1], version="v1", classes=["person"])
    registry.promote(s, "v1")


def test_passing_int8_variant_is_a_model_of_its_own_chosen_by_precision(db, tiny_parent, tiny_int8):
    path, card = tiny_int8
    with db() as s:
        register_parent(s, tiny_parent)
        mv = register_int8(s, onnx_path=path, fp32_version="v1", card=gated(card, CLOSE))
        s.commit()
    with db() as s:
        mv, v1 = registry.get_version(s, "v1-int8"), registry.get_version(s, "v1")
        assert mv.parent == "v1" and mv.status == registry.CANDIDATE and mv.classes == ["person"]
        assert mv.gate["promote"] is True and registry.gate_failure(mv) is None
        assert variant_of(s, "v1-int8").precision == "int8" and variant_of(s, "v1") is None
        assert variant_of(s, "v1-int8").calibration["source"] == "synthetic"
        assert int8_variant(s, "v1").version == "v1-int8"
        assert resolve_precision(s, v1, "auto", on_cpu=True).version == "v1-int8"
        assert resolve_precision(s, v1, "auto", on_cpu=False).version == "v1"
        assert resolve_precision(s, v1, "int8", on_cpu=False).version == "v1-int8"
        assert resolve_precision(s, v1, "fp32", on_cpu=True).version == "v1"
        # promoted on its own, an int8 model still yields to fp32 where the group asks for fp32
        registry.promote(s, "v1-int8")
        assert resolve_precision(s, mv, "fp32", on_cpu=True).version == "v1"
        assert resolve_precision(s, mv, "auto", on_cpu=True).version == "v1-int8"


def test_failing_int8_variant_is_never_chosen_nor_promoted(db, tiny_parent, tiny_int8):
    path, card = tiny_int8
    with db() as s:
        register_parent(s, tiny_parent)
        mv = register_int8(s, onnx_path=path, fp32_version="v1", card=gated(card, GARBAGE_LOST))
        assert "garbage" in registry.gate_failure(mv)
        v1 = registry.get_version(s, "v1")
        assert int8_variant(s, "v1") is None
        assert resolve_precision(s, v1, "int8", on_cpu=True).version == "v1"
        assert resolve_precision(s, v1, "auto", on_cpu=True).version == "v1"
        with pytest.raises(registry.GateRefused, match="garbage"):
            registry.promote(s, mv.version)


def test_unmeasured_int8_variant_fails_its_gate(db, tiny_parent, tiny_int8):
    path, card = tiny_int8
    with db() as s:
        register_parent(s, tiny_parent)
        mv = register_int8(s, onnx_path=path, fp32_version="v1", card=card)
        assert "never measured" in registry.gate_failure(mv)
        assert int8_variant(s, "v1") is None


def test_register_int8_refuses_another_parent_and_a_fp32_card(db, tiny_parent, tiny_int8, tmp_path):
    path, card = tiny_int8
    with db() as s:
        registry.register(s, onnx_path=path, version="other")  # any other file as the would-be parent
        with pytest.raises(registry.RegistryError, match="quantised from sha256"):
            register_int8(s, onnx_path=path, fp32_version="other", card=gated(card, CLOSE))
        register_parent(s, tiny_parent)
        fp32_card = dataclasses.replace(card, precision="fp32", quantization=None)
        with pytest.raises(registry.RegistryError, match="not an int8 card"):
            register_int8(s, onnx_path=path, fp32_version="v1", card=fp32_card)
        with pytest.raises(registry.ModelNotFound):
            register_int8(s, onnx_path=path, fp32_version="nope", card=gated(card, CLOSE))


def test_watcher_runs_the_variant_its_precision_asks_for(db, tiny_parent, tiny_int8, tmp_path):
    path, card = tiny_int8
    with db() as s:
        register_parent(s, tiny_parent)
        register_int8(s, onnx_path=path, fp32_version="v1", card=gated(card, CLOSE))
        s.commit()
    cpu = PrecisionWatcher("default", precision="auto", on_cpu=True, poll_s=60, session_factory=db).start()
    fp32 = PrecisionWatcher("default", precision="fp32", on_cpu=True, poll_s=60, session_factory=db).start()
    try:
        detector, version = cpu.current()
        assert version == "v1-int8" and detector.metadata["urbaneye_precision"] == "int8"
        assert fp32.current()[1] == "v1" and "urbaneye_precision" not in fp32.current()[0].metadata
        assert cpu.poll_once() is False and cpu.reloads == 0  # the variant stays; no reload every poll
        v2 = variant(tiny_parent[1], tmp_path / "v2.onnx", "v2")
        with db() as s:  # a new fp32 model without a variant: the int8 watcher follows it in fp32
            registry.register(s, onnx_path=v2, version="v2", parent="v1")
            registry.promote(s, "v2")
            s.commit()
        assert cpu.poll_once() is True and cpu.current()[1] == "v2"
    finally:
        cpu.stop()
        fp32.stop()


def test_without_a_registry_the_shipped_int8_is_the_cpu_default(tmp_path):
    int8 = shipped_int8_passed(BOOTSTRAP_MODEL_PATH)
    assert int8 == BOOTSTRAP_MODEL_PATH.with_suffix(".int8.onnx")
    assert ModelCard.load(int8_card_path(int8)).quantization.passed
    shipped = str(BOOTSTRAP_MODEL_PATH)
    assert static_model_path(shipped, "auto", on_cpu=True) == str(int8)
    assert static_model_path(shipped, "int8", on_cpu=False) == str(int8)
    assert static_model_path(shipped, "auto", on_cpu=False) == shipped
    assert static_model_path(shipped, "fp32", on_cpu=True) == shipped
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(BOOTSTRAP_MODEL_PATH.read_bytes())
    assert static_model_path(str(lone), "auto", on_cpu=True) == str(lone)  # no sibling: run it as it is


def test_bootstrap_registers_its_shipped_int8_variant(db):
    with db() as s:
        fp32 = registry.ensure_bootstrap(s)
        chosen = resolve_precision(s, fp32, "auto", on_cpu=True)
        assert chosen.version == f"{fp32.version}-int8" and chosen.parent == fp32.version
        assert registry.gate_failure(chosen) is None
        assert resolve_precision(s, fp32, "auto", on_cpu=True).version == chosen.version  # registered once


def test_calibration_comes_from_reviewed_evidence_when_there_is_enough(db, fs_store, tiny_parent, tmp_path):
    with db() as s:
        for i in range(
            3
        ):  # three confirmed and one rejected case of two frames each; a pending one is left out
            add_case(s, fs_store, status="confirmed", frames=2, seed=i, at=T0 + dt.timedelta(hours=i))
        add_case(s, fs_store, status="rejected", reject_reason="false_detection", frames=2, seed=9)
        add_case(s, fs_store, status="pending_review", frames=2, seed=7)
        s.commit()
    with db() as s:
        calib = review_calibration(s, fs_store, 100, min_frames=8)
        few = review_calibration(s, fs_store, 100, min_frames=9)
    assert calib.source == "reviews" and calib.count == 8 and "4 reviewed cases" in calib.detail
    frames = list(calib.frames())
    assert len(frames) == 8 and all(f.shape == (96, 160, 3) for f in frames)
    assert few.source == "synthetic" and "only 8 reviewed evidence frames (< 9)" in few.detail
    result = quantize_model(tiny_parent[1], tmp_path / "reviews.int8.onnx", calib=calib)
    assert result.calibration.source == "reviews" and result.calibration.count == 8


def test_each_camera_group_runs_its_own_precision():
    """model.group_precision: one group on fp32 beside the CPU default int8; groups of one precision share a
    detector."""
    from streams.detector_pool import DetectorPool
    from vision.config import parse_cameras

    cameras_file = parse_cameras({"model": {"precision": "int8", "group_precision": {"night": "fp32"}}})
    assert cameras_file.model.precision_for("night") == "fp32"
    assert cameras_file.model.precision_for("day") == "int8"
    loaded: list[str] = []
    pool = DetectorPool(cameras_file, watch=False, detector_factory=lambda p: loaded.append(p) or p)
    assert pool.source("day")()[0] == str(BOOTSTRAP_MODEL_PATH.with_suffix(".int8.onnx"))
    assert pool.source("night")()[0] == str(BOOTSTRAP_MODEL_PATH)
    assert pool.source("evening")()[0] == str(BOOTSTRAP_MODEL_PATH.with_suffix(".int8.onnx"))
    assert len(loaded) == 2  # day and evening share the int8 detector
    with pytest.raises(ValueError, match="group_precision"):
        parse_cameras({"model": {"group_precision": {"night": "int4"}}})
