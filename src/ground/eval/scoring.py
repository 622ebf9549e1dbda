"""The evaluation benchmarks: which converted data each one scores, and how answers are scored.

    >>> from ground.eval.scoring import benchmark, score_answers
    >>> bench = benchmark("charades")
    >>> records = load_records([Path("results/convert/charades_sta/test.jsonl")])
    >>> scores = score_answers(bench, records, {"charades_sta-test-3MSZA-...": "{0.1, 0.4}", ...})
    >>> scores["test"]["R1@0.5"], scores["test"]["unparsable"], scores["test"]["baseline/R1@0.5"]

A benchmark scores the records of one task in `results/convert/<dataset>/<split>.jsonl`, one
result per split. Ground truth comes from each record's `meta`, in original units:

- span (`charades`, `demo_tg`): `segment_s` [start, end] seconds and `duration`;
- box (`refcoco*`, `demo_rec`): `bbox_xywh` (COCO) or `box_px` [x1, y1, x2, y2] pixels, with
  `width` and `height`; the answer's padded-square box is mapped back to the original pixels;
- ciou (`vggss`, `demo_sl`): `boxes` (0..1 of the frame) or `box_px` with `width` and `height`.
  Without a frame size (VGGSS annotations carry none) the frame is taken to be square, as the
  224 x 224 frames VGGSS is evaluated on are.

Every record counts: an answer with nothing parsable, or no answer at all (`missing`), scores 0.
Next to the model's scores each split gets `baseline/<metric>`: the same metric for one fixed
prediction given to every record (the mean relative span, the mean box of the split's ground
truth), so "it learned" reads as a distance from "it always says the average".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ground.common.catalog import Benchmark
from ground.common.formats import Box
from ground.eval.metrics import (
    centre_box_baseline,
    charades_scores,
    mean_span_baseline,
    rec_accuracy,
    vggss_scores,
)
from ground.eval.parse import first_box, first_span, to_original

KINDS = ("span", "box", "ciou")
COUNTS = ("total", "parsed", "unparsable", "missing")  # per split, next to the scores


def select(bench: Benchmark, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a benchmark scores (its task), in file order; ValueError if there are none."""
    chosen = [r for r in records if r.get("task") == bench.task]
    if not chosen:
        raise ValueError(f"benchmark {bench.name}: no {bench.task!r} records in the data")
    return chosen


def _meta(record: dict[str, Any], *keys: str) -> list[Any]:
    meta = record.get("meta")
    missing = [k for k in keys if not isinstance(meta, dict) or meta.get(k) is None]
    if missing:
        raise ValueError(f"record {record.get('id')}: meta has no {', '.join(missing)}")
    return [meta[k] for k in keys]


def _pixel_box(record: dict[str, Any]) -> Box:
    meta = record.get("meta") or {}
    if "bbox_xywh" in meta:
        x, y, w, h = _meta(record, "bbox_xywh")[0]
        return (x, y, x + w, y + h)
    return tuple(_meta(record, "box_px")[0])


def _frame_size(record: dict[str, Any]) -> tuple[float, float] | None:
    meta = record.get("meta") or {}
    if meta.get("width") and meta.get("height"):
        return float(meta["width"]), float(meta["height"])
    return None


def truth(bench: Benchmark, record: dict[str, Any]) -> Any:
    """The record's ground truth: a span in seconds, a pixel box, or a list of 0..1 boxes."""
    if bench.kind == "span":
        return tuple(_meta(record, "segment_s")[0])
    if bench.kind == "box":
        _meta(record, "width", "height")  # needed to map answers back: checked up front
        return _pixel_box(record)
    meta = record.get("meta") or {}
    if "boxes" in meta:
        return [tuple(b) for b in _meta(record, "boxes")[0]]
    width, height = _meta(record, "width", "height")
    x1, y1, x2, y2 = _pixel_box(record)
    return [(x1 / width, y1 / height, x2 / width, y2 / height)]


def prediction(bench: Benchmark, record: dict[str, Any], answer: str | None) -> Any:
    """The answer parsed into the truth's units, or None when nothing in it parses."""
    if answer is None:
        return None
    if bench.kind == "span":
        return first_span(answer, float(_meta(record, "duration")[0]))
    box = first_box(answer)
    if box is None:
        return None
    if bench.kind == "box":
        return to_original(box, *_meta(record, "width", "height"))
    size = _frame_size(record)
    if size is None:
        return box
    x1, y1, x2, y2 = to_original(box, *size)
    return (x1 / size[0], y1 / size[1], x2 / size[0], y2 / size[1])


def _scores(bench: Benchmark, predictions: list[Any], truths: list[Any]) -> dict[str, Any]:
    if bench.kind == "span":
        return charades_scores(predictions, truths)
    if bench.kind == "box":
        return rec_accuracy(predictions, truths)
    return vggss_scores(predictions, truths)


def _baseline(bench: Benchmark, records: list[dict[str, Any]], truths: list[Any]) -> list[Any]:
    """One fixed prediction (relative to each record's duration or size) for every record."""
    if bench.kind == "span":
        durations = [float(_meta(r, "duration")[0]) for r in records]
        start, end = mean_span_baseline([(s / d, e / d) for (s, e), d in zip(truths, durations)])
        return [(start * d, end * d) for d in durations]
    if bench.kind == "box":
        sizes = [_meta(r, "width", "height") for r in records]
        relative = [(x1 / w, y1 / h, x2 / w, y2 / h) for (x1, y1, x2, y2), (w, h) in zip(truths, sizes)]
        x1, y1, x2, y2 = centre_box_baseline(relative)
        return [(x1 * w, y1 * h, x2 * w, y2 * h) for w, h in sizes]
    mean = centre_box_baseline([boxes[0] for boxes in truths])
    return [mean] * len(records)


def score_answers(
    bench: Benchmark, records: list[dict[str, Any]], answers: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """split -> metric -> value (with counts `total`, `parsed`, `unparsable`, `missing` and the
    `baseline/<metric>` scores) over the benchmark's records; answers by record id."""
    by_split: dict[str, list[dict[str, Any]]] = {}
    for record in select(bench, records):
        by_split.setdefault(str(record.get("split")), []).append(record)
    results = {}
    for split, chosen in by_split.items():
        truths = [truth(bench, r) for r in chosen]
        predictions = [prediction(bench, r, answers.get(r["id"])) for r in chosen]
        scores = _scores(bench, predictions, truths)
        scores["missing"] = sum(r["id"] not in answers for r in chosen)
        baseline = _scores(bench, _baseline(bench, chosen, truths), truths)
        scores |= {f"baseline/{k}": v for k, v in baseline.items() if k not in COUNTS}
        results[split] = scores
    return results



def flatten(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One split: its dict as is; several: `<split>/<metric>` keys (what `--json` prints)."""
    if len(results) == 1:
        return dict(next(iter(results.values())))
    return {f"{split}/{name}": value for split, scores in results.items() for name, value in scores.items()}

