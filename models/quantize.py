"""Static int8 quantisation of a YOLO detection ONNX (onnxruntime QDQ, per-channel weights).

``quantize_model(src, dst, calib=...)`` writes ``dst``: the same graph with int8 weights and activations
everywhere except the detect head's *decode* (``float_node_names``), which stays float. The decode ends in
one concat of pixel coordinates (0..imgsz) and class scores (0..1): a single int8 scale over both ranges
rounds every score to 0, which is why quantising the whole graph scores mAP 0. Which nodes those are is
read from the graph, not from ultralytics' node names: every non-Conv node on a path from the last Conv
layers (the Convs met first walking back from the outputs) to an output.

Calibration frames go through ``OnnxDetector.input_tensor`` (the production letterbox), from one of:
reviewed cases' clean evidence frames (``review_calibration``; what the cameras really see), a folder of
images (``folder_calibration``), or synthetic street scenes (``synthetic_calibration``, a seed that is
neither the training nor the held-out set's).

The written ONNX keeps the source's metadata (``names``, ``imgsz``, ...) and adds
``urbaneye_precision=int8``, ``urbaneye_fp32_sha256`` (its parent) and ``-int8`` to ``model_version``.
``models.quantize_measure.compare_precisions`` measures an int8 model against its fp32 parent (mAP50
through ``models.evaluate``, ms per inference at one thread) and runs the int8 gate
(``models.gate.decide_int8``); ``build_int8`` quantises, measures and writes the int8 card in one call.

Example:
    >>> result = quantize_model("m.onnx", "m.int8.onnx", calib=synthetic_calibration(100))  # doctest: +SKIP
    >>> cmp = compare_precisions("m.onnx", "m.int8.onnx", "holdout/data.yaml")             # doctest: +SKIP
    >>> cmp.int8_over_fp32, cmp.map50_delta, cmp.gate.promote                               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from sqlalchemy.orm import Session

from datasets.builder import BuildOptions, reviewed_cases
from models.quantize_measure import PrecisionComparison, compare_precisions
from urbaneye.model_card import ArtifactInfo, ModelCard, Quantization, int8_card_path
from urbaneye.storage import read_evidence
from vision.detector import OnnxDetector
from vision.digest import sha256_file

log = logging.getLogger(__name__)

#: Synthetic calibration seed: neither the training set's (1) nor the held-out set's (777).
CALIB_SEED = 4242
#: Calibration frames used unless told otherwise (MinMax ranges settle well before 100 street views).
DEFAULT_CALIB_FRAMES = 100
#: Fewer reviewed frames than this and calibration falls back to synthetic scenes.
MIN_REVIEW_FRAMES = 32
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: ONNX metadata keys this module writes.
PRECISION_KEY, PARENT_SHA_KEY = "urbaneye_precision", "urbaneye_fp32_sha256"
#: onnxruntime quantisation types by name (``--activations``).
ACTIVATION_TYPES = ("int8", "uint8")
#: Calibration methods by name (``--method``): onnxruntime's MinMax (global extremes), MinMax with a
#: moving average of each frame's extremes (ignores the rare outlier frame), Percentile and Entropy (both
#: keep histograms of every activation: several GB for a 288x512 YOLOv8n at 100 frames).
CALIBRATION_METHODS = ("minmax", "minmax_avg", "percentile", "entropy")


class QuantizeError(ValueError):
    """The model cannot be quantised (not a detector, no frames to calibrate on); the message says why."""


# ------------------------------------------------------------------------------------ node selection


def float_node_names(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that must stay float: the last Conv layers and the decode after them, in graph
    order.

    Walking back from the graph outputs, the first Conv on each path is a "last Conv" (for YOLOv8/11 the
    head's class convolutions and the DFL convolution). They and every non-Conv node on a path from a last
    Conv to an output stay float: reshapes, concats of levels, softmax, sigmoid, anchor arithmetic, the
    final concat. Convs further on such a path are left to the quantiser.

    Example:
        >>> names = float_node_names(onnx.load("models/bootstrap/urbaneye-bootstrap.onnx"))  # doctest: +SKIP
        >>> "/model.22/Concat_3" in names                                                    # doctest: +SKIP
        True
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def producers_of(node: onnx.NodeProto) -> list[onnx.NodeProto]:
        return [producer[i] for i in node.input if i in producer]

    outputs = [producer[o.name] for o in graph.output if o.name in producer]
    last_convs = {}
    reaches_output: set[str] = set()
    stack, seen = list(outputs), set()
    while stack:  # whole backward closure; note the first Conv met on each path
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        reaches_output.add(node.name)
        stack.extend(producers_of(node))
    stack, seen = list(outputs), set()
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            last_convs[node.name] = node
            continue
        stack.extend(producers_of(node))
    if not last_convs:
        raise QuantizeError("no Conv layer feeds the model's outputs; expected a YOLO detection export")

    # The last Convs themselves stay float too: they are 1x1 (class logits, DFL) and cost nothing, and an
    # int8 output scale over the class logits moves low scores enough to cost a point of AP on a class.
    keep: set[str] = set(last_convs)
    stack = [c for conv in last_convs.values() for out in conv.output for c in consumers[out]]
    seen = set()
    while stack:
        node = stack.pop()
        if node.name in seen or node.name not in reaches_output:
            continue
        seen.add(node.name)
        if node.op_type != "Conv":
            keep.add(node.name)
        stack.extend(c for out in node.output for c in consumers[out])
    return [n.name for n in graph.node if n.name in keep]


# -------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """Where calibration frames come from. ``frames()`` yields BGR ``uint8`` frames ``(h, w, 3)``.

    Attributes:
        source: ``"reviews"``, ``"dir"`` or ``"synthetic"``.
        count: frames it yields.
        detail: what exactly (seed, folder, cases), for the model card.
    """

    source: str
    count: int
    detail: str
    frames: Callable[[], Iterator[np.ndarray]] = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "frames": self.count, "detail": self.detail}


def synthetic_calibration(
    count: int = DEFAULT_CALIB_FRAMES, seed: int = CALIB_SEED, size: tuple[int, int] = (960, 540)
) -> Calibration:
    """``count`` synthetic street scenes (``datasets.synth``) of ``size`` (w, h) from ``seed``."""
    from datasets.synth.images import render_one

    def frames() -> Iterator[np.ndarray]:
        for index in range(count):
            # through JPEG like the training and held-out images, and like decoded camera frames
            jpeg, _, _ = render_one(seed, index, size[0], size[1])
            yield cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    detail = f"datasets.synth seed {seed}, {size[0]}x{size[1]}, JPEG"
    return Calibration("synthetic", count, detail, frames)


def folder_calibration(folder: str | Path, count: int = DEFAULT_CALIB_FRAMES) -> Calibration:
    """Up to ``count`` images from ``folder`` (recursively, sorted by path)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise QuantizeError(f"calibration folder {folder} does not exist; pass a folder of .jpg/.png frames")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not paths:
        raise QuantizeError(f"calibration folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")

    def frames() -> Iterator[np.ndarray]:
        for path in paths:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise QuantizeError(f"calibration image {path} could not be read; remove it or replace it")
            yield frame

    return Calibration("dir", len(paths), f"{folder.resolve()} ({len(paths)} images)", frames)


def review_calibration(
    session: Session,
    store: Any,
    count: int = DEFAULT_CALIB_FRAMES,
    *,
    camera_group: str | None = None,
    min_frames: int = MIN_REVIEW_FRAMES,
) -> Calibration:
    """Clean evidence frames of the newest reviewed (confirmed or rejected) cases, up to ``count``.

    With fewer than ``min_frames`` such frames, synthetic frames instead (the detail says why). The frame
    list is read now; the images are read from ``store`` (sha256-checked) while calibrating.
    """
    refs: list[tuple[str, str]] = []
    cases = 0
    for case in reviewed_cases(session, BuildOptions(camera_group=camera_group)):
        clean = [(ev.key, ev.sha256) for ev in case.evidence if ev.variant == "clean" and ev.uploaded]
        cases += bool(clean)
        refs.extend(clean[: count - len(refs)])
        if len(refs) >= count:
            break
    if len(refs) < min_frames:
        synth = synthetic_calibration(count)
        why = f"only {len(refs)} reviewed evidence frames (< {min_frames}); {synth.detail}"
        return Calibration(synth.source, synth.count, why, synth.frames)

    def frames() -> Iterator[np.ndarray]:
        for key, sha in refs:
            data = read_evidence(store, key, sha)
            frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if frame is None:
                raise QuantizeError(f"evidence object {key} is not an image")
            yield frame

    group = f", group {camera_group}" if camera_group else ""
    return Calibration("reviews", len(refs), f"clean evidence of {cases} reviewed cases{group}", frames)


class _TensorReader:
    """onnxruntime ``CalibrationDataReader``: one production-letterboxed input tensor per frame."""

    def __init__(self, detector: OnnxDetector, frames: Iterator[np.ndarray]) -> None:
        self._detector, self._frames, self.count = detector, frames, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        self.count += 1
        return {self._detector.input_name: self._detector.input_tensor(frame)}


# ------------------------------------------------------------------------------------- quantisation


@dataclass(frozen=True)
class QuantizeResult:
    """One quantised model: where, from what, calibrated how, and how long it took."""

    src: Path
    dst: Path
    sha256: str
    fp32_sha256: str
    size_bytes: int
    float_nodes: tuple[str, ...]
    calibration: Calibration
    activation_type: str
    method: str
    quantize_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "dst": str(self.dst),
            "sha256": self.sha256,
            "fp32_sha256": self.fp32_sha256,
            "size_bytes": self.size_bytes,
            "float_nodes": list(self.float_nodes),
            "calibration": self.calibration.to_json(),
            "activation_type": self.activation_type,
            "calibration_method": self.method,
            "weights": "int8 per-channel",
            "format": "QDQ",
            "quantize_s": round(self.quantize_s, 2),
        }


def quantize_model(
    src: str | Path,
    dst: str | Path,
    *,
    calib: Calibration | None = None,
    activation_type: str = "uint8",
    method: str = "minmax",
) -> QuantizeResult:
    """Quantise ``src`` (fp32 YOLO detection ONNX) to ``dst``: static QDQ, int8 per-channel weights.

    Args:
        calib: calibration frames (default: ``synthetic_calibration()``).
        activation_type: ``"uint8"`` (asymmetric; fastest on x86 without VNNI, and the default) or
            ``"int8"``.
        method: calibration method, one of ``CALIBRATION_METHODS``.

    Raises:
        QuantizeError: ``src`` is not a loadable detector, or the quantised model does not load.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    if activation_type not in ACTIVATION_TYPES:
        raise QuantizeError(f"activation type {activation_type!r} unknown; use one of {ACTIVATION_TYPES}")
    if method not in CALIBRATION_METHODS:
        raise QuantizeError(f"calibration method {method!r} unknown; use one of {CALIBRATION_METHODS}")
    calib = calib or synthetic_calibration()
    t0 = time.perf_counter()
    fp32 = OnnxDetector(src)  # validates src; its letterbox makes the calibration tensors
    source_meta = dict(fp32.metadata)
    if source_meta.get(PRECISION_KEY) == "int8":
        raise QuantizeError(f"{src} is already int8 (metadata {PRECISION_KEY}); quantise its fp32 parent")
    with tempfile.TemporaryDirectory(prefix="ue-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        float_nodes = float_node_names(onnx.load(str(pre)))
        reader = _TensorReader(fp32, calib.frames())
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "minmax_avg": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
            extra_options={"CalibMovingAverage": method == "minmax_avg"},
        )
        if reader.count == 0:
            raise QuantizeError(f"calibration {calib.detail} yielded no frames")
        _write_with_metadata(out, dst, source_meta, fp32.sha256)
    try:
        OnnxDetector(dst)
    except Exception as exc:
        raise QuantizeError(f"the quantised {dst} does not load through our detector: {exc}") from None
    seconds = time.perf_counter() - t0
    log.info("quantised %s -> %s in %.1f s (%d float nodes)", src, dst, seconds, len(float_nodes))
    return QuantizeResult(
        src=src,
        dst=dst,
        sha256=sha256_file(dst),
        fp32_sha256=fp32.sha256,
        size_bytes=dst.stat().st_size,
        float_nodes=tuple(float_nodes),
        calibration=Calibration(calib.source, reader.count, calib.detail, calib.frames),
        activation_type=activation_type,
        method=method,
        quantize_s=seconds,
    )


def _write_with_metadata(quantised: Path, dst: Path, source_meta: dict[str, str], fp32_sha256: str) -> None:
    """Save ``quantised`` to ``dst`` (atomically) with the fp32 model's metadata and our precision keys."""
    proto = onnx.load(str(quantised))
    meta = dict(source_meta)
    meta[PRECISION_KEY] = "int8"
    meta[PARENT_SHA_KEY] = fp32_sha256
    meta["model_version"] = f"{source_meta.get('model_version') or dst.stem.split('.')[0]}-int8"
    del proto.metadata_props[:]
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    onnx.save(proto, str(tmp))
    os.replace(tmp, dst)


# ------------------------------------------------------------------------------------------- card


def fp32_card_of(src: str | Path) -> ModelCard | None:
    """The card beside ``src`` that describes exactly that file (``card.json`` whose ONNX sha256 matches)."""
    src = Path(src)
    for path in (src.with_suffix(".card.json"), src.parent / "card.json"):
        if path.is_file():
            card = ModelCard.load(path)
            onnx_art = card.artifacts.get("onnx")
            if onnx_art is not None and onnx_art.sha256 == sha256_file(src):
                return card
    return None


def int8_card(
    result: QuantizeResult,
    comparison: PrecisionComparison | None,
    parent: ModelCard | None,
    command: str | None = None,
) -> ModelCard:
    """The int8 model's own card: the parent's description (when its card is known), ``precision: int8``,
    how it was quantised, and (when measured) the held-out accuracy against the parent and the gate."""
    det = OnnxDetector(result.dst)
    accuracy = comparison.to_json() if comparison else {}
    if command:
        accuracy["command"] = command
    gate = accuracy.pop("gate", {})
    quantization = Quantization(
        parent_file=str(result.src),
        parent_sha256=result.fp32_sha256,
        method=f"onnxruntime static QDQ, int8 per-channel weights, {result.method} calibration",
        activation_type=result.activation_type,
        calibration=result.calibration.to_json(),
        float_nodes=list(result.float_nodes),
        accuracy=accuracy,
        gate=gate,
    )
    metrics = {}
    if comparison is not None:
        metrics["holdout"] = {**comparison.int8, "fp32_map50": comparison.fp32["map50"]}
    base = dict(
        name=f"{parent.name if parent else det.metadata.get('urbaneye_name') or result.src.stem}-int8",
        classes=list(det.labels),
        imgsz_px=list(det.imgsz),
        architecture=parent.architecture if parent else "",
        dataset=parent.dataset if parent else {},
        recipe=parent.recipe if parent else {},
        training=parent.training if parent else {},
        init_weights=parent.init_weights if parent else None,
        class_map=parent.class_map if parent else {},
    )
    return ModelCard(
        **base,
        artifacts={"onnx": ArtifactInfo.of(result.dst, result.dst.parent, parent_sha256=result.fp32_sha256)},
        metrics=metrics,
        precision="int8",
        quantization=quantization,
    )


def write_int8_card(
    result: QuantizeResult, comparison: PrecisionComparison | None = None, command: str | None = None
) -> tuple[ModelCard, Path]:
    """Write ``int8_card`` beside the int8 model (``m.int8.card.json``); returns it and its path."""
    card = int8_card(result, comparison, fp32_card_of(result.src), command)
    return card, card.save(int8_card_path(result.dst))


@dataclass(frozen=True)
class Int8Build:
    """What ``build_int8`` made: the quantised model, its measurement (None without a held-out set), its card."""

    result: QuantizeResult
    comparison: PrecisionComparison | None
    card: ModelCard
    card_path: Path

    def to_json(self) -> dict[str, Any]:
        return {
            **self.result.to_json(),
            "comparison": self.comparison.to_json() if self.comparison else None,
            "card": str(self.card_path),
        }


def build_int8(
    src: str | Path,
    dst: str | Path,
    *,
    calib: Calibration | None = None,
    data_yaml: str | Path | None = None,
    split: str = "all",
    activation_type: str = "uint8",
    method: str = "minmax",
    command: str | None = None,
) -> Int8Build:
    """Quantise ``src`` to ``dst``, measure it against ``src`` on ``data_yaml`` (if given) and write its card.

    The one call behind ``urbaneye quantize`` (and the benchmark's int8 figures).

    Example:
        >>> b = build_int8("m.onnx", "m.int8.onnx", data_yaml="holdout/data.yaml")  # doctest: +SKIP
        >>> b.comparison.int8_over_fp32, b.comparison.map50_delta, b.card.quantization.passed  # doctest: +SKIP
    """
    result = quantize_model(src, dst, calib=calib, activation_type=activation_type, method=method)
    comparison = compare_precisions(src, dst, data_yaml, split) if data_yaml else None
    card, card_path = write_int8_card(result, comparison, command)
    return Int8Build(result, comparison, card, card_path)
