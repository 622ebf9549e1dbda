"""Coordinate forms (`convert.coords`, `convert.spans`): GroundingGPT's decimals, more decimals and
LocVLM's integer bins, written by conversion and generation and read back by evaluation.

.venv/bin/pytest tests/unit/test_coords.py
"""

from __future__ import annotations

import json
import random

import pytest

from ground.common.catalog import benchmark
from ground.common.config import ConfigError, load_config
from ground.common.formats import (
    FLOAT2,
    FLOAT3,
    Coords,
    box_to_square,
    checkpoint_forms,
    format_box,
    format_span,
    parse_boxes,
    parse_spans,
    rewrite,
    save_forms,
    square_to_box,
    writing,
)
from ground.eval.parse import first_box, first_span
from ground.eval.run import evaluate
from ground.eval.scoring import score_answers

FORMS = ["float2", "float3", "float4", "bins:100", "bins:224", "bins:1000"]


@pytest.mark.parametrize("name", FORMS)
def test_every_form_round_trips_on_the_padded_square_and_back_to_pixels(name: str) -> None:
    form = Coords.parse(name)
    assert form.name == name
    rng = random.Random(name)
    for _ in range(200):
        width, height = rng.randint(16, 1200), rng.randint(16, 1200)
        x1, y1 = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
        box_px = [x1, y1, rng.uniform(x1 + 1, width), rng.uniform(y1 + 1, height)]
        square = box_to_square(box_px, width, height)
        (read,) = parse_boxes(format_box(square, form), form)
        assert read == pytest.approx(square, abs=form.tolerance + 1e-12)
        # back in the original's pixels: off by at most the form's step on the padded square's side
        pixels = square_to_box(read, width, height)
        assert pixels == pytest.approx(box_px, abs=max(width, height) * form.tolerance + 1e-6)
        duration = rng.uniform(1, 300)
        t1 = rng.uniform(0, duration - 0.5)
        t2 = rng.uniform(t1 + 0.1, duration)
        (span,) = parse_spans(format_span(t1, t2, duration, form), form)
        assert span == pytest.approx((t1 / duration, t2 / duration), abs=form.tolerance + 1e-12)


def test_bins_write_integers_and_read_bin_centres() -> None:
    bins = Coords.parse("bins:100")
    assert format_box((0.125, 0.4, 0.555, 0.98), bins) == "[12, 40, 55, 98]"
    assert format_box((0.29, 0.0, 1.0, 0.999), bins) == "[29, 0, 99, 99]"  # 0.29 * 100 = 28.999...
    assert parse_boxes("[12, 40, 55, 98]", bins) == [(0.125, 0.405, 0.555, 0.985)]
    assert format_span(2.0, 6.0, 8.0, bins) == "{25, 75}"
    with pytest.raises(ValueError, match="not a bin 0..99"):
        parse_boxes("[12, 40, 55, 100]", bins)
    with pytest.raises(ValueError, match="not a bin"):
        parse_boxes("[0.1, 0.2, 0.3, 0.4]", bins)
    assert format_box((0.1234567, 0.5, 0.75, 1.0), Coords.parse("float4")) == "[0.1235, 0.5000, 0.7500, 1.0000]"


@pytest.mark.parametrize("name", ["float", "float0", "float7", "bins:1", "bins:x", "int", ""])
def test_bad_forms_are_named(name: str) -> None:
    with pytest.raises(ValueError, match="expected float1 .. float6 or bins:N"):
        Coords.parse(name)
    with pytest.raises(ConfigError, match="convert.coords"):
        load_config("config.yaml", [f"convert.coords={name or 'none'}"])


def test_the_recipe_default_is_groundinggpts_and_is_what_writing_uses() -> None:
    convert = load_config("config.yaml")["convert"]
    assert (convert["coords"], convert["spans"]) == ("float3", "float2")
    assert format_box((0.1, 0.2, 0.3, 0.4)) == "[0.100, 0.200, 0.300, 0.400]"
    with writing(Coords.parse("bins:10"), Coords.parse("float3")):
        assert format_box((0.1, 0.2, 0.3, 0.4)) == "[1, 2, 3, 4]"
        assert format_span(1.0, 2.0, 4.0) == "{0.250, 0.500}"
        assert parse_boxes("[1, 2, 3, 4]") == [(0.15, 0.25, 0.35, 0.45)]
    assert format_box((0.1, 0.2, 0.3, 0.4)) == "[0.100, 0.200, 0.300, 0.400]"  # reset on leaving


def test_rewrite_turns_groundinggpt_text_into_another_form() -> None:
    text = "The cat [0.120, 0.400, 0.550, 0.980] sits {0.25, 0.50}; [sic] {no digits}."
    bins = Coords.parse("bins:100")
    assert rewrite(text, bins, bins) == "The cat [12, 40, 55, 98] sits {25, 50}; [sic] {no digits}."
    assert rewrite(text, FLOAT3, FLOAT2) == text
    assert rewrite(text, Coords.parse("float4"), FLOAT2) == (
        "The cat [0.1200, 0.4000, 0.5500, 0.9800] sits {0.25, 0.50}; [sic] {no digits}."
    )
    with pytest.raises(ValueError, match="outside 0..1"):
        rewrite("[0.1, 0.2, 1.3, 0.4]", bins, bins)


def test_lenient_answer_parsing_follows_the_form() -> None:
    bins = Coords.parse("bins:100")
    assert first_box("it is at [12, 40, 55, 98]", bins) == pytest.approx((0.125, 0.405, 0.555, 0.985))
    assert first_box("[12, 40, 55, 140]", bins)[3] == pytest.approx(0.995)  # clipped to the last bin
    assert first_span("{25, 75}", 8.0, bins) == pytest.approx((2.04, 6.04))
    assert first_box("it is at [12, 40, 55, 98]", FLOAT3) == (1.0, 1.0, 1.0, 1.0)  # read as decimals


def rec_records() -> list[dict]:
    return [{"id": f"r{i}", "task": "rec", "split": "test", "conversations": [],
             "meta": {"bbox_xywh": [10 * i, 10, 40, 30], "width": 200, "height": 100}} for i in range(4)]  # fmt: skip


def test_a_checkpoint_is_evaluated_in_the_form_it_was_trained_with(tmp_path) -> None:
    """The train step records the forms in the checkpoint; evaluation reads the answers in them,
    so the same binned answers score 100 with it and 0 read as decimals."""
    records = rec_records()
    bins = Coords.parse("bins:100")
    answers = {r["id"]: format_box(box_to_square([10 * i, 10, 10 * i + 40, 40], 200, 100), bins)
               for i, r in enumerate(records)}  # fmt: skip
    with writing(bins, FLOAT2):
        assert score_answers(benchmark("demo_rec"), records, answers)["test"]["Acc@0.5"] == 100.0
    assert score_answers(benchmark("demo_rec"), records, answers)["test"]["Acc@0.5"] == 0.0

    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    assert checkpoint_forms(checkpoint) == (FLOAT3, FLOAT2)  # the release records none: its own
    save_forms(checkpoint, bins, Coords.parse("bins:50"))
    assert json.loads((checkpoint / "coords.json").read_text()) == {"coords": "bins:100", "spans": "bins:50"}
    assert checkpoint_forms(checkpoint) == (bins, Coords.parse("bins:50"))
    (checkpoint / "coords.json").write_text('{"coords": "bins:0"}')
    with pytest.raises(ValueError, match="coords.json: convert.coords"):
        checkpoint_forms(checkpoint)

    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": k, "answer": v}) + "\n" for k, v in answers.items()))
    summary = evaluate(benchmark("demo_rec"), [data], tmp_path / "out", cfg={}, predictions=predictions,
                       cache=tmp_path / "cache", forms=(bins, FLOAT2))  # fmt: skip
    assert summary["scores"]["test"]["Acc@0.5"] == 100.0
    assert summary["forms"] == {"coords": "bins:100", "spans": "float2"}
