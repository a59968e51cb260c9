"""Box geometry shared by the rules, tracking-free matching, scoring, metrics and dataset building.

Boxes are ``xyxy`` pixels. ``iou_matrix`` is the vectorised form (numpy arrays, many boxes);
``box_iou`` and the small helpers take one box each as plain floats, for the per-object loops where
numpy's per-call overhead would cost more than the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

#: Floor of an IoU denominator, so two degenerate (zero-area) boxes give 0 instead of a division error.
_MIN_UNION = 1e-6


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU, in the boxes' dtype (float32 boxes give float32).

    A box with x2 < x1 or y2 < y1 has area 0.

    Example:
        >>> float(iou_matrix(np.array([[0, 0, 10, 10.0]]), np.array([[5, 0, 15, 10.0]]))[0, 0])
        0.3333333333333333
    """
    a = np.asarray(a).reshape(-1, 4)
    b = np.asarray(b).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(ix2 - ix1, 0) * np.maximum(iy2 - iy1, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, _MIN_UNION)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes.

    Example:
        >>> box_iou((0, 0, 10, 10), (5, 0, 15, 10))
        0.3333333333333333
    """
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:  # also every box with x2 <= x1 or y2 <= y1
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, _MIN_UNION)


def box_union(boxes: Iterable[Sequence[float]]) -> tuple[float, float, float, float]:
    """Smallest xyxy box holding every box (at least one)."""
    bs = list(boxes)
    return (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs))


def centre_dist(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance in pixels between the centres of two xyxy boxes."""
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)


def box_diag(b: Sequence[float]) -> float:
    """Diagonal of an xyxy box in pixels, at least 1 (a scale to divide by)."""
    return max(1.0, math.hypot(b[2] - b[0], b[3] - b[1]))


def scale_box(b: Iterable[float], sx: float, sy: float) -> tuple[float, float, float, float]:
    """An xyxy box in a frame resized by ``(sx, sy)``."""
    x1, y1, x2, y2 = b
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def polygon_px(polygon: Iterable[Sequence[float]], frame_wh: Sequence[int]) -> np.ndarray:
    """A zone polygon in normalised [0, 1] coordinates -> (k, 2) float64 pixels of a ``frame_wh`` frame.

    The one convention everywhere: x * width, y * height (1.0 is the frame's right/bottom edge).

    Example:
        >>> polygon_px([[0.5, 0.5], [1.0, 0.5], [1.0, 1.0]], (960, 540)).tolist()
        [[480.0, 270.0], [960.0, 270.0], [960.0, 540.0]]
    """
    return np.asarray(polygon, np.float64).reshape(-1, 2) * (float(frame_wh[0]), float(frame_wh[1]))


def polygon_px_int(polygon: Iterable[Sequence[float]], frame_wh: Sequence[int]) -> np.ndarray:
    """``polygon_px`` rounded to (k, 2) int32, as OpenCV's drawing and filling functions take it."""
    return np.round(polygon_px(polygon, frame_wh)).astype(np.int32)
