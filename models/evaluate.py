"""Measure an ONNX detector on a YOLO dataset split through OUR inference path.

Frames go through ``vision.detector.OnnxDetector`` exactly as in the stream workers (letterbox, decode,
class map, NMS), never through ultralytics, so the figures describe what production runs. Scoring is
``vision.metrics`` (COCO-style AP). AP uses every detection down to ``MAP_CONF_THRESHOLD``; precision,
recall and the confusion matrix use the operating threshold (``ModelConfig.default_score_threshold``).

Example:
    >>> report = evaluate_model("models/bootstrap/urbaneye-bootstrap.onnx", "/work/data/holdout/data.yaml",
    ...                         "all")  # doctest: +SKIP
    >>> report["map50"], report["per_class"]["person"]["ap50"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.data_yaml import describe_dataset, read_data_yaml, split_images
from urbaneye.model_card import ModelCard
from vision.config import ModelConfig
from vision.detector import OnnxDetector
from vision.metrics import RECALL_POINTS, ImageBoxes, evaluate_detections
from vision.types import OBJECT_KINDS

log = logging.getLogger(__name__)

#: Score floor for AP: low enough that the PR curve reaches the model's full recall.
MAP_CONF_THRESHOLD = 0.001
#: ``split`` value meaning every image of train, val and test.
ALL_SPLITS = "all"


def label_path(image_path: Path) -> Path:
    """YOLO convention: ``.../images/<split>/x.jpg`` -> ``.../labels/<split>/x.txt``."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image_path.with_suffix(".txt")


def read_yolo_labels(path: Path, width_px: int, height_px: int) -> tuple[np.ndarray, np.ndarray]:
    """``(xyxy (n, 4) px, class_id (n,))`` from a YOLO label file; a missing file means no objects."""
    if not path.is_file():
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    try:
        arr = np.asarray([[float(v) for v in row[:5]] for row in rows], np.float64)
    except ValueError as exc:
        raise ValueError(f"label file {path} is not 'class cx cy w h' per line: {exc}") from None
    if arr.shape[1] != 5:
        raise ValueError(
            f"label file {path} has a line with fewer than 5 numbers; expected 'class cx cy w h'"
        )
    cx, cy, w, h = arr[:, 1] * width_px, arr[:, 2] * height_px, arr[:, 3] * width_px, arr[:, 4] * height_px
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return xyxy, arr[:, 0].astype(np.int64)


def _images_of(data_yaml: Path, split: str) -> list[Path]:
    if split != ALL_SPLITS:
        return split_images(data_yaml, split)
    data = read_data_yaml(data_yaml)
    images: list[Path] = []
    for name in ("train", "val", "test"):
        if data.get(name):
            images.extend(split_images(data_yaml, name))
    return sorted(set(images))


def evaluate_model(
    onnx_path: str | Path,
    data_yaml: str | Path,
    split: str = "val",
    *,
    plots_dir: str | Path | None = None,
    operating_threshold: float | None = None,
    intra_op_threads: int | None = None,
) -> dict[str, Any]:
    """Run ``onnx_path`` over ``split`` of ``data_yaml`` with ``OnnxDetector`` and score it.

    Args:
        onnx_path: YOLO detection ONNX (class names in its metadata must be object kinds or class-mapped).
        data_yaml: YOLO dataset; its class names must be ``vision.types.ObjectKind`` values.
        split: ``train``, ``val``, ``test`` or ``all`` (every image, e.g. a held-out set).
        plots_dir: where to write ``pr_curve.png``, ``confusion_matrix.png`` and ``metrics.json``;
            None writes no files.
        operating_threshold: score threshold for precision/recall/confusion (default: ModelConfig's).
        intra_op_threads: onnxruntime CPU threads (default: ModelConfig's).

    Returns:
        ``{"map50", "map50_95", "per_class": {name: {"ap50", "ap50_95", "precision", "recall", "f1",
        "instances", "best_f1_conf"}}, "images", "split", "conf_threshold", "map_conf_threshold",
        "model", "model_sha256"}``; AP of a class without ground truth is None.
    """
    onnx_path, data_yaml = Path(onnx_path), Path(data_yaml)
    names: list[str] = read_data_yaml(data_yaml)["names"]
    kinds = [str(k) for k in OBJECT_KINDS]
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise ValueError(
            f"{data_yaml}: class names {unknown} are not UrbanEye object kinds {kinds}; "
            "relabel the dataset with those names"
        )
    # Detector class ids index OBJECT_KINDS; the dataset's index its own names. Score in dataset order.
    kind_to_ds = np.full(len(kinds), -1, np.int64)
    for i, n in enumerate(names):
        kind_to_ds[kinds.index(n)] = i

    defaults = ModelConfig()
    op_thr = defaults.default_score_threshold if operating_threshold is None else float(operating_threshold)
    config = ModelConfig(
        path=str(onnx_path),
        default_score_threshold=MAP_CONF_THRESHOLD,
        iou_threshold=defaults.iou_threshold,
        intra_op_threads=defaults.intra_op_threads if intra_op_threads is None else intra_op_threads,
    )
    detector = OnnxDetector(onnx_path, config=config)
    images = _images_of(data_yaml, split)
    if not images:
        raise ValueError(f"{data_yaml} split '{split}' has no images")

    preds: list[ImageBoxes] = []
    truths: list[ImageBoxes] = []
    for n, image_path in enumerate(images, 1):
        frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"image {image_path} could not be read; re-generate the dataset")
        h, w = frame.shape[:2]
        xyxy, cls = read_yolo_labels(label_path(image_path), w, h)
        if len(cls) and (cls.min() < 0 or cls.max() >= len(names)):
            raise ValueError(f"{label_path(image_path)}: class ids outside 0..{len(names) - 1}")
        truths.append(ImageBoxes(xyxy=xyxy, class_id=cls))
        det = detector.detect(frame)
        ds_cls = kind_to_ds[det.class_id]
        keep = ds_cls >= 0
        preds.append(ImageBoxes(xyxy=det.xyxy[keep], class_id=ds_cls[keep], confidence=det.confidence[keep]))
        if n % 100 == 0:
            log.info("evaluated %d/%d images", n, len(images))

    metrics = evaluate_detections(preds, truths, class_names=names, conf_threshold=op_thr)
    full = metrics.to_json()
    report: dict[str, Any] = {
        "map50": full["map50"],
        "map50_95": full["map50_95"],
        "per_class": {
            name: {
                "ap50": row["ap50"],
                "ap50_95": row["ap50_95"],
                "precision": row["precision"],
                "recall": row["recall"],
                "f1": row["f1"],
                "instances": row["n_truth"],
                "best_f1_conf": row["best_f1_conf"],
            }
            for name, row in full["classes"].items()
        },
        "images": len(images),
        "split": split,
        "conf_threshold": op_thr,
        "map_conf_threshold": MAP_CONF_THRESHOLD,
        "nms_iou_threshold": config.iou_threshold,
        "model": str(onnx_path),
        "model_sha256": detector.sha256,
        "model_imgsz_px": list(detector.imgsz),
    }
    if plots_dir is not None:
        plots_dir = Path(plots_dir)
        plots_dir.mkdir(parents=True, exist_ok=True)
        plot_pr_curves(metrics, plots_dir / "pr_curve.png")
        plot_confusion(metrics, plots_dir / "confusion_matrix.png")
        (plots_dir / "metrics.json").write_text(json.dumps({**report, "full": full}, indent=1) + "\n")
    return report


# --------------------------------------------------------------------------- plots (Agg, no pyplot state)


def _figure(size_in: tuple[float, float]):
    # matplotlib adds about 0.3 s to importing this module and only the plots need it; the retraining
    # worker imports this module for evaluate_model without drawing.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size_in, dpi=120)
    FigureCanvasAgg(fig)
    return fig


def plot_pr_curves(metrics: Any, path: Path) -> Path:
    """Precision-recall curve per class at IoU 0.5, with AP50 in the legend."""
    fig = _figure((8, 6))
    ax = fig.add_subplot(1, 1, 1)
    for i, name in enumerate(metrics.class_names):
        curve = metrics.pr_precision[i]
        if np.isnan(curve).all():
            continue
        ax.plot(RECALL_POINTS, curve, linewidth=1.2, label=f"{name} {metrics.ap50[i]:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"PR @ IoU 0.5 — mAP50 {metrics.map50:.3f}, mAP50-95 {metrics.map50_95:.3f}")
    ax.legend(loc="lower left", fontsize=8, title="class AP50")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_confusion(metrics: Any, path: Path) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), colour = share of the row, text = counts."""
    labels = [*metrics.class_names, "background"]
    counts = metrics.confusion.astype(float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig = _figure((8, 7))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for r in range(len(labels)):
        for c in range(len(labels)):
            if counts[r, c]:
                colour = "white" if share[r, c] > 0.5 else "black"
                ax.text(c, r, f"{int(counts[r, c])}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_title(f"confusion at score >= {metrics.conf_threshold:g}, IoU 0.5")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- card


def record_metrics(
    card: ModelCard,
    key: str,
    report: dict[str, Any],
    *,
    data_yaml: str | Path,
    split: str,
    command: str | None = None,
) -> ModelCard:
    """Store an evaluation in ``card.metrics[key]`` with what it was measured on and how."""
    dataset = describe_dataset(data_yaml)
    dataset.pop("names", None)
    entry = {
        **report,
        "data_yaml": str(Path(data_yaml).resolve()),
        "split": split,
        "dataset": dataset,
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inference_path": "vision.detector.OnnxDetector",
    }
    if command:
        entry["command"] = command
    onnx = card.artifacts.get("onnx")
    if onnx and report.get("model_sha256") and report["model_sha256"] != onnx.sha256:
        raise ValueError(
            f"evaluated {report.get('model')}, whose sha256 differs from the card's ONNX {onnx.file}; "
            "evaluate the model the card describes"
        )
    card.metrics[key] = entry
    return card
