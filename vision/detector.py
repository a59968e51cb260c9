"""ONNX Runtime object detector for ultralytics YOLOv8 / YOLO11 detection exports.

Runtime code never imports torch or ultralytics: the model is an ONNX file written by
``yolo export format=onnx`` (class names and input size come from the metadata ultralytics writes).

Three named, individually timed stages run per call, like the ultralytics predictor:
``preprocess`` (letterbox into a reused NCHW float32 buffer) -> ``infer`` (one ``session.run``) ->
``postprocess`` (vectorised decode, per-class thresholds, class-aware NMS, class map, rescale).

Example:
    >>> det = OnnxDetector("models/bootstrap/urbaneye-bootstrap.onnx")  # doctest: +SKIP
    >>> detections = det.detect(frame_bgr)                                # doctest: +SKIP
    >>> detections.kinds, detections.data["label"]                        # doctest: +SKIP
"""

from __future__ import annotations

import ast
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.class_maps import ClassMapError, resolve_class_map
from vision.config import ModelConfig
from vision.digest import sha256_file
from vision.ort_tuning import SessionTuning, ThreadAdapter
from vision.types import OBJECT_KINDS, Detections

#: Where the shipped model lives when neither ``path`` nor ``ModelConfig.path`` names one.
BOOTSTRAP_MODEL_PATH = (
    Path(__file__).resolve().parent.parent / "models" / "bootstrap" / "urbaneye-bootstrap.onnx"
)

log = logging.getLogger(__name__)

#: Idle intra-op threads sleep instead of spin-waiting: measured under load (``urbaneye bench --sections
#: tuning --background-load 1``), spinning threads take the cores that decoding and other workers need.
DEFAULT_ALLOW_SPINNING = False

#: Execution providers tried in this order when present in ``onnxruntime.get_available_providers()``.
PREFERRED_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)

_EXPECTED = "expected an ultralytics YOLO detection export with output (1, 4+nc, N)"
_PAD_VALUE = 114  # ultralytics letterbox grey; the model was trained with it
_MAX_NMS_CANDIDATES = 30_000  # like ultralytics: beyond this, NMS time explodes on garbage models
MAX_DETECTIONS = 300
MAX_DYNAMIC_BATCH = (
    16  # frames per run for dynamic-batch models: bounds the input buffer (16 x 4.9 MB at 640)
)


class ModelLoadError(ValueError):
    """The model file is missing, not ONNX, or not a YOLO detection export. The message says what was expected."""


@dataclass
class Profile:
    """Accumulated wall time of one named stage (``perf_counter``; only for measuring, never for logic)."""

    name: str
    total_s: float = 0.0
    count: int = 0
    last_ms: float = 0.0
    _t0: float = field(default=0.0, repr=False)

    def __enter__(self) -> Profile:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        dt_s = time.perf_counter() - self._t0
        self.total_s += dt_s
        self.count += 1
        self.last_ms = dt_s * 1000.0

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self.total_s / self.count if self.count else 0.0

    def reset(self) -> None:
        self.total_s, self.count, self.last_ms = 0.0, 0, 0.0


@dataclass
class StageTimes:
    """Per-stage timing of a detector: ``preprocess``, ``infer``, ``postprocess`` (one count per call)."""

    preprocess: Profile = field(default_factory=lambda: Profile("preprocess"))
    infer: Profile = field(default_factory=lambda: Profile("infer"))
    postprocess: Profile = field(default_factory=lambda: Profile("postprocess"))

    def summary_ms(self) -> dict[str, float]:
        """Mean milliseconds per call of each stage, e.g. ``{"preprocess": 1.2, "infer": 40.1, ...}``."""
        return {p.name: round(p.mean_ms, 3) for p in (self.preprocess, self.infer, self.postprocess)}

    def reset(self) -> None:
        for p in (self.preprocess, self.infer, self.postprocess):
            p.reset()


@dataclass(frozen=True)
class _Letterbox:
    """How one frame shape maps into the model input: scale ``gain`` then offset by ``(left, top)`` px."""

    gain: float
    new_w: int
    new_h: int
    left: int
    top: int


def _letterbox_params(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> _Letterbox:
    # Same arithmetic as ultralytics LetterBox(center=True, auto=False), so boxes match its predictions.
    h, w = frame_hw
    gain = min(input_hw[0] / h, input_hw[1] / w)
    new_w, new_h = max(round(w * gain), 1), max(round(h * gain), 1)
    left = round((input_hw[1] - new_w) / 2 - 0.1)
    top = round((input_hw[0] - new_h) / 2 - 0.1)
    return _Letterbox(gain=gain, new_w=new_w, new_h=new_h, left=left, top=top)


def _parse_literal(value: str | None, key: str, path: Path) -> Any:
    if value is None:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise ModelLoadError(
            f"{path}: metadata '{key}' is not a Python literal ({value[:80]!r}): {exc}"
        ) from None


def _parse_names(raw: Any, path: Path) -> list[str]:
    if isinstance(raw, Mapping):
        try:
            ordered = sorted((int(k), str(v)) for k, v in raw.items())
        except (TypeError, ValueError):
            raise ModelLoadError(f"{path}: metadata 'names' keys must be class indexes 0..nc-1") from None
        if [i for i, _ in ordered] != list(range(len(ordered))):
            raise ModelLoadError(f"{path}: metadata 'names' indexes are not 0..{len(ordered) - 1}")
        return [name for _, name in ordered]
    if isinstance(raw, list | tuple) and raw:
        return [str(n) for n in raw]
    raise ModelLoadError(
        f"{path}: metadata 'names' must be a dict {{0: 'person', ...}} or a list; got {raw!r}"
    )


def _shape_text(shape: list[Any] | tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _select_providers(requested: list[str] | None, available: list[str]) -> list[str]:
    if requested is not None:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelLoadError(
                f"execution provider(s) {missing} not available in this onnxruntime build; available: {available}"
            )
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]


class OnnxDetector:
    """Runs an ultralytics YOLO detection ONNX export on BGR frames and returns ``Detections``.

    Args:
        path: the ``.onnx`` file; default ``config.path``, then the shipped bootstrap model.
        config: class map, per-class score thresholds, IoU threshold, CPU threads.
        providers: onnxruntime execution providers; default: the fastest available of
            TensorRT, CUDA, OpenVINO, CoreML, then CPU.
        tuning: session options; default ``config.intra_op_threads`` threads (0 = all cores), spinning
            ``DEFAULT_ALLOW_SPINNING``, sequential.
        adapt: on CPU, step threads/spinning down while inference is much slower than at start-up
            (``vision.ort_tuning.ThreadAdapter``) and probe back up later; ``tuning`` is the current one.

    Attributes:
        labels: model class names from the ONNX metadata, in output order.
        imgsz: ``(h, w)`` model input size in px.
        version: ``"<metadata model_version or file stem>-<sha256[:12]>"``.
        sha256: hex digest of the model file.
        batch: static batch size of the model, or None if the batch axis is dynamic.
        times: per-stage timing of all calls so far.

    Not thread-safe: input buffers are reused between calls. Use one instance per thread or process.

    Raises:
        ModelLoadError: at construction, for a missing file, a file that is not ONNX, or an ONNX that is not a
            YOLO detection export (classifier, segmentation, pose, wrong output shape, no class names).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        config: ModelConfig | None = None,
        providers: list[str] | None = None,
        *,
        tuning: SessionTuning | None = None,
        adapt: bool = True,
    ) -> None:
        import onnxruntime as ort  # local: keep `import vision` cheap for pure uses

        self.config = config or ModelConfig()
        self.path = Path(path or self.config.path or BOOTSTRAP_MODEL_PATH)
        if not self.path.is_file():
            raise ModelLoadError(
                f"model file {self.path} does not exist; set model.path in the cameras file or pass a path "
                "to an ONNX exported with `yolo export format=onnx`"
            )
        self.sha256 = sha256_file(self.path)

        # One graph at a time (sequential, one inter-op thread); parallelism comes from camera workers.
        default = SessionTuning(self.config.intra_op_threads, allow_spinning=DEFAULT_ALLOW_SPINNING)
        self.tuning = (tuning or default).resolved(os.cpu_count() or 1)
        self._chosen = _select_providers(providers, ort.get_available_providers())
        try:
            self.session = self._open_session(self.tuning)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"{self.path} could not be loaded as an ONNX model ({first_line}); {_EXPECTED}, "
                "as written by `yolo export format=onnx`"
            ) from None
        self.providers: list[str] = self.session.get_providers()
        # Only CPU sessions compete with decoding and the other workers for cores.
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        self.adapter: ThreadAdapter | None = ThreadAdapter(self.tuning) if adapt and on_cpu else None

        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._inspect_model()
        self._warm_up()
        self.version = f"{self.metadata.get('model_version') or self.path.stem}-{self.sha256[:12]}"
        self._build_class_tables()

        self.times = StageTimes()
        self._tensor: np.ndarray | None = None  # reused NCHW input buffer
        self._letterboxes: dict[tuple[int, int], _Letterbox] = {}
        self._slot_shapes: list[tuple[int, int] | None] = []  # frame shape last written into each batch slot
        self._resized_buf: np.ndarray | None = None

    # ------------------------------------------------------------------ load-time checks

    def _inspect_model(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        meta, path = self.metadata, self.path
        task = meta.get("task")
        out_shapes = [list(o.shape) for o in outputs]
        got = " and ".join(_shape_text(s) for s in out_shapes)

        if task and task != "detect":
            guess = {
                "classify": "a classification model",
                "segment": "a segmentation model",
                "pose": "a pose model",
            }
            raise ModelLoadError(
                f"{path}: {_EXPECTED}; got {got} and metadata task '{task}' — "
                f"{guess.get(task, 'not a detection model')}? Export a detection model (yolo detect train ...)"
            )
        if len(outputs) != 1:
            hint = (
                " — a segmentation model (second output looks like mask prototypes)?"
                if len(outputs) == 2
                else ""
            )
            raise ModelLoadError(f"{path}: {_EXPECTED}; got {len(outputs)} outputs {got}{hint}")
        if len(out_shapes[0]) == 2:
            raise ModelLoadError(f"{path}: {_EXPECTED}; got {got} — a classification model?")
        if len(out_shapes[0]) != 3:
            raise ModelLoadError(f"{path}: {_EXPECTED}; got {got}")
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = ", ".join(_shape_text(i.shape) for i in inputs)
            raise ModelLoadError(f"{path}: expected one image input (batch, 3, h, w); got {shapes}")
        in_shape = inputs[0].shape
        if isinstance(in_shape[1], int) and in_shape[1] != 3:
            raise ModelLoadError(
                f"{path}: expected a 3-channel image input (batch, 3, h, w); got {_shape_text(in_shape)}"
            )
        if "kpt_shape" in meta:
            raise ModelLoadError(f"{path}: {_EXPECTED}; got {got} with 'kpt_shape' metadata — a pose model?")

        raw_names = _parse_literal(meta.get("names"), "names", path)
        if raw_names is None:
            raise ModelLoadError(
                f"{path}: no 'names' metadata; {_EXPECTED} whose metadata lists class names "
                "(ultralytics writes it; re-export with `yolo export format=onnx`)"
            )
        self.labels: list[str] = _parse_names(raw_names, path)
        nc = len(self.labels)

        imgsz = _parse_literal(meta.get("imgsz"), "imgsz", path)
        if imgsz is None:
            h, w = in_shape[2], in_shape[3]
            if not (isinstance(h, int) and isinstance(w, int)):
                raise ModelLoadError(
                    f"{path}: input size is dynamic {_shape_text(in_shape)} and no 'imgsz' metadata"
                )
            imgsz = [h, w]
        if isinstance(imgsz, int):
            imgsz = [imgsz, imgsz]
        self.imgsz: tuple[int, int] = (int(imgsz[0]), int(imgsz[1]))
        self.batch: int | None = in_shape[0] if isinstance(in_shape[0], int) else None
        self.input_name: str = inputs[0].name
        self.input_dtype = np.float16 if "float16" in inputs[0].type else np.float32

        args = _parse_literal(meta.get("args"), "args", path) if meta.get("args") else {}
        self._end2end = meta.get("end2end") == "True" or (isinstance(args, dict) and bool(args.get("nms")))
        self.nc = nc
        self.layout: str | None = None
        # Dynamic exports have symbolic dims; their layout is decided from the warm-up run's real output.
        if all(isinstance(d, int) for d in out_shapes[0]):
            self.layout = self._decide_layout(tuple(out_shapes[0]))

    def _decide_layout(self, shape: tuple[Any, ...]) -> str:
        """Which output layout a (b, d1, d2) output has, or ModelLoadError saying what was expected."""
        # (b, 4+nc, N) is what ultralytics writes; (b, N, 4+nc) comes from exports that transpose;
        # (b, N, 6) rows of x1, y1, x2, y2, score, class come from end-to-end (NMS-in-graph) exports.
        nc = self.nc
        d1, d2 = shape[1], shape[2]
        if self._end2end and d2 == 6:
            return "end2end"
        if d1 == 4 + nc:
            return "channels_first"
        if d2 == 4 + nc:
            return "channels_last"
        extra = " — a segmentation/pose/OBB head with extra channels?" if d1 > 4 + nc and d2 > 4 + nc else ""
        raise ModelLoadError(
            f"{self.path}: {_EXPECTED} where nc={nc} class names, i.e. (1, {4 + nc}, N) or (1, N, {4 + nc}); "
            f"got {_shape_text(shape)}. The 'names' metadata does not match the model head{extra}"
        )

    def _build_class_tables(self) -> None:
        """Per model class: the ObjectKind index it maps to (-1 = dropped) and its score threshold."""
        kinds = {str(k): i for i, k in enumerate(OBJECT_KINDS)}
        try:
            resolved = resolve_class_map(self.labels, self.config.class_map)
        except ClassMapError as exc:
            raise ModelLoadError(f"{self.path}: model.{exc}") from None
        kind_of_class = np.array([-1 if k is None else kinds[str(k)] for k in resolved], np.int32)
        thresholds = self.config.score_thresholds
        stray = [key for key in thresholds if key not in self.labels and key not in kinds]
        if stray:
            raise ModelLoadError(
                f"{self.path}: model.score_thresholds has key(s) {stray} that are neither model labels "
                f"{self.labels} nor object kinds {sorted(kinds)}"
            )
        thr = np.empty(self.nc, np.float32)
        for c, label in enumerate(self.labels):
            kind = str(OBJECT_KINDS[kind_of_class[c]]) if kind_of_class[c] >= 0 else None
            # A threshold may be keyed by model label or by object kind; the label is more specific.
            thr[c] = thresholds.get(
                label, thresholds.get(kind, self.config.default_score_threshold) if kind else 1.0
            )
        self._kept_classes = np.flatnonzero(kind_of_class >= 0)
        self._kind_of_kept = kind_of_class[self._kept_classes]
        self._thr_of_kept = thr[self._kept_classes]
        self._thr_col = self._thr_of_kept[:, None]
        self._thr_by_class = np.where(kind_of_class >= 0, thr, np.inf)  # dropped classes never pass
        self._labels_arr = np.asarray(self.labels, dtype=object)
        self.kind_of_class = kind_of_class

    def _warm_up(self) -> None:
        # One run at load: allocates ORT arenas (the first call is slow) and proves the real output shape.
        n = self.batch or 1
        tensor = np.full((n, 3, *self.imgsz), _PAD_VALUE / 255.0, dtype=self.input_dtype)
        try:
            (out,) = self.session.run(None, {self.input_name: tensor})
        except Exception as exc:
            raise ModelLoadError(f"{self.path}: a test inference at {self.imgsz} failed: {exc}") from None
        if out.ndim != 3:
            raise ModelLoadError(
                f"{self.path}: {_EXPECTED}; a test inference returned {_shape_text(out.shape)}"
            )
        self.layout = self._decide_layout(out.shape)

    # ------------------------------------------------------------------ public API

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        """Detect objects in one BGR ``uint8`` frame of shape ``(h, w, 3)``.

        Returns:
            ``Detections`` in frame pixels; ``class_id`` indexes ``OBJECT_KINDS`` (class map applied),
            ``data["label"]`` holds the model label and ``data["model_class"]`` its index.
        """
        return self.detect_batch([frame_bgr])[0]

    def detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        """Detect in several frames, using the model's batch axis (static batch: chunks, padded)."""
        results: list[Detections] = []
        step = self.batch or max(min(len(frames), MAX_DYNAMIC_BATCH), 1)
        for start in range(0, len(frames), step):
            chunk = frames[start : start + step]
            with self.times.preprocess:
                tensor, boxes = self._preprocess(chunk)
            with self.times.infer:
                (out,) = self.session.run(None, {self.input_name: tensor})
            self.observe_infer_ms(self.times.infer.last_ms)
            with self.times.postprocess:
                results.extend(
                    self._postprocess(out[i], boxes[i], chunk[i].shape[:2]) for i in range(len(chunk))
                )
        return results

    def _open_session(self, tuning: SessionTuning) -> Any:
        import onnxruntime as ort

        options = tuning.session_options(ort)
        return ort.InferenceSession(str(self.path), sess_options=options, providers=self._chosen)

    def observe_infer_ms(self, infer_ms: float) -> None:
        """Feed one inference latency to the adapter (``detect`` feeds each run's); when the adapter steps,
        the session is rebuilt with its new tuning (same model file, same providers)."""
        tuning = self.adapter.observe(infer_ms) if self.adapter is not None else None
        if tuning is None or tuning == self.tuning:
            return
        state = self.adapter.state() if self.adapter else None
        try:
            self.session = self._open_session(tuning)
        except Exception as exc:  # keep serving with the session we have
            log.error(
                "detector %s: cannot rebuild the session as %s (%s); adaptation off", self.path, tuning, exc
            )
            self.adapter = None
            return
        log.warning(
            "detector %s: inference at %.2fx its calibrated latency (%s ms); session now %s (was %s)",
            self.path.name,
            state.last_ratio if state and state.last_ratio else 0.0,
            round(state.baseline_ms, 1) if state and state.baseline_ms else "?",
            tuning.label(),
            self.tuning.label(),
        )
        self.tuning = tuning

    def input_tensor(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The NCHW tensor ``detect(frame_bgr)`` feeds the session, as a copy (for benchmarks that time a
        bare ``session.run`` on the same input).

        Example:
            >>> feed = {det.input_name: det.input_tensor(frame)}  # doctest: +SKIP
            >>> det.session.run(None, feed)                        # doctest: +SKIP
        """
        tensor, _ = self._preprocess([frame_bgr])
        return tensor.copy()

    # ------------------------------------------------------------------ stages

    def _preprocess(self, frames: list[np.ndarray]) -> tuple[np.ndarray, list[_Letterbox]]:
        n = self.batch or len(frames)
        h, w = self.imgsz
        if self._tensor is None or self._tensor.shape[0] != n:
            self._tensor = np.empty((n, 3, h, w), dtype=self.input_dtype)
            self._slot_shapes = [None] * n
        boxes: list[_Letterbox] = []
        for slot, frame in enumerate(frames):
            frame = _as_bgr(frame)
            hw = (frame.shape[0], frame.shape[1])
            lb = self._letterboxes.get(hw)
            if lb is None:
                # Streams have one frame shape; callers passing many crop sizes must not grow this forever.
                if len(self._letterboxes) > 64:
                    self._letterboxes.clear()
                lb = self._letterboxes[hw] = _letterbox_params(hw, self.imgsz)
            target = self._tensor[slot]
            if self._slot_shapes[slot] != hw:  # padding only changes with the frame shape
                target.fill(_PAD_VALUE / 255.0)
                self._slot_shapes[slot] = hw
            resized = self._resize_buffer(lb)
            cv2.resize(frame, (lb.new_w, lb.new_h), dst=resized, interpolation=cv2.INTER_LINEAR)
            region = target[:, lb.top : lb.top + lb.new_h, lb.left : lb.left + lb.new_w]
            # BGR->RGB, HWC->CHW and /255 in one pass per channel, straight into the input tensor.
            for c in range(3):
                np.multiply(resized[:, :, 2 - c], np.float32(1.0 / 255.0), out=region[c], casting="unsafe")
            boxes.append(lb)
        return self._tensor, boxes

    def _resize_buffer(self, lb: _Letterbox) -> np.ndarray:
        buf = self._resized_buf
        if buf is None or buf.shape[:2] != (lb.new_h, lb.new_w):
            buf = self._resized_buf = np.empty((lb.new_h, lb.new_w, 3), np.uint8)
        return buf

    def _postprocess(self, out: np.ndarray, lb: _Letterbox, frame_hw: tuple[int, int]) -> Detections:
        """Decode one image's raw output into ``Detections`` in frame pixels."""
        if self.layout == "end2end":
            return self._postprocess_end2end(out, lb, frame_hw)
        pred = out if self.layout == "channels_first" else out.T  # (4+nc, N), a view either way
        if len(self._kept_classes) == 0:
            return Detections.empty()
        scores = pred[4 + self._kept_classes]  # (k, N) only classes we keep
        # Best class among those clearing their own threshold: raising one noisy class's threshold must not
        # hide an anchor that another class claims confidently.
        passing = np.where(scores >= self._thr_col, scores, -1.0)
        conf_all = passing.max(axis=0)
        cand = np.flatnonzero(conf_all >= 0)
        if len(cand) == 0:
            return Detections.empty()
        k = passing[:, cand].argmax(axis=0)
        conf = conf_all[cand]
        if len(cand) > _MAX_NMS_CANDIDATES:
            top = np.argpartition(-conf, _MAX_NMS_CANDIDATES)[:_MAX_NMS_CANDIDATES]
            cand, k, conf = cand[top], k[top], conf[top]
        cxcywh = pred[:4, cand].T.astype(np.float32)  # (m, 4) in input px
        xywh = cxcywh.copy()
        xywh[:, :2] -= cxcywh[:, 2:] / 2
        kind = self._kind_of_kept[k]
        # Class-aware NMS over object kinds: two labels mapped to one kind must not double-count an object.
        keep = cv2.dnn.NMSBoxesBatched(xywh, conf.astype(np.float32), kind, 0.0, self.config.iou_threshold)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)[:MAX_DETECTIONS]
        xyxy = np.empty((len(keep), 4), np.float32)
        xyxy[:, :2] = xywh[keep, :2]
        xyxy[:, 2:] = xywh[keep, :2] + xywh[keep, 2:]
        model_class = self._kept_classes[k[keep]]
        return self._finish(xyxy, conf[keep], kind[keep], model_class, lb, frame_hw)

    def _postprocess_end2end(self, out: np.ndarray, lb: _Letterbox, frame_hw: tuple[int, int]) -> Detections:
        rows = out  # (N, 6): x1, y1, x2, y2, score, class — NMS already done in the graph
        model_class = rows[:, 5].astype(np.int64)
        valid = (model_class >= 0) & (model_class < self.nc)
        rows, model_class = rows[valid], model_class[valid]
        kind = self.kind_of_class[model_class]
        thr = self._thr_by_class[model_class]
        ok = rows[:, 4] >= thr
        return self._finish(
            rows[ok, :4].astype(np.float32), rows[ok, 4], kind[ok], model_class[ok], lb, frame_hw
        )

    def _finish(
        self,
        xyxy_input: np.ndarray,
        conf: np.ndarray,
        kind: np.ndarray,
        model_class: np.ndarray,
        lb: _Letterbox,
        frame_hw: tuple[int, int],
    ) -> Detections:
        """Letterbox px -> frame px, clipped; attach model labels."""
        h, w = frame_hw
        xyxy = xyxy_input.copy()
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - lb.left) * (w / lb.new_w)
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - lb.top) * (h / lb.new_h)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        return Detections(
            xyxy=xyxy,
            confidence=conf.astype(np.float32),
            class_id=kind.astype(np.int32),
            data={
                "label": self._labels_arr[model_class].astype(str),
                "model_class": model_class.astype(np.int32),
            },
        )

    def __repr__(self) -> str:
        return (
            f"OnnxDetector({str(self.path)!r}, version={getattr(self, 'version', None)!r}, "
            f"imgsz={getattr(self, 'imgsz', None)}, labels={getattr(self, 'labels', None)})"
        )


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(
            f"detector input must be a uint8 numpy image (h, w, 3) BGR; got "
            f"{type(frame).__name__} {getattr(frame, 'dtype', '')}; decode frames with cv2 (BGR, uint8)"
        )
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"detector input must have shape (h, w, 3) BGR; got {frame.shape}")
    return frame
