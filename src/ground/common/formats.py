"""Text formats of boxes and time spans shared by conversion, instruction generation and evaluation.

    >>> from ground.common.formats import box_to_square, format_box, format_span, parse_boxes
    >>> format_box(box_to_square([10, 20, 30, 40], width=200, height=100))
    '[0.050, 0.350, 0.150, 0.450]'
    >>> format_span(2.0, 4.0, duration=8.0)
    '{0.25, 0.50}'

Boxes are `[x1, y1, x2, y2]` normalised to 0..1 of the image padded to a square (side max(W, H),
the original centred), which is what the image encoder sees. Spans are `{t1, t2}` relative to the
whole video's duration. How each number is written is a `Coords` form (`convert.coords`,
`convert.spans`): GroundingGPT's 3 decimals for boxes and 2 for spans by default, more decimals,
or LocVLM's integer-valued binning:

    >>> with writing(Coords.parse("bins:100"), Coords.parse("bins:100")):
    ...     format_box((0.125, 0.4, 0.555, 0.98)), parse_boxes("[12, 40, 55, 98]")
    ('[12, 40, 55, 98]', [(0.125, 0.405, 0.555, 0.985)])

A step that writes conversations (convert, generate) does so inside `writing(...)`; parsing
without a form reads the form in effect, so evaluation reads what the checkpoint trained on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

Box = tuple[float, float, float, float]
Span = tuple[float, float]

# Any bracketed / braced group that holds a digit is a box / span candidate; groups without
# digits ("[sic]") are prose and ignored, candidates that do not parse are errors.
_BRACKETS = re.compile(r"\[([^\[\]]*\d[^\[\]]*)\]")
_BRACES = re.compile(r"\{([^{}]*\d[^{}]*)\}")
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


@dataclass(frozen=True)
class Coords:
    """How a 0..1 coordinate is written: `floatD` (D decimals, 1-6) or `bins:N` (the index
    0..N-1 of N equal bins, LocVLM's integer-valued binning, read back as the bin's centre)."""

    decimals: int = 3
    bins: int = 0  # 0: decimals

    @classmethod
    def parse(cls, name: str) -> Coords:
        match = re.fullmatch(r"float([1-6])|bins:(\d+)", str(name))
        if not match or (match.group(2) is not None and int(match.group(2)) < 2):
            raise ValueError(f"coordinate form {name!r}: expected float1 .. float6 or bins:N with N >= 2")
        return cls(bins=int(match.group(2))) if match.group(2) else cls(decimals=int(match.group(1)))

    @property
    def name(self) -> str:
        return f"bins:{self.bins}" if self.bins else f"float{self.decimals}"

    @property
    def tolerance(self) -> float:
        """The largest distance between a value and what its written form reads back as."""
        return 0.5 / self.bins if self.bins else 0.5 * 10.0**-self.decimals

    def write(self, value: float) -> str:
        value = _clip01(value)
        if self.bins:  # the small epsilon keeps 0.29 (28.999999...) in bin 29
            return str(min(self.bins - 1, math.floor(value * self.bins + 1e-9)))
        return f"{value:.{self.decimals}f}"

    def read(self, number: float) -> float:
        """A written number as 0..1 (a bin index as its centre); out-of-range values clipped."""
        if self.bins:
            return (min(self.bins - 1, max(0, round(number))) + 0.5) / self.bins
        return _clip01(number)

    def check(self, number: float, inner: str, what: str) -> None:
        """ValueError unless `number` is one this form writes."""
        if self.bins and (number != int(number) or number > self.bins - 1):
            raise ValueError(f"{what} coordinate {number:g} is not a bin 0..{self.bins - 1} in {inner!r}")
        if not self.bins and number > 1.0:
            raise ValueError(f"{what} coordinate {number} is outside 0..1 in {inner!r}")


FLOAT3, FLOAT2 = Coords(decimals=3), Coords(decimals=2)  # GroundingGPT's boxes and spans
_FORMS: ContextVar[tuple[Coords, Coords]] = ContextVar("coordinate_forms", default=(FLOAT3, FLOAT2))


@contextmanager
def writing(boxes: Coords, spans: Coords) -> Iterator[None]:
    """Boxes and spans are written (and, without a form, parsed) in these forms inside."""
    token = _FORMS.set((boxes, spans))
    try:
        yield
    finally:
        _FORMS.reset(token)


def forms() -> tuple[Coords, Coords]:
    """The (boxes, spans) forms in effect."""
    return _FORMS.get()


def recipe_forms(convert: dict) -> tuple[Coords, Coords]:
    """The forms a recipe's `convert` section chooses; ValueError naming `convert.coords`/`spans`."""
    found = []
    for key, default in (("coords", "float3"), ("spans", "float2")):
        try:
            found.append(Coords.parse(convert.get(key, default)))
        except ValueError as err:
            raise ValueError(f"convert.{key}: {err}") from None
    return found[0], found[1]


FORMS_FILE = "coords.json"  # in a checkpoint folder: the forms its training data was written in


def save_forms(checkpoint: Path, boxes: Coords, spans: Coords) -> None:
    (Path(checkpoint) / FORMS_FILE).write_text(json.dumps({"coords": boxes.name, "spans": spans.name}) + "\n")


def checkpoint_forms(checkpoint: Path) -> tuple[Coords, Coords]:
    """The forms a checkpoint was trained on; GroundingGPT's when it records none (the release)."""
    path = Path(checkpoint) / FORMS_FILE
    if not path.is_file():
        return FLOAT3, FLOAT2
    try:
        return recipe_forms(json.loads(path.read_text()))
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{path}: {err}") from None


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


def format_box(box01: Sequence[float], form: Coords | None = None) -> str:
    """'[0.123, 0.456, 0.789, 0.900]' in `form` (default: the one in effect, 3 decimals unless
    a step chose another), as the model is trained to write."""
    if len(box01) != 4:
        raise ValueError(f"a box has 4 coordinates, got {len(box01)}: {box01!r}")
    form = form or forms()[0]
    return "[" + ", ".join(form.write(v) for v in box01) + "]"


def format_span(t1: float, t2: float, duration: float, form: Coords | None = None) -> str:
    """'{0.12, 0.56}' (by default): seconds -> fractions of the duration, clipped to 0..1."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    form = form or forms()[1]
    return "{" + f"{form.write(t1 / duration)}, {form.write(t2 / duration)}" + "}"


def rewrite(text: str, boxes: Coords, spans: Coords) -> str:
    """`text` (boxes and spans written in GroundingGPT's decimals) with every box and span written
    in the given forms instead; ValueError on a malformed one, as `parse_boxes`/`parse_spans`."""
    if (boxes, spans) == (FLOAT3, FLOAT2):
        return text

    def box(match: re.Match[str]) -> str:
        return format_box(parse_boxes(match.group(0), FLOAT3)[0], boxes)

    def span(match: re.Match[str]) -> str:
        return format_span(*parse_spans(match.group(0), FLOAT2)[0], 1.0, spans)

    return _BRACES.sub(span, _BRACKETS.sub(box, text))


def _numbers(inner: str, count: int, what: str, form: Coords) -> list[float]:
    parts = inner.split(",")
    if len(parts) != count:
        raise ValueError(f"{what} needs {count} comma-separated numbers, got {inner!r}")
    values = []
    for part in parts:
        match = _NUMBER.match(part)
        if not match:
            raise ValueError(f"{what} coordinate {part.strip()!r} is not a plain number")
        value = float(match.group(1))
        form.check(value, inner, what)
        values.append(form.read(value))
    return values


def parse_boxes(text: str, form: Coords | None = None) -> list[Box]:
    """Every `[x1, y1, x2, y2]` in `text` as 0..1, in order (`form`: default the one in effect);
    ValueError on a malformed or unordered one."""
    boxes = []
    for match in _BRACKETS.finditer(text):
        x1, y1, x2, y2 = _numbers(match.group(1), 4, "box", form or forms()[0])
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box {match.group(0)} has x2 < x1 or y2 < y1")
        boxes.append((x1, y1, x2, y2))
    return boxes


def parse_spans(text: str, form: Coords | None = None) -> list[Span]:
    """Every `{t1, t2}` in `text` as 0..1, in order; ValueError on a malformed or reversed one."""
    spans = []
    for match in _BRACES.finditer(text):
        t1, t2 = _numbers(match.group(1), 2, "span", form or forms()[1])
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
