"""Box geometry: the one IoU (matrix and scalar) and the small box helpers every caller shares."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.geometry import box_diag, box_iou, box_union, centre_dist, iou_matrix

A = (0.0, 0.0, 10.0, 10.0)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (A, A, 1.0),
        (A, (5.0, 0.0, 15.0, 10.0), 1 / 3),
        (A, (0.0, 0.0, 5.0, 10.0), 0.5),
        (A, (10.0, 0.0, 20.0, 10.0), 0.0),  # touching edges share no area
        (A, (20.0, 20.0, 30.0, 30.0), 0.0),
        (A, (10.0, 10.0, 0.0, 0.0), 0.0),  # corners swapped: an empty box
        ((3.0, 3.0, 3.0, 3.0), (3.0, 3.0, 3.0, 3.0), 0.0),  # two points: no division by zero
    ],
)
def test_box_iou_and_iou_matrix_agree(a: tuple, b: tuple, expected: float) -> None:
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(b, a) == pytest.approx(expected)
    assert float(iou_matrix(np.array([a]), np.array([b]))[0, 0]) == pytest.approx(expected)


def test_iou_matrix_shapes_and_dtype() -> None:
    a = np.array([A, (5, 0, 15, 10)], np.float32)
    b = np.array([A, (100, 100, 110, 110), (0, 0, 5, 10)], np.float32)
    m = iou_matrix(a, b)
    assert m.shape == (2, 3) and m.dtype == np.float32  # the rules' float32 boxes stay float32
    expected = [[box_iou(x, y) for y in b.tolist()] for x in a.tolist()]
    np.testing.assert_allclose(m, expected, rtol=1e-6)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
    assert iou_matrix([list(A)], [list(A)])[0, 0] == 1.0  # lists are taken too


def test_box_helpers() -> None:
    assert box_union([A, (5.0, -2.0, 12.0, 4.0)]) == (0.0, -2.0, 12.0, 10.0)
    assert centre_dist(A, (3.0, 4.0, 13.0, 14.0)) == pytest.approx(5.0)
    assert box_diag(A) == pytest.approx(math.hypot(10, 10))
    assert box_diag((1.0, 1.0, 1.0, 1.0)) == 1.0  # a floor, so it can divide
