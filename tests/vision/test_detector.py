from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.vision.conftest import URBANEYE_LABELS, edit_onnx
from vision.config import ModelConfig
from vision.detector import DEFAULT_ALLOW_SPINNING, ModelLoadError, OnnxDetector
from vision.ort_tuning import SPINNING_KEY, SessionTuning
from vision.types import OBJECT_KINDS, ObjectKind


def _same_detections(a, b, atol_px: float = 0.5) -> None:
    assert len(a) == len(b)
    oa, ob = np.lexsort((a.xyxy[:, 0], -a.confidence)), np.lexsort((b.xyxy[:, 0], -b.confidence))
    np.testing.assert_allclose(a.xyxy[oa], b.xyxy[ob], atol=atol_px)
    np.testing.assert_allclose(a.confidence[oa], b.confidence[ob], atol=1e-4)
    np.testing.assert_array_equal(a.class_id[oa], b.class_id[ob])


def test_load_reads_names_imgsz_and_version(tiny_onnx: Path) -> None:
    det = OnnxDetector(tiny_onnx)
    assert det.labels == URBANEYE_LABELS
    assert det.imgsz == (160, 160)
    assert det.batch == 1
    assert det.layout == "channels_first"
    assert det.sha256 == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert det.version == f"{tiny_onnx.stem}-{det.sha256[:12]}"
    assert "CPUExecutionProvider" in det.providers


def test_input_tensor_is_a_copy_of_what_detect_feeds_the_session(
    tiny_onnx: Path, bus_bgr: np.ndarray
) -> None:
    det = OnnxDetector(tiny_onnx)
    tensor = det.input_tensor(bus_bgr)
    assert tensor.shape == (1, 3, 160, 160) and tensor.dtype == det.input_dtype
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0 and tensor.std() > 0.05  # the picture, scaled to 0..1
    det.detect(np.zeros_like(bus_bgr))  # refills its own buffer: the copy handed out must not change
    np.testing.assert_array_equal(tensor, det.input_tensor(bus_bgr))


def test_detect_matches_ultralytics_predict_on_a_real_image(tiny_onnx: Path, bus_bgr: np.ndarray) -> None:
    from ultralytics import YOLO

    ours = OnnxDetector(tiny_onnx, ModelConfig(default_score_threshold=0.35, iou_threshold=0.5)).detect(
        bus_bgr
    )
    ref = YOLO(str(tiny_onnx), task="detect").predict(bus_bgr, imgsz=160, conf=0.35, iou=0.5, verbose=False)[
        0
    ]
    ref_xyxy, ref_conf = ref.boxes.xyxy.numpy(), ref.boxes.conf.numpy()
    ref_cls = ref.boxes.cls.numpy().astype(int)
    assert len(ours) == len(ref_xyxy) > 5
    # Same set of (class, score, box); identity class map here so class ids compare directly.
    o = np.lexsort((ours.xyxy[:, 1], ours.xyxy[:, 0], -ours.confidence, ours.class_id))
    r = np.lexsort((ref_xyxy[:, 1], ref_xyxy[:, 0], -ref_conf, ref_cls))
    np.testing.assert_array_equal(ours.class_id[o], ref_cls[r])
    np.testing.assert_allclose(ours.confidence[o], ref_conf[r], atol=1e-4)
    np.testing.assert_allclose(ours.xyxy[o], ref_xyxy[r], atol=0.5)


def test_detections_are_valid_and_labelled(tiny_onnx: Path, bus_bgr: np.ndarray) -> None:
    det = OnnxDetector(tiny_onnx).detect(bus_bgr)
    h, w = bus_bgr.shape[:2]
    assert len(det) > 0
    assert det.xyxy.dtype == np.float32 and det.xyxy.shape == (len(det), 4)
    assert (det.xyxy[:, [0, 2]] >= 0).all() and (det.xyxy[:, [0, 2]] <= w).all()
    assert (det.xyxy[:, [1, 3]] >= 0).all() and (det.xyxy[:, [1, 3]] <= h).all()
    assert (det.xyxy[:, 2] >= det.xyxy[:, 0]).all() and (det.xyxy[:, 3] >= det.xyxy[:, 1]).all()
    assert (det.confidence >= 0.35).all() and (det.confidence <= 1).all()
    assert [str(k) for k in det.kinds] == list(det.data["label"])
    assert det.tracker_id is None


def test_class_map_renames_and_drops_labels(tiny_onnx: Path, bus_bgr: np.ndarray) -> None:
    base = OnnxDetector(tiny_onnx, ModelConfig(default_score_threshold=0.3)).detect(bus_bgr)
    assert {"vending_stall", "garbage"} <= set(base.data["label"])
    config = ModelConfig(
        default_score_threshold=0.3, class_map={"vending_stall": None, "garbage": "trash_bin"}
    )
    det = OnnxDetector(tiny_onnx, config).detect(bus_bgr)
    assert "vending_stall" not in set(det.data["label"])
    garbage = det.data["label"] == "garbage"
    assert garbage.any()
    assert set(np.asarray(det.kinds)[garbage]) == {ObjectKind.TRASH_BIN}
    assert ObjectKind.GARBAGE not in det.kinds


def test_default_class_map_for_coco_style_labels(export_tiny, bus_bgr: np.ndarray) -> None:
    path = export_tiny(nc=4, labels=["person", "bicycle", "car", "motorcycle"])
    det = OnnxDetector(path, ModelConfig(default_score_threshold=0.05))
    assert [OBJECT_KINDS[k] if k >= 0 else None for k in det.kind_of_class] == [
        ObjectKind.PERSON,
        ObjectKind.BICYCLE,
        None,
        ObjectKind.E_BIKE,
    ]
    out = det.detect(bus_bgr)
    assert len(out) > 0
    assert "car" not in set(out.data["label"])
    moto = out.data["label"] == "motorcycle"
    assert moto.any() and (out.class_id[moto] == OBJECT_KINDS.index(ObjectKind.E_BIKE)).all()


def test_per_class_thresholds_by_label_and_kind(tiny_onnx: Path, bus_bgr: np.ndarray) -> None:
    base = OnnxDetector(tiny_onnx, ModelConfig(default_score_threshold=0.3)).detect(bus_bgr)
    assert (base.data["label"] == "trash_bin").sum() > 3
    assert (base.of_kind(ObjectKind.PERSON).confidence < 0.33).any()
    config = ModelConfig(default_score_threshold=0.3, score_thresholds={"trash_bin": 0.99, "person": 0.33})
    det = OnnxDetector(tiny_onnx, config).detect(bus_bgr)
    assert "trash_bin" not in set(det.data["label"])
    assert (det.of_kind(ObjectKind.PERSON).confidence >= 0.33).all()
    assert (det.confidence >= 0.3).all()
    # Anchors trash_bin no longer claims go to their next class that clears its threshold.
    others = lambda d: (d.data["label"] != "trash_bin") & (d.data["label"] != "person")  # noqa: E731
    assert others(det).sum() >= others(base).sum()


def test_unknown_threshold_or_class_map_key_fails_at_load(tiny_onnx: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"score_thresholds has key\(s\) \['persn'\]"):
        OnnxDetector(tiny_onnx, ModelConfig(score_thresholds={"persn": 0.5}))
    with pytest.raises(ModelLoadError, match=r"class_map names label\(s\) \['motorcycle'\]"):
        OnnxDetector(tiny_onnx, ModelConfig(class_map={"motorcycle": "e_bike"}))


def test_dynamic_batch_export_matches_static(export_tiny, tiny_onnx, bus_bgr, zidane_bgr) -> None:
    static = OnnxDetector(tiny_onnx)
    dynamic = OnnxDetector(export_tiny(dynamic=True))
    assert dynamic.batch is None and dynamic.imgsz == (160, 160)
    frames = [bus_bgr, zidane_bgr, bus_bgr[:400, :300].copy()]
    batch = dynamic.detect_batch(frames)
    assert len(batch) == 3
    for got, frame in zip(batch, frames, strict=True):
        _same_detections(got, static.detect(frame))


def test_static_batch_of_two_pads_the_last_chunk(export_tiny, tiny_onnx, bus_bgr, zidane_bgr) -> None:
    static1 = OnnxDetector(tiny_onnx)
    static2 = OnnxDetector(export_tiny(batch=2))
    assert static2.batch == 2
    frames = [zidane_bgr, bus_bgr, zidane_bgr]
    got = static2.detect_batch(frames)
    assert len(got) == 3
    for g, frame in zip(got, frames, strict=True):
        _same_detections(g, static1.detect(frame))
    assert static2.times.infer.count == 2  # two runs of batch 2; the load-time warm-up is not timed


def test_transposed_output_layout_is_accepted(tiny_onnx: Path, tmp_path: Path, bus_bgr: np.ndarray) -> None:
    path = edit_onnx(tiny_onnx, tmp_path / "transposed.onnx", transpose=True)
    det = OnnxDetector(path)
    assert det.layout == "channels_last"
    _same_detections(det.detect(bus_bgr), OnnxDetector(tiny_onnx).detect(bus_bgr))


def test_end_to_end_export_with_nms_in_the_graph(export_tiny, tiny_onnx: Path, bus_bgr: np.ndarray) -> None:
    det = OnnxDetector(export_tiny(nms=True, conf=0.35, iou=0.5))
    assert det.layout == "end2end"
    _same_detections(det.detect(bus_bgr), OnnxDetector(tiny_onnx).detect(bus_bgr), atol_px=0.1)


def test_repeated_calls_reuse_buffers_and_handle_shape_changes(tiny_onnx: Path, bus_bgr, zidane_bgr) -> None:
    det = OnnxDetector(tiny_onnx)
    first = det.detect(bus_bgr)
    det.detect(zidane_bgr)  # different aspect: padding region moves
    _same_detections(det.detect(bus_bgr), first)
    gray = det.detect(bus_bgr[:, :, 0].copy())
    assert isinstance(gray.confidence, np.ndarray)
    assert det.times.preprocess.count == 4 and det.times.infer.count == 4 and det.times.postprocess.count == 4
    assert set(det.times.summary_ms()) == {"preprocess", "infer", "postprocess"}


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10, 2), np.uint8), r"\(h, w, 3\)"),
        (np.zeros((0, 10, 3), np.uint8), r"\(h, w, 3\)"),
    ],
)
def test_bad_frames_are_refused_with_a_fix(tiny_onnx: Path, frame: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OnnxDetector(tiny_onnx).detect(frame)


# ---------------------------------------------------------------- wrong files fail at load


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxDetector(tmp_path / "nope.onnx")


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("this is a README, not a model")
    with pytest.raises(
        ModelLoadError, match="could not be loaded as an ONNX model.*expected an ultralytics YOLO"
    ):
        OnnxDetector(path)


def test_classifier_export(export_tiny, tmp_path: Path) -> None:
    path = export_tiny("yolov8n-cls", nc=1000, labels=[f"c{i}" for i in range(1000)], imgsz=64)
    with pytest.raises(
        ModelLoadError, match=r"got \(1, 1000\) and metadata task 'classify' — a classification"
    ):
        OnnxDetector(path)
    # Without the task metadata the output shape alone gives it away.
    stripped = edit_onnx(path, tmp_path / "cls.onnx", metadata={"task": None})
    with pytest.raises(
        ModelLoadError, match=r"output \(1, 4\+nc, N\); got \(1, 1000\) — a classification model\?"
    ):
        OnnxDetector(stripped)


def test_segmentation_export(export_tiny, tmp_path: Path) -> None:
    path = export_tiny("yolov8n-seg", imgsz=64)
    with pytest.raises(ModelLoadError, match="a segmentation model"):
        OnnxDetector(path)
    stripped = edit_onnx(path, tmp_path / "seg.onnx", metadata={"task": None})
    with pytest.raises(ModelLoadError, match=r"got 2 outputs .* — a segmentation model \(second output"):
        OnnxDetector(stripped)


def test_no_names_metadata(tiny_onnx: Path, tmp_path: Path) -> None:
    path = edit_onnx(tiny_onnx, tmp_path / "nonames.onnx", metadata={"names": None})
    with pytest.raises(ModelLoadError, match="no 'names' metadata"):
        OnnxDetector(path)


def test_names_that_do_not_match_the_head(tiny_onnx: Path, tmp_path: Path) -> None:
    names = str({i: f"c{i}" for i in range(80)})
    path = edit_onnx(tiny_onnx, tmp_path / "wrongnc.onnx", metadata={"names": names})
    with pytest.raises(ModelLoadError, match=r"nc=80 .*\(1, 84, N\).*got \(1, 12, 525\)"):
        OnnxDetector(path)


def test_runtime_does_not_import_torch_or_ultralytics(tiny_onnx: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from vision.detector import OnnxDetector\n"
        f"OnnxDetector({str(tiny_onnx)!r}).detect(np.zeros((90, 120, 3), np.uint8))\n"
        "bad = [m for m in ('torch', 'ultralytics') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


# ------------------------------------------------------------------ session tuning and adaptation


def test_default_session_sleeps_idle_threads_and_uses_the_configured_thread_count(tiny_onnx: Path) -> None:
    det = OnnxDetector(tiny_onnx, ModelConfig(intra_op_threads=0))
    assert det.tuning == SessionTuning(os.cpu_count() or 1, allow_spinning=DEFAULT_ALLOW_SPINNING)
    options = det.session.get_session_options()
    assert options.intra_op_num_threads == det.tuning.intra_op_threads
    assert options.get_session_config_entry(SPINNING_KEY) == ("1" if DEFAULT_ALLOW_SPINNING else "0")
    assert det.adapter is not None


def test_oversubscribed_latencies_rebuild_the_session_cheaper_with_the_same_results(
    tiny_onnx: Path, bus_bgr: np.ndarray
) -> None:
    det = OnnxDetector(tiny_onnx, tuning=SessionTuning(2, allow_spinning=True))
    before, first_session = det.detect(bus_bgr), det.session
    # injected latencies: the adapter already calibrated on the detect() call above counts as one sample
    for ms in [10.0] * 19 + [30.0] * 20:
        det.observe_infer_ms(ms)
    assert det.tuning == SessionTuning(2, allow_spinning=False) and det.session is not first_session
    assert det.session.get_session_options().get_session_config_entry(SPINNING_KEY) == "0"
    for ms in [30.0] * 20:
        det.observe_infer_ms(ms)
    assert det.tuning == SessionTuning(1) and det.session.get_session_options().intra_op_num_threads == 1
    _same_detections(before, det.detect(bus_bgr))


def test_adaptation_off_keeps_the_session(tiny_onnx: Path) -> None:
    det = OnnxDetector(tiny_onnx, tuning=SessionTuning(2, allow_spinning=True), adapt=False)
    session = det.session
    for ms in [10.0] * 20 + [100.0] * 100:
        det.observe_infer_ms(ms)
    assert det.adapter is None and det.session is session and det.tuning.allow_spinning
