"""Box and span text formats: padded-square normalisation, rounding, clipping, strict parsing.

.venv/bin/pytest tests/unit/test_formats.py
"""

from __future__ import annotations

import pytest

from ground.common.formats import (
    box_to_square,
    format_box,
    format_span,
    parse_boxes,
    parse_spans,
    square_to_box,
    validate_box_px,
    validate_span_s,
)


def test_wide_image_is_padded_vertically() -> None:
    # 200x100: side 200, the image sits 50 px down in the square.
    assert box_to_square([20, 10, 60, 50], 200, 100) == pytest.approx((0.1, 0.3, 0.3, 0.5))
    assert format_box(box_to_square([20, 10, 60, 50], 200, 100)) == "[0.100, 0.300, 0.300, 0.500]"


def test_tall_image_is_padded_horizontally() -> None:
    # 100x200: side 200, the image sits 50 px right in the square.
    assert box_to_square([10, 20, 50, 60], 100, 200) == pytest.approx((0.3, 0.1, 0.5, 0.3))
    # 64x80 (a demo portrait): side 80, offset 8 px; (3+8)/80, 61/80, (19+8)/80, 77/80.
    assert format_box(box_to_square([3, 61, 19, 77], 64, 80)) == "[0.138, 0.762, 0.338, 0.963]"


def test_square_image_needs_no_padding() -> None:
    assert box_to_square([0, 25, 50, 100], 100, 100) == pytest.approx((0.0, 0.25, 0.5, 1.0))


@pytest.mark.parametrize("size", [(200, 100), (100, 200), (64, 64), (37, 91)])
def test_round_trip(size: tuple[int, int]) -> None:
    width, height = size
    box = (3.0, 5.0, width - 7.0, height - 2.0)
    assert square_to_box(box_to_square(box, width, height), width, height) == pytest.approx(box)


def test_clipping() -> None:
    # A box leaking out of the image is clipped to the square; the padding maps back to the edge.
    assert box_to_square([-10, -10, 120, 50], 100, 100) == (0.0, 0.0, 1.0, 0.5)
    assert square_to_box((0.0, 0.0, 1.0, 1.0), 200, 100) == (0.0, 0.0, 200.0, 100.0)
    assert format_box((-0.2, 0.5, 1.7, 1.0)) == "[0.000, 0.500, 1.000, 1.000]"
    assert format_span(-1.0, 12.0, 10.0) == "{0.00, 1.00}"


def test_decimals() -> None:
    assert format_box((0.1, 0.25, 1, 0)) == "[0.100, 0.250, 1.000, 0.000]"
    assert format_box((0.12341, 0.45678, 0.7, 0.9)) == "[0.123, 0.457, 0.700, 0.900]"
    assert format_span(2.0, 5.0, 10.0) == "{0.20, 0.50}"
    assert format_span(1.0, 3.0, 7.0) == "{0.14, 0.43}"


def test_bad_sizes_and_lengths() -> None:
    with pytest.raises(ValueError, match="positive"):
        box_to_square([0, 0, 1, 1], 0, 10)
    with pytest.raises(ValueError, match="4 coordinates"):
        format_box((0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="duration"):
        format_span(0, 1, 0)


def test_parse_boxes_and_spans() -> None:
    text = "a circle[0.100, 0.200, 0.300, 0.400] and [0.5,0.5, 0.6 ,0.7] [sic]"
    assert parse_boxes(text) == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.7)]
    assert parse_spans("first {0.12, 0.56} then {0, 1}") == [(0.12, 0.56), (0.0, 1.0)]
    assert parse_boxes("no boxes here") == []
    assert parse_boxes(format_box(box_to_square([20, 10, 60, 50], 200, 100))) == [
        (0.1, 0.3, 0.3, 0.5)
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[0.1, 0.2, 0.3]", "4 comma-separated"),
        ("[0.1, 0.2, 1.3, 0.4]", "outside 0..1"),
        ("[0.3, 0.2, 0.1, 0.4]", "x2 < x1"),
        ("[0.1, -0.2, 0.3, 0.4]", "not a plain number"),
        ("[0.1, 0.2, 0.3, abc1]", "not a plain number"),
    ],
)
def test_parse_boxes_is_strict(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_boxes(text)


def test_parse_spans_is_strict() -> None:
    with pytest.raises(ValueError, match="ends before"):
        parse_spans("{0.5, 0.2}")
    with pytest.raises(ValueError, match="2 comma-separated"):
        parse_spans("{0.1, 0.2, 0.3}")


def test_validate_box_px_accepts_a_good_box() -> None:
    validate_box_px([0, 0, 200, 100], 200, 100)
    validate_box_px((1.5, 2.5, 3.5, 4.5), 200, 100)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([10, 10, 10, 20], "degenerate"),
        ([10, 20, 30, 5], "degenerate"),
        ([-1, 0, 10, 10], "outside the 200x100 image"),
        ([0, 0, 10, 101], "outside the 200x100 image"),
        ([0, "0", 10, 10], "non-numeric"),
        ([0, True, 10, 10], "non-numeric"),
        ([0, float("nan"), 10, 10], "non-finite"),
        ([0, 0, 10], "4 numbers"),
        ("0 0 10 10", "4 numbers"),
    ],
)
def test_validate_box_px_errors(box: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_box_px(box, 200, 100)


def test_validate_span_s() -> None:
    validate_span_s(0, 8.0, 8.0)
    with pytest.raises(ValueError, match="end must be after start"):
        validate_span_s(3.0, 3.0, 8.0)
    with pytest.raises(ValueError, match="outside the video"):
        validate_span_s(1.0, 8.5, 8.0)
    with pytest.raises(ValueError, match="numeric"):
        validate_span_s("1", 2, 8.0)
