from __future__ import annotations

import math

import numpy as np
import pytest

from vision.geometry import iou_matrix
from vision.metrics import (
    ImageBoxes,
    average_precision,
    confusion_matrix_image,
    evaluate_detections,
    match_image,
)
from vision.types import Detections

NAMES = ["person", "bicycle"]


def gt(*boxes: tuple[list[float], int]) -> ImageBoxes:
    return ImageBoxes(xyxy=[b for b, _ in boxes], class_id=[c for _, c in boxes])


def pred(*boxes: tuple[list[float], int, float]) -> ImageBoxes:
    return ImageBoxes(
        xyxy=[b for b, _, _ in boxes], class_id=[c for _, c, _ in boxes], confidence=[s for *_, s in boxes]
    )


def shifted(box: list[float], iou: float) -> list[float]:
    """A box of the same size shifted right so that its IoU with ``box`` is exactly ``iou``."""
    w = box[2] - box[0]
    dx = w * (1 - iou) / (1 + iou)
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


A, B, C = [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0], [40.0, 0.0, 50.0, 20.0]


def test_perfect_predictions_score_one() -> None:
    truths = [gt((A, 0), (B, 1)), gt((C, 0))]
    preds = [pred((A, 0, 0.9), (B, 1, 0.8)), pred((C, 0, 0.7))]
    m = evaluate_detections(preds, truths, NAMES)
    np.testing.assert_allclose(m.ap, 1.0)
    assert m.map50 == 1.0 and m.map50_95 == 1.0
    np.testing.assert_allclose(m.precision, 1.0)
    np.testing.assert_allclose(m.recall, 1.0)
    np.testing.assert_array_equal(m.confusion, [[2, 0, 0], [0, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    "tp, conf, n_truth, expected",
    [
        ([False, True], [0.9, 0.8], 1, 0.5),  # one FP above the TP: precision 1/2 at full recall
        ([True, False], [0.9, 0.8], 2, 51 / 101),  # recall stops at 0.5: points 0.00..0.50 have precision 1
        ([True, False, True], [0.9, 0.8, 0.7], 2, (51 * 1.0 + 50 * 2 / 3) / 101),
        ([False, False], [0.9, 0.8], 3, 0.0),
        ([], [], 2, 0.0),  # nothing predicted
    ],
)
def test_average_precision_hand_worked(
    tp: list[bool], conf: list[float], n_truth: int, expected: float
) -> None:
    ap, curve = average_precision(np.array(tp, bool), np.array(conf), n_truth)
    assert ap == pytest.approx(expected)
    assert curve.shape == (101,)


def test_average_precision_without_truth_is_nan() -> None:
    assert math.isnan(average_precision(np.array([True]), np.array([0.5]), 0)[0])


def test_iou_between_thresholds_counts_only_up_to_it() -> None:
    # IoU 0.72: a TP at 0.50, 0.55, 0.60, 0.65, 0.70 and an FP at 0.75..0.95 -> AP50-95 = 5/10.
    truths = [gt((A, 0))]
    preds = [pred((shifted(A, 0.72), 0, 0.9))]
    assert iou_matrix(np.array([A]), np.array([shifted(A, 0.72)]))[0, 0] == pytest.approx(0.72)
    m = evaluate_detections(preds, truths, NAMES)
    np.testing.assert_array_equal(m.ap[0], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    assert m.ap50_95[0] == pytest.approx(0.5)
    assert math.isnan(m.ap50[1])  # no bicycle in the truth: excluded from the means
    assert m.map50_95 == pytest.approx(0.5)


def test_greedy_matching_in_score_order_and_duplicates_are_fps() -> None:
    truth = gt((A, 0))
    p = pred((shifted(A, 0.6), 0, 0.6), (A, 0, 0.9), (A, 0, 0.8))
    tp = match_image(p, truth, np.array([0.5]))
    # The highest score takes the box; the duplicate and the lower one are false positives.
    assert tp[:, 0].tolist() == [False, True, False]


def test_wrong_class_is_a_false_positive_and_a_confusion() -> None:
    truths = [gt((A, 0), (B, 1))]
    preds = [pred((A, 1, 0.9), (B, 1, 0.8), (C, 0, 0.7))]
    m = evaluate_detections(preds, truths, NAMES, conf_threshold=0.5)
    # person: only an FP at C -> AP 0; bicycle: FP (A) above TP (B) -> 0.5.
    assert m.ap50.tolist() == pytest.approx([0.0, 0.5])
    assert m.tp.tolist() == [0, 1] and m.fp.tolist() == [1, 1]
    assert m.precision.tolist() == pytest.approx([0.0, 0.5])
    assert m.recall.tolist() == pytest.approx([0.0, 1.0])
    # rows = truth (person, bicycle, background), cols = predicted.
    np.testing.assert_array_equal(m.confusion, [[0, 1, 0], [0, 1, 0], [1, 0, 0]])


def test_confidence_threshold_sets_the_operating_point() -> None:
    truths = [gt((A, 0), (B, 0), (C, 0))]
    preds = [pred((A, 0, 0.9), (B, 0, 0.4), ([60.0, 0, 70, 10], 0, 0.3), (C, 0, 0.2))]
    hi = evaluate_detections(preds, truths, NAMES, conf_threshold=0.5)
    lo = evaluate_detections(preds, truths, NAMES, conf_threshold=0.1)
    assert (hi.precision[0], hi.recall[0]) == pytest.approx((1.0, 1 / 3))
    assert (lo.precision[0], lo.recall[0]) == pytest.approx((0.75, 1.0))
    np.testing.assert_array_equal(hi.confusion[0], [1, 0, 2])  # one found, two people missed at 0.5
    assert lo.confusion[2, 0] == 1  # the box at x=60 is a false positive
    # AP does not depend on the operating point.
    assert hi.ap50[0] == lo.ap50[0]
    # F1 peaks when all predictions are kept (3 TP, 1 FP: F1 6/7 vs 0.8 at 0.4): threshold 0.2.
    assert hi.best_f1_conf[0] == pytest.approx(0.2)


def test_pr_curve_and_json() -> None:
    truths = [gt((A, 0), (B, 0))]
    preds = [pred((A, 0, 0.9), (C, 0, 0.8), (B, 0, 0.7))]
    m = evaluate_detections(preds, truths, NAMES)
    curve = m.pr_precision[0]
    assert (
        curve[0] == 1.0
        and curve[50] == 1.0
        and curve[51] == pytest.approx(2 / 3)
        and curve[100] == pytest.approx(2 / 3)
    )
    out = m.to_json()
    assert out["classes"]["person"]["ap50"] == pytest.approx(m.ap50[0], abs=1e-5)
    assert out["classes"]["bicycle"]["ap50"] is None
    assert out["confusion"]["labels"] == ["person", "bicycle", "background"]
    assert len(out["pr_curve"]["precision"]["person"]) == 101


def test_empty_images_and_detections_input() -> None:
    det = Detections(xyxy=[A], confidence=[0.9], class_id=[0])
    preds = [ImageBoxes.from_detections(det), pred()]
    truths = [gt((A, 0)), gt()]
    m = evaluate_detections(preds, truths, NAMES)
    assert m.ap50[0] == 1.0
    assert confusion_matrix_image(pred(), gt(), 2).sum() == 0


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="2 prediction images but 1"):
        evaluate_detections([pred(), pred()], [gt()], NAMES)
    with pytest.raises(ValueError, match=r"class ids outside 0..1"):
        evaluate_detections([pred((A, 5, 0.9))], [gt()], NAMES)
    with pytest.raises(ValueError, match="needs confidence"):
        evaluate_detections([gt((A, 0))], [gt((A, 0))], NAMES)
