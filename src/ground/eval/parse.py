"""Lenient parsers for model answers: boxes and time spans, as models really write them.

    >>> from ground.eval.parse import first_box, parse_span_answers, to_original
    >>> first_box("The man on the left is at [0.1,0.2, 0.5, 0.9].")
    (0.1, 0.2, 0.5, 0.9)
    >>> to_original((0.1, 0.3, 0.3, 0.5), width=200, height=100)
    (20.0, 10.0, 60.0, 50.0)
    >>> parse_span_answers("It happens at {0.25, 0.50}.", duration=30.0)
    [(7.5, 15.0)]
    >>> parse_span_answers("from 12.3 to 15.0 seconds", duration=30.0)
    [(12.3, 15.0)]

Unlike the strict `ground.common.formats.parse_boxes` / `parse_spans` (which check our own generated
data and raise), these never raise on model output: anything they cannot read is skipped, and an
answer with nothing readable gives `[]`, which the metrics count as unparsable (score 0).

Accepted box forms (anywhere in the text, any number of them, in order of appearance):

- `[x1, y1, x2, y2]` with or without spaces after the commas, e.g. `[0.1,0.2,0.3,0.4]`;
- `(x1, y1, x2, y2)` with parentheses, and mixed brackets such as `[x1, y1, x2, y2)`;
- numbers as `0.5`, `.5`, `1`, `-0.02`, `1.3`: every coordinate is clipped to 0..1; in a binned
  form (`convert.coords: bins:N`, `ground.common.formats.Coords`) numbers are bin indices, rounded,
  clipped to 0..N-1 and read as the bin's centre;
- reversed corners (`x1 > x2` or `y1 > y2`) are swapped into order.

Not boxes: groups with fewer or more than 4 numbers (`[0.1, 0.2]`, `[1, 2, 3, 4, 5]`), words.

Accepted span forms, returned in order of appearance:

- `{t1, t2}` relative to the video's duration (with or without spaces; bins as for boxes), clipped to 0..1, then
  multiplied by `duration` when it is known (seconds), else left relative;
- with a known duration only, spans written in seconds, the second number followed by a unit
  (`s`, `sec`, `secs`, `second`, `seconds`): "from 12.3 to 15.0 seconds", "12.3s - 15.0s",
  "12.3 – 15.0 s", "between 3 and 7 seconds", "3 to 7 sec"; clipped to 0..duration;
- a reversed span (`t1 > t2`) is swapped into order.

Not spans: `{0.5}`, `{0.1, 0.2, 0.3}`, bare numbers without a unit, words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ground.common.formats import Box, Coords, Span, forms, square_to_box

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_SEP = r"\s*,\s*"
_BOX = re.compile(r"[\[(]\s*(" + _NUM + ")" + (_SEP + "(" + _NUM + ")") * 3 + r"\s*[\])]")
_REL_SPAN = re.compile(r"\{\s*(" + _NUM + ")" + _SEP + "(" + _NUM + r")\s*\}")
_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:seconds|second|secs|sec|s)\b"
_SECONDS_SPAN = re.compile(
    r"(" + _UNSIGNED + r")\s*" + "(?:" + _UNIT + r")?\s*(?:-|–|—|to|until|and)\s*"
    r"(" + _UNSIGNED + r")\s*" + _UNIT,
    re.IGNORECASE,
)


def _clip(value: float, high: float = 1.0) -> float:
    return min(high, max(0.0, value))


def parse_box_answers(text: str, form: Coords | None = None) -> list[Box]:
    """Every box in a model answer as 0..1 `(x1, y1, x2, y2)`, clipped and ordered; [] if none.
    `form`: how the model was trained to write them (default: the form in effect)."""
    form = form or forms()[0]
    boxes = []
    for match in _BOX.finditer(text):
        x1, y1, x2, y2 = (form.read(float(g)) for g in match.groups())
        boxes.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return boxes


def first_box(text: str, form: Coords | None = None) -> Box | None:
    """The first box of a model answer, or None when it has none (an unparsable answer)."""
    boxes = parse_box_answers(text, form)
    return boxes[0] if boxes else None


def to_original(box01: Sequence[float], width: float, height: float) -> Box:
    """0..1 box of the padded square -> pixel `(x1, y1, x2, y2)` of the W x H original, clipped."""
    return square_to_box(box01, width, height)


def parse_span_answers(text: str, duration: float | None, form: Coords | None = None) -> list[Span]:
    """Every span in a model answer: seconds if `duration` is known, else relative; [] if none."""
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    form = form or forms()[1]
    found: list[tuple[int, int, Span]] = []
    for match in _REL_SPAN.finditer(text):
        t1, t2 = (form.read(float(g)) for g in match.groups())
        if duration is not None:
            t1, t2 = t1 * duration, t2 * duration
        found.append((match.start(), match.end(), (t1, t2)))
    if duration is not None:
        for match in _SECONDS_SPAN.finditer(text):
            if any(s < match.end() and match.start() < e for s, e, _ in found):
                continue  # e.g. "{0.1, 0.2} s": already read as a relative span
            t1, t2 = (_clip(float(g), duration) for g in match.groups())
            found.append((match.start(), match.end(), (t1, t2)))
    found.sort(key=lambda item: item[0])
    return [(min(t1, t2), max(t1, t2)) for _, _, (t1, t2) in found]


def first_span(text: str, duration: float | None, form: Coords | None = None) -> Span | None:
    """The first span of a model answer, or None when it has none (an unparsable answer)."""
    spans = parse_span_answers(text, duration, form)
    return spans[0] if spans else None
