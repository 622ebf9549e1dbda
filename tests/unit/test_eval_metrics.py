"""Benchmark metrics against hand-computed values, unparsable answers kept in the denominator.

.venv/bin/pytest tests/unit/test_eval_metrics.py
"""

from __future__ import annotations

import pytest

from ground.eval.metrics import (
    box_iou,
    centre_box_baseline,
    charades_scores,
    ciou,
    mean_span_baseline,
    rec_accuracy,
    success_auc,
    temporal_iou,
    vggss_scores,
)
from ground.eval.parse import first_box, first_span


def test_temporal_iou() -> None:
    assert temporal_iou((0, 10), (0, 12)) == pytest.approx(10 / 12)
    assert temporal_iou((0, 10), (10, 20)) == 0.0
    assert temporal_iou((0, 10), (20, 30)) == 0.0
    assert temporal_iou((5, 5), (5, 5)) == 0.0


def test_charades_four_queries_parsed_from_answers() -> None:
    duration = 30.0
    answers = [
        "{0.00, 0.40}",  # (0, 12) vs (0, 10): IoU 10/12
        "The man sits down from 15 to 25 seconds.",  # (15, 25) vs (10, 20): IoU 5/15
        "from 24 to 36 seconds",  # end clipped to 30: (24, 30) vs (20, 30): IoU 6/10
        "I cannot determine when this happens.",  # unparsable: IoU 0
    ]
    truths = [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (3.0, 7.0)]
    predictions = [first_span(a, duration) for a in answers]
    scores = charades_scores(predictions, truths)
    assert scores["R1@0.3"] == pytest.approx(75.0)
    assert scores["R1@0.5"] == pytest.approx(50.0)
    assert scores["R1@0.7"] == pytest.approx(25.0)
    assert scores["mIoU"] == pytest.approx(100 * (10 / 12 + 5 / 15 + 6 / 10) / 4)  # 44.17
    assert (scores["total"], scores["parsed"], scores["unparsable"]) == (4, 3, 1)


def test_charades_threshold_is_inclusive_and_lengths_checked() -> None:
    # (0, 10) vs (0, 20): IoU exactly 0.5 counts at 0.5.
    assert charades_scores([(0.0, 10.0)], [(0.0, 20.0)])["R1@0.5"] == 100.0
    with pytest.raises(ValueError, match="predictions"):
        charades_scores([None], [(0.0, 1.0), (1.0, 2.0)])
    with pytest.raises(ValueError, match="no samples"):
        charades_scores([], [])


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_rec_accuracy_just_above_and_below_half() -> None:
    truth = (0.0, 0.0, 10.0, 10.0)
    above = (0.0, 0.0, 10.0, 5.1)  # IoU 51 / 100
    below = (0.0, 0.0, 10.0, 4.9)  # IoU 49 / 100
    assert box_iou(above, truth) == pytest.approx(0.51)
    assert box_iou(below, truth) == pytest.approx(0.49)
    scores = rec_accuracy([above, below, None], [truth, truth, truth])
    assert scores["Acc@0.5"] == pytest.approx(100 / 3)
    assert (scores["total"], scores["parsed"], scores["unparsable"]) == (3, 2, 1)


def test_rec_accuracy_from_answer_strings() -> None:
    answers = ["It is at [0.0,0.0,0.5,0.5].", "Sorry, I can't see it.", "(0.5, 0.5, 1.0, 1.0)"]
    truths = [(0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 0.5)]
    scores = rec_accuracy([first_box(a) for a in answers], truths)
    assert scores["Acc@0.5"] == pytest.approx(100 / 3)
    assert scores["unparsable"] == 1


def test_ciou_on_a_toy_grid() -> None:
    # 10x10 grid: gt covers rows/cols 0..4 (25 px), pred rows/cols 2..6 (25 px), overlap 3x3.
    assert ciou((0.2, 0.2, 0.7, 0.7), [(0.0, 0.0, 0.5, 0.5)], size=10) == pytest.approx(9 / 41)
    # Two disjoint gt boxes (50 px) inside a whole-image prediction (100 px).
    gts = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    assert ciou((0.0, 0.0, 1.0, 1.0), gts, size=10) == pytest.approx(0.5)
    # Overlapping gt boxes count once: union 25 + 9 - 4 = 30 px, pred is the first box.
    gts = [(0.0, 0.0, 0.5, 0.5), (0.3, 0.3, 0.6, 0.6)]
    assert ciou((0.0, 0.0, 0.5, 0.5), gts, size=10) == pytest.approx(25 / 30)
    assert ciou((0.0, 0.0, 0.5, 0.5), [(0.0, 0.0, 0.5, 0.5)]) == 1.0
    with pytest.raises(ValueError, match="ground-truth"):
        ciou((0.0, 0.0, 1.0, 1.0), [])


def test_auc_of_known_cious() -> None:
    assert success_auc([1.0, 1.0]) == pytest.approx(100.0)
    # Success rate 1 at threshold 0, 0 after: trapezoid 0.05 * (1 / 2).
    assert success_auc([0.0, 0.0]) == pytest.approx(2.5)
    # Rates: 1.0 at 0, then 0.5 at 0.05..1.00: 0.05 * (11 - (1 + 0.5) / 2).
    assert success_auc([1.0, 0.0]) == pytest.approx(51.25)
    # Rates 1 for thresholds 0..0.50 (11 of them), 0 after: 0.05 * (11 - 1 / 2).
    assert success_auc([0.5, 0.5]) == pytest.approx(52.5)


def test_vggss_scores_with_unparsable() -> None:
    gts = [[(0.0, 0.0, 0.5, 0.5)], [(0.0, 0.0, 0.5, 0.5)], [(0.0, 0.0, 1.0, 1.0)]]
    preds = [(0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 0.5, 1.0), None]  # cIoU 1.0, 0.5, 0
    scores = vggss_scores(preds, gts, size=10)
    assert scores["cIoU@0.5"] == pytest.approx(200 / 3)
    # Rates: 1 at 0; 2/3 at 0.05..0.50 (10); 1/3 at 0.55..1.00 (10).
    expected = 100 * 0.05 * (1 + 10 * 2 / 3 + 10 / 3 - (1 + 1 / 3) / 2)
    assert scores["AUC"] == pytest.approx(expected)
    assert (scores["total"], scores["parsed"], scores["unparsable"]) == (3, 2, 1)


def test_baselines_scored_by_the_same_code() -> None:
    truths_rel = [(0.0, 0.2), (0.2, 0.6), (0.4, 0.7)]
    span = mean_span_baseline(truths_rel)
    assert span == pytest.approx((0.2, 0.5))
    scores = charades_scores([span] * 3, truths_rel)
    # IoUs: 0 / 0.3 = 0, 0.3 / 0.4 = 0.75, 0.1 / 0.5 = 0.2.
    assert scores["mIoU"] == pytest.approx(100 * (0.0 + 0.75 + 0.2) / 3)
    assert scores["R1@0.5"] == pytest.approx(100 / 3)
    assert centre_box_baseline() == (0.25, 0.25, 0.75, 0.75)
    boxes = [(0.0, 0.0, 0.4, 0.4), (0.2, 0.4, 0.6, 1.0)]
    assert centre_box_baseline(boxes) == pytest.approx((0.1, 0.2, 0.5, 0.7))
    with pytest.raises(ValueError, match="mean span"):
        mean_span_baseline([])
