"""Text formats of boxes and time spans shared by conversion, instruction generation and evaluation.

    >>> from ground.common.formats import box_to_square, format_box, format_span, parse_boxes
    >>> format_box(box_to_square([10, 20, 30, 40], width=200, height=100))
    '[0.050, 0.350, 0.150, 0.450]'
    >>> format_span(2.0, 4.0, duration=8.0)
    '{0.25, 0.50}'

Boxes are `[x1, y1, x2, y2]` with 3 decimals, normalised to 0..1 of the image padded to a square
(side max(W, H), the original centred), which is what the image encoder sees. Spans are
`{t1, t2}` with 2 decimals, relative to the whole video's duration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

Box = tuple[float, float, float, float]
Span = tuple[float, float]

# Any bracketed / braced group that holds a digit is a box / span candidate; groups without
# digits ("[sic]") are prose and ignored, candidates that do not parse are errors.
_BRACKETS = re.compile(r"\[([^\[\]]*\d[^\[\]]*)\]")
_BRACES = re.compile(r"\{([^{}]*\d[^{}]*)\}")
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def _padding(width: float, height: float) -> tuple[float, float, float]:
    """Side of the padded square and the offsets of the original inside it."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    side = max(width, height)
    return side, (side - width) / 2, (side - height) / 2


def box_to_square(box_xyxy_px: Sequence[float], width: float, height: float) -> Box:
    """Pixel box of a W x H image -> 0..1 coordinates of the image padded to a centred square."""
    side, off_x, off_y = _padding(width, height)
    x1, y1, x2, y2 = box_xyxy_px
    return (
        _clip01((x1 + off_x) / side),
        _clip01((y1 + off_y) / side),
        _clip01((x2 + off_x) / side),
        _clip01((y2 + off_y) / side),
    )


def square_to_box(box01: Sequence[float], width: float, height: float) -> Box:
    """Inverse of `box_to_square`: 0..1 padded-square box -> pixels of the original, clipped."""
    side, off_x, off_y = _padding(width, height)
    x1, y1, x2, y2 = box01
    return (
        min(width, max(0.0, x1 * side - off_x)),
        min(height, max(0.0, y1 * side - off_y)),
        min(width, max(0.0, x2 * side - off_x)),
        min(height, max(0.0, y2 * side - off_y)),
    )


def format_box(box01: Sequence[float]) -> str:
    """'[0.123, 0.456, 0.789, 0.900]': always 3 decimals, as the model is trained to write."""
    if len(box01) != 4:
        raise ValueError(f"a box has 4 coordinates, got {len(box01)}: {box01!r}")
    return "[" + ", ".join(f"{_clip01(v):.3f}" for v in box01) + "]"


def format_span(t1: float, t2: float, duration: float) -> str:
    """'{0.12, 0.56}': seconds -> fractions of the duration, 2 decimals, clipped to 0..1."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    return "{" + f"{_clip01(t1 / duration):.2f}, {_clip01(t2 / duration):.2f}" + "}"


def _numbers(inner: str, count: int, what: str) -> list[float]:
    parts = inner.split(",")
    if len(parts) != count:
        raise ValueError(f"{what} needs {count} comma-separated numbers, got {inner!r}")
    values = []
    for part in parts:
        match = _NUMBER.match(part)
        if not match:
            raise ValueError(f"{what} coordinate {part.strip()!r} is not a plain number")
        value = float(match.group(1))
        if value > 1.0:
            raise ValueError(f"{what} coordinate {value} is outside 0..1 in {inner!r}")
        values.append(value)
    return values


def parse_boxes(text: str) -> list[Box]:
    """Every `[x1, y1, x2, y2]` in `text`, in order; ValueError on a malformed or unordered one."""
    boxes = []
    for match in _BRACKETS.finditer(text):
        x1, y1, x2, y2 = _numbers(match.group(1), 4, "box")
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box {match.group(0)} has x2 < x1 or y2 < y1")
        boxes.append((x1, y1, x2, y2))
    return boxes


def parse_spans(text: str) -> list[Span]:
    """Every `{t1, t2}` in `text`, in order; ValueError on a malformed or reversed one."""
    spans = []
    for match in _BRACES.finditer(text):
        t1, t2 = _numbers(match.group(1), 2, "span")
        if t2 < t1:
            raise ValueError(f"span {match.group(0)} ends before it starts")
        spans.append((t1, t2))
    return spans


def _is_number(value: object) -> bool:
    # bool is an int subclass; True as a coordinate is always a data bug.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_box_px(box: object, width: float, height: float) -> None:
    """Raise ValueError unless `box` is a non-degenerate [x1, y1, x2, y2] inside a W x H image."""
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise ValueError(f"box must be a list of 4 numbers [x1, y1, x2, y2], got {box!r}")
    if not all(_is_number(v) for v in box):
        raise ValueError(f"box has a non-numeric or non-finite coordinate: {box!r}")
    if not (_is_number(width) and _is_number(height) and width > 0 and height > 0):
        raise ValueError(f"image size must be positive numbers, got {width!r}x{height!r}")
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"degenerate box {list(box)}: needs x2 > x1 and y2 > y1")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(f"box {list(box)} lies outside the {width}x{height} image")


def validate_span_s(start: object, end: object, duration: object) -> None:
    """Raise ValueError unless 0 <= start < end <= duration (seconds, finite numbers)."""
    if not all(_is_number(v) for v in (start, end, duration)):
        got = f"{start!r}, {end!r}, {duration!r}"
        raise ValueError(f"span needs numeric start, end and duration, got {got}")
    if end <= start:  # type: ignore[operator]
        raise ValueError(f"span [{start}, {end}] s: end must be after start")
    if start < 0 or end > duration:  # type: ignore[operator]
        raise ValueError(f"span [{start}, {end}] s lies outside the video [0, {duration}] s")
