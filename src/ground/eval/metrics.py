"""Metrics of the grounding benchmarks and their trivial baselines, on already parsed answers.

    >>> from ground.eval.metrics import charades_scores, rec_accuracy, vggss_scores
    >>> charades_scores([(0.0, 10.0), None], [(0.0, 10.0), (5.0, 8.0)])["R1@0.5"]
    50.0
    >>> rec_accuracy([(0.0, 0.0, 1.0, 1.0)], [(0.0, 0.0, 1.0, 1.0)])["Acc@0.5"]
    100.0
    >>> vggss_scores([None], [[(0.2, 0.2, 0.6, 0.6)]])["cIoU@0.5"]
    0.0

Every score is a percentage over ALL samples: a prediction of None (an answer with nothing
parsable, see `ground.eval.parse`) scores 0 and stays in the denominator. Every result dict
also carries the counts `total`, `parsed` and `unparsable`.

- Charades-STA (temporal grounding): R@1 at IoU >= 0.3 / 0.5 / 0.7 (`R1@0.3`, ...) and the mean
  temporal IoU (`mIoU`) of the single (first) predicted span, spans in seconds.
- RefCOCO/+/g (REC): `Acc@0.5`, the share of boxes with IoU >= 0.5 against the ground truth.
- VGGSS (sound source localisation), the literature's consensus IoU (Chen et al. 2021, LVS): the
  ground-truth map is the union of the ground-truth boxes rasterised on a size x size grid (224,
  as the audio-visual models' input), the prediction map is the predicted box rasterised the same
  way, and cIoU = |pred ∩ gt| / (|gt| + |pred \\ gt|), i.e. the IoU of the two binary maps. A box
  covers the pixels `round(x1 * size) <= column < round(x2 * size)` (rows likewise).
  `cIoU@0.5` is the share of samples with cIoU >= 0.5; `AUC` is the area under the success-rate
  curve over thresholds 0.00, 0.05, ..., 1.00 by the trapezoidal rule, as LVS computes it (for
  21 equally spaced thresholds this is the mean success rate with the two end thresholds
  weighted one half), as a percentage.

Baselines (`mean_span_baseline`, `centre_box_baseline`) give one fixed prediction that is then
scored by the same functions, so that a model's score can be read against "it learned nothing".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ground.common.formats import Box, Span

CHARADES_THRESHOLDS = (0.3, 0.5, 0.7)
AUC_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(21))


def _check_lengths(predictions: Sequence[object], truths: Sequence[object]) -> None:
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} ground truths")
    if not truths:
        raise ValueError("no samples to score")


def _counts(predictions: Sequence[object]) -> dict[str, int]:
    parsed = sum(p is not None for p in predictions)
    return {"total": len(predictions), "parsed": parsed, "unparsable": len(predictions) - parsed}


def _percent(hits: int, total: int) -> float:
    return 100.0 * hits / total


def temporal_iou(a: Span, b: Span) -> float:
    """IoU of two time spans (start, end); 0 when the union is empty."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def charades_scores(predictions: Sequence[Span | None], truths: Sequence[Span]) -> dict:
    """R@1 at IoU 0.3/0.5/0.7 and mIoU (percentages over all queries) plus counts."""
    _check_lengths(predictions, truths)
    ious = [0.0 if p is None else temporal_iou(p, t) for p, t in zip(predictions, truths)]
    scores: dict = {}
    for threshold in CHARADES_THRESHOLDS:
        scores[f"R1@{threshold}"] = _percent(sum(iou >= threshold for iou in ious), len(ious))
    scores["mIoU"] = 100.0 * sum(ious) / len(ious)
    return scores | _counts(predictions)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes in the same units; 0 when the union is empty."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def rec_accuracy(predictions: Sequence[Box | None], truths: Sequence[Box]) -> dict:
    """Acc@0.5: percentage of predictions with IoU >= 0.5 (None counts as wrong) plus counts."""
    _check_lengths(predictions, truths)
    hits = sum(p is not None and box_iou(p, t) >= 0.5 for p, t in zip(predictions, truths))
    return {"Acc@0.5": _percent(hits, len(truths))} | _counts(predictions)


def _rasterise(boxes01: Sequence[Sequence[float]], size: int) -> np.ndarray:
    grid = np.zeros((size, size), dtype=bool)
    for x1, y1, x2, y2 in boxes01:
        c1, c2 = (min(size, max(0, round(v * size))) for v in (x1, x2))
        r1, r2 = (min(size, max(0, round(v * size))) for v in (y1, y2))
        grid[r1:r2, c1:c2] = True
    return grid


def ciou(
    pred_box01: Sequence[float], gt_boxes01: Sequence[Sequence[float]], size: int = 224
) -> float:
    """Consensus IoU of a predicted 0..1 box against the union of ground-truth boxes (see module)."""
    if not gt_boxes01:
        raise ValueError("cIoU needs at least one ground-truth box")
    pred = _rasterise([pred_box01], size)
    gt = _rasterise(gt_boxes01, size)
    denominator = int(gt.sum()) + int((pred & ~gt).sum())
    return int((pred & gt).sum()) / denominator if denominator else 0.0


def success_auc(cious: Sequence[float]) -> float:
    """Area (percentage) under the success-rate curve over thresholds 0.00..1.00 step 0.05."""
    rates = [sum(c >= t for c in cious) / len(cious) for t in AUC_THRESHOLDS]
    step = AUC_THRESHOLDS[1] - AUC_THRESHOLDS[0]
    return 100.0 * step * (sum(rates) - (rates[0] + rates[-1]) / 2)


def vggss_scores(
    predictions: Sequence[Box | None], truths: Sequence[Sequence[Box]], size: int = 224
) -> dict:
    """cIoU@0.5 and AUC (percentages over all samples; None scores cIoU 0) plus counts."""
    _check_lengths(predictions, truths)
    cious = [0.0 if p is None else ciou(p, t, size) for p, t in zip(predictions, truths)]
    scores = {"cIoU@0.5": _percent(sum(c >= 0.5 for c in cious), len(cious))}
    scores["AUC"] = success_auc(cious)
    return scores | _counts(predictions)


def mean_span_baseline(truths_relative: Sequence[Span]) -> Span:
    """The mean (start, end) of relative ground-truth spans: the always-the-same-span baseline."""
    if not truths_relative:
        raise ValueError("the mean span needs at least one ground-truth span")
    starts, ends = zip(*truths_relative)
    return (sum(starts) / len(starts), sum(ends) / len(ends))


def centre_box_baseline(truths01: Sequence[Box] | None = None) -> Box:
    """The mean ground-truth 0..1 box, or the centre half (0.25..0.75) when none are given."""
    if not truths01:
        return (0.25, 0.25, 0.75, 0.75)
    columns = list(zip(*truths01))
    x1, y1, x2, y2 = (sum(c) / len(c) for c in columns)
    return (x1, y1, x2, y2)
