"""Lenient answer parsers on answer strings as models really write them, junk included.

.venv/bin/pytest tests/unit/test_eval_parse.py
"""

from __future__ import annotations

import pytest

from ground.eval.parse import (
    first_box,
    first_span,
    parse_box_answers,
    parse_span_answers,
    to_original,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[0.123, 0.456, 0.789, 0.900]", [(0.123, 0.456, 0.789, 0.9)]),
        ("[0.1,0.2,0.3,0.4]", [(0.1, 0.2, 0.3, 0.4)]),
        ("The dog on the left is located at (0.05, 0.1, .5, 0.95).", [(0.05, 0.1, 0.5, 0.95)]),
        ("Sure!\nThe region is [ 0.2 ,0.3, 0.6 , 0.7 ]\n###", [(0.2, 0.3, 0.6, 0.7)]),
        ("[0.1, 0.2, 0.3, 0.4) oops", [(0.1, 0.2, 0.3, 0.4)]),
        ("[1, 0, 0, 1]", [(0.0, 0.0, 1.0, 1.0)]),
    ],
)
def test_box_forms(text: str, expected: list[tuple[float, ...]]) -> None:
    assert parse_box_answers(text) == [pytest.approx(box) for box in expected]


def test_several_boxes_in_order_with_text_around() -> None:
    text = (
        "There are two cups: [0.10, 0.20, 0.30, 0.40] and [0.5,0.5,0.9,0.95], the left one is red."
    )
    assert parse_box_answers(text) == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.9, 0.95)]
    assert first_box(text) == (0.1, 0.2, 0.3, 0.4)


def test_out_of_range_clipped_and_reversed_swapped() -> None:
    assert parse_box_answers("[-0.02, 0.1, 1.3, 0.5]") == [(0.0, 0.1, 1.0, 0.5)]
    assert parse_box_answers("[0.8, 0.9, 0.2, 0.3]") == [(0.2, 0.3, 0.8, 0.9)]


@pytest.mark.parametrize(
    "text",
    [
        "I cannot determine the location of the object.",
        "[0.1, 0.2]",
        "[0.1, 0.2, 0.3, 0.4, 0.5]",
        "{0.1, 0.2, 0.3, 0.4}",
        "[a, b, c, d]",
        "",
        "[sic] the box (see above)",
    ],
)
def test_box_junk(text: str) -> None:
    assert parse_box_answers(text) == []
    assert first_box(text) is None


def test_to_original_undoes_the_padding() -> None:
    # 200x100: side 200, image 50 px down in the square.
    assert to_original((0.1, 0.3, 0.3, 0.5), 200, 100) == pytest.approx((20, 10, 60, 50))
    # 100x200: image 50 px right; a box reaching into the padding is clipped to the image.
    assert to_original((0.0, 0.1, 0.5, 0.3), 100, 200) == pytest.approx((0, 20, 50, 60))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{0.25, 0.50}", [(7.5, 15.0)]),
        ("The event happens at {0.1,0.3}.", [(3.0, 9.0)]),
        ("It occurs from 12.3 to 15.0 seconds.", [(12.3, 15.0)]),
        ("12.3s - 15.0s", [(12.3, 15.0)]),
        ("around 4 – 9 s into the video", [(4.0, 9.0)]),
        ("The person opens the door between 3 and 7 seconds.", [(3.0, 7.0)]),
        ("From 2.5 sec to 6 sec", [(2.5, 6.0)]),
        ("{0.9, 0.2}", [(6.0, 27.0)]),
        ("{0.5, 1.3}", [(15.0, 30.0)]),
        ("from 24 to 36 seconds", [(24.0, 30.0)]),
        ("first {0.0, 0.1}\nthen from 20 to 25 seconds", [(0.0, 3.0), (20.0, 25.0)]),
        ("{0.10, 0.20} s", [(3.0, 6.0)]),
    ],
)
def test_span_forms_in_seconds(text: str, expected: list[tuple[float, float]]) -> None:
    assert parse_span_answers(text, duration=30.0) == [pytest.approx(s) for s in expected]


def test_span_without_duration_stays_relative_and_skips_seconds() -> None:
    assert parse_span_answers("{0.25, 0.50}", duration=None) == [(0.25, 0.5)]
    assert parse_span_answers("from 12.3 to 15.0 seconds", duration=None) == []
    assert first_span("{1.2, 0.4}", duration=None) == (0.4, 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "I cannot determine when this happens.",
        "{0.5}",
        "{0.1, 0.2, 0.3}",
        "[0.1, 0.2]",
        "The video is 30 seconds long.",
        "in 2019 the video was filmed",
        "{start, end}",
    ],
)
def test_span_junk(text: str) -> None:
    assert parse_span_answers(text, duration=30.0) == []
    assert first_span(text, duration=30.0) is None


def test_bad_duration_is_an_error() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_span_answers("{0.1, 0.2}", duration=0.0)
