"""Detection metrics for ``urbaneye eval``: COCO-style AP, precision/recall, PR curves, confusion matrix.

Pure numpy. Matching follows COCO (pycocotools) without crowd or area ranges: in each image and class,
predictions are taken in descending score order and each takes the unmatched ground-truth box of its
class with the highest IoU at or above the threshold. AP is the 101-point interpolated area under the
precision envelope. Classes without ground truth have AP ``nan`` and are left out of the means.

Example:
    >>> truth = [ImageBoxes(xyxy=[[0, 0, 10, 10]], class_id=[0])]
    >>> preds = [ImageBoxes(xyxy=[[0, 0, 10, 10]], class_id=[0], confidence=[0.9])]
    >>> m = evaluate_detections(preds, truth, class_names=["person"])
    >>> float(m.map50), float(m.map50_95)
    (1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vision.geometry import iou_matrix

#: COCO IoU thresholds 0.50:0.05:0.95.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
#: COCO recall points 0:0.01:1.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ImageBoxes:
    """Boxes of one image: ground truth (no ``confidence``) or predictions.

    Attributes:
        xyxy: (n, 4) boxes in pixels.
        class_id: (n,) class indexes into ``class_names``.
        confidence: (n,) scores for predictions; None for ground truth.
    """

    xyxy: Any
    class_id: Any
    confidence: Any = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, np.float64).reshape(-1, 4)
        cls = np.asarray(self.class_id, np.int64).reshape(-1)
        if len(cls) != len(xyxy):
            raise ValueError(f"ImageBoxes.class_id has {len(cls)} entries for {len(xyxy)} boxes")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "class_id", cls)
        if self.confidence is not None:
            conf = np.asarray(self.confidence, np.float64).reshape(-1)
            if len(conf) != len(xyxy):
                raise ValueError(f"ImageBoxes.confidence has {len(conf)} entries for {len(xyxy)} boxes")
            object.__setattr__(self, "confidence", conf)

    @classmethod
    def from_detections(cls, det: Any) -> ImageBoxes:
        """From ``vision.types.Detections`` (predictions: confidence kept)."""
        return cls(xyxy=det.xyxy, class_id=det.class_id, confidence=det.confidence)


def match_image(
    pred: ImageBoxes, truth: ImageBoxes, iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS
) -> np.ndarray:
    """(n_pred, n_thresholds) bool: is each prediction a true positive at each IoU threshold (COCO greedy)."""
    n, t = len(pred.xyxy), len(iou_thresholds)
    tp = np.zeros((n, t), bool)
    if n == 0 or len(truth.xyxy) == 0:
        return tp
    iou = iou_matrix(pred.xyxy, truth.xyxy)
    iou[pred.class_id[:, None] != truth.class_id[None, :]] = -1.0  # only same-class pairs may match
    order = np.argsort(-pred.confidence, kind="stable")
    for ti, thr in enumerate(iou_thresholds):
        taken = np.zeros(len(truth.xyxy), bool)
        for p in order:
            row = np.where(taken, -1.0, iou[p])
            g = int(row.argmax())
            if row[g] >= thr - 1e-12:
                taken[g] = True
                tp[p, ti] = True
    return tp


def average_precision(tp: np.ndarray, confidence: np.ndarray, n_truth: int) -> tuple[float, np.ndarray]:
    """COCO 101-point AP of one class at one IoU threshold, and the interpolated precision at each recall point.

    Args:
        tp: (n,) bool, true positive flag of each prediction of the class over the whole set.
        confidence: (n,) scores of those predictions.
        n_truth: number of ground-truth boxes of the class.

    Returns:
        ``(ap, precision_at_recall_points (101,))``; AP is ``nan`` when ``n_truth`` is 0.

    Example:
        >>> average_precision(np.array([False, True]), np.array([0.9, 0.8]), 1)[0]  # an FP above the TP
        0.5
    """
    if n_truth == 0:
        return float("nan"), np.full(len(RECALL_POINTS), np.nan)
    order = np.argsort(-np.asarray(confidence), kind="stable")
    tp_sorted = np.asarray(tp, bool)[order]
    tpc = np.cumsum(tp_sorted)
    fpc = np.cumsum(~tp_sorted)
    recall = tpc / n_truth
    precision = tpc / np.maximum(tpc + fpc, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    interp = np.zeros(len(RECALL_POINTS))
    ok = idx < len(recall)
    interp[ok] = envelope[idx[ok]]
    return float(interp.mean()), interp


@dataclass(frozen=True)
class DetectionMetrics:
    """Results of ``evaluate_detections``; per-class arrays index ``class_names``.

    Attributes:
        ap: (nc, T) AP per class and IoU threshold (``nan`` for classes without ground truth).
        ap50, ap50_95: (nc,) AP at IoU 0.5 and mean over 0.5:0.95.
        map50, map50_95: means over classes with ground truth.
        precision, recall, f1: (nc,) at ``conf_threshold`` and IoU 0.5.
        tp, fp: (nc,) counts at ``conf_threshold`` and IoU 0.5.
        pr_precision: (nc, 101) interpolated precision at ``RECALL_POINTS`` (IoU 0.5): the PR curve.
        best_f1_conf: (nc,) confidence at which F1 (IoU 0.5) peaks — a suggested per-class threshold.
        confusion: (nc+1, nc+1) counts ``[true class, predicted class]``; index nc is background
            (row nc: false positives; column nc: missed objects), at ``conf_threshold`` and IoU 0.5.
    """

    class_names: list[str]
    iou_thresholds: np.ndarray
    conf_threshold: float
    n_truth: np.ndarray
    n_pred: np.ndarray
    ap: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    pr_precision: np.ndarray
    best_f1_conf: np.ndarray
    confusion: np.ndarray

    @property
    def ap50(self) -> np.ndarray:
        return self.ap[:, 0]

    @property
    def ap50_95(self) -> np.ndarray:
        return self.ap.mean(axis=1)

    @property
    def map50(self) -> float:
        return _nanmean(self.ap50)

    @property
    def map50_95(self) -> float:
        return _nanmean(self.ap50_95)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able summary (``None`` for undefined values)."""

        def num(x: float) -> float | None:
            return None if np.isnan(x) else round(float(x), 5)

        return {
            "conf_threshold": self.conf_threshold,
            "map50": num(self.map50),
            "map50_95": num(self.map50_95),
            "classes": {
                name: {
                    "n_truth": int(self.n_truth[i]),
                    "n_pred": int(self.n_pred[i]),
                    "ap50": num(self.ap50[i]),
                    "ap50_95": num(self.ap50_95[i]),
                    "precision": num(self.precision[i]),
                    "recall": num(self.recall[i]),
                    "f1": num(self.f1[i]),
                    "best_f1_conf": num(self.best_f1_conf[i]),
                }
                for i, name in enumerate(self.class_names)
            },
            "confusion": {
                "labels": [*self.class_names, "background"],
                "matrix": self.confusion.astype(int).tolist(),
            },
            "pr_curve": {
                "recall": RECALL_POINTS.round(2).tolist(),
                "precision": {
                    name: [num(v) for v in self.pr_precision[i]] for i, name in enumerate(self.class_names)
                },
            },
        }


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def evaluate_detections(
    predictions: Sequence[ImageBoxes],
    truths: Sequence[ImageBoxes],
    class_names: Sequence[str],
    conf_threshold: float = 0.25,
    iou_thresholds: np.ndarray = COCO_IOU_THRESHOLDS,
) -> DetectionMetrics:
    """Evaluate predictions against ground truth over a set of images (same order in both lists).

    Args:
        predictions: per image, predicted boxes with confidence (all of them: AP needs the low scores too).
        truths: per image, ground-truth boxes.
        class_names: names of class ids 0..nc-1.
        conf_threshold: operating point for precision, recall, F1 and the confusion matrix.
        iou_thresholds: IoU thresholds; the first is the one used for PR, F1 and the confusion matrix.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction images but {len(truths)} ground-truth images")
    nc = len(class_names)
    iou_thresholds = np.asarray(iou_thresholds, np.float64)
    for kind, images in (("prediction", predictions), ("ground truth", truths)):
        for i, img in enumerate(images):
            if len(img.class_id) and (img.class_id.min() < 0 or img.class_id.max() >= nc):
                raise ValueError(f"{kind} image {i} has class ids outside 0..{nc - 1} ({list(class_names)})")
        if kind == "prediction" and any(img.confidence is None for img in images):
            raise ValueError("every prediction ImageBoxes needs confidence scores")

    tps, confs, classes = [], [], []
    confusion = np.zeros((nc + 1, nc + 1), np.int64)
    for pred, truth in zip(predictions, truths, strict=True):
        tps.append(match_image(pred, truth, iou_thresholds))
        confs.append(pred.confidence)
        classes.append(pred.class_id)
        confusion += confusion_matrix_image(pred, truth, nc, conf_threshold, float(iou_thresholds[0]))
    tp_all = np.concatenate(tps) if tps else np.zeros((0, len(iou_thresholds)), bool)
    conf_all = np.concatenate(confs) if confs else np.zeros(0)
    cls_all = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    n_truth = np.bincount(
        np.concatenate([t.class_id for t in truths] or [np.zeros(0, np.int64)]), minlength=nc
    )

    ap = np.full((nc, len(iou_thresholds)), np.nan)
    pr = np.full((nc, len(RECALL_POINTS)), np.nan)
    precision, recall, f1 = (np.full(nc, np.nan) for _ in range(3))
    tp_at, fp_at = np.zeros(nc, np.int64), np.zeros(nc, np.int64)
    best_f1_conf = np.full(nc, np.nan)
    n_pred = np.bincount(cls_all, minlength=nc)
    for c in range(nc):
        mine = cls_all == c
        tp_c, conf_c = tp_all[mine], conf_all[mine]
        for ti in range(len(iou_thresholds)):
            ap[c, ti], curve = average_precision(tp_c[:, ti], conf_c, int(n_truth[c]))
            if ti == 0:
                pr[c] = curve
        above = conf_c >= conf_threshold
        tp_at[c] = int(tp_c[above, 0].sum())
        fp_at[c] = int(above.sum() - tp_at[c])
        if above.any():
            precision[c] = tp_at[c] / above.sum()
        if n_truth[c]:
            recall[c] = tp_at[c] / n_truth[c]
            p = 0.0 if np.isnan(precision[c]) else precision[c]
            f1[c] = 2 * p * recall[c] / (p + recall[c]) if p + recall[c] > 0 else 0.0
            best_f1_conf[c] = _best_f1_conf(tp_c[:, 0], conf_c, int(n_truth[c]))
    return DetectionMetrics(
        class_names=list(class_names),
        iou_thresholds=iou_thresholds,
        conf_threshold=conf_threshold,
        n_truth=n_truth,
        n_pred=n_pred,
        ap=ap,
        precision=precision,
        recall=recall,
        f1=f1,
        tp=tp_at,
        fp=fp_at,
        pr_precision=pr,
        best_f1_conf=best_f1_conf,
        confusion=confusion,
    )


def _best_f1_conf(tp: np.ndarray, conf: np.ndarray, n_truth: int) -> float:
    if len(conf) == 0:
        return float("nan")
    order = np.argsort(-conf, kind="stable")
    tpc = np.cumsum(tp[order])
    k = np.arange(1, len(order) + 1)
    f1 = 2 * tpc / (k + n_truth)  # 2PR/(P+R) with P = tpc/k, R = tpc/n_truth
    # Only cut between distinct scores: a threshold cannot separate tied predictions.
    last_of_tie = np.r_[conf[order][1:] != conf[order][:-1], True]
    f1 = np.where(last_of_tie, f1, -1.0)
    return float(conf[order][int(f1.argmax())])


def confusion_matrix_image(
    pred: ImageBoxes, truth: ImageBoxes, nc: int, conf_threshold: float = 0.25, iou_threshold: float = 0.5
) -> np.ndarray:
    """(nc+1, nc+1) ``[true, predicted]`` counts for one image; index nc is background.

    Boxes are paired regardless of class, highest IoU first, each box at most once; a pair with different
    classes is a confusion between them.
    """
    m = np.zeros((nc + 1, nc + 1), np.int64)
    keep = pred.confidence >= conf_threshold
    p_xyxy, p_cls = pred.xyxy[keep], pred.class_id[keep]
    g_cls = truth.class_id
    iou = iou_matrix(truth.xyxy, p_xyxy)
    gi, pi = np.nonzero(iou >= iou_threshold - 1e-12)
    order = np.argsort(-iou[gi, pi], kind="stable")
    used_g, used_p = np.zeros(len(g_cls), bool), np.zeros(len(p_cls), bool)
    for g, p in zip(gi[order], pi[order], strict=True):
        if not used_g[g] and not used_p[p]:
            used_g[g] = used_p[p] = True
            m[g_cls[g], p_cls[p]] += 1
    np.add.at(m, (g_cls[~used_g], nc), 1)
    np.add.at(m, (nc, p_cls[~used_p]), 1)
    return m
