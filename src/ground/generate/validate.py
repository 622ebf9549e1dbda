"""The filter of generated dialogues (paper: "samples that do not conform to the desired format").

    >>> from ground.generate.validate import validate_dialogue
    >>> validate_dialogue({"conversations": [...]}, annotation)   # turns, or InvalidDialogue

Rejections carry a `reason`, the key under which the manifest and the database count them.
"""

from __future__ import annotations

from typing import Any

from ground.common.formats import parse_boxes, parse_spans
from ground.generate.prompts import InvalidAnswer, parse_answer

# A box or span matches an annotation if every coordinate is within this: formatting to 3 (2)
# decimals moves a value by at most half a unit, and a re-rounding backend by one more.
BOX_TOLERANCE = 0.0015
SPAN_TOLERANCE = 0.015
# Longer answers are usually a model rambling past the format; the paper keeps answers short.
MAX_ANSWER_CHARS = 1500


class InvalidDialogue(ValueError):
    """A generated dialogue that fails validation; `reason` is the manifest's counting key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _close(found: tuple[float, ...], known: list[list[float]], tolerance: float) -> bool:
    return any(all(abs(a - b) <= tolerance for a, b in zip(found, k, strict=True)) for k in known)


def known_boxes_and_spans(
    annotation: dict[str, Any],
) -> tuple[list[list[float]], list[list[float]]]:
    """Every box (objects, expressions, sentence phrases) and span (events) given in the input."""
    boxes = [o["box"] for o in annotation.get("objects", [])]
    boxes += [e["box"] for e in annotation.get("expressions", [])]
    boxes += [p["box"] for s in annotation.get("sentences", []) for p in s.get("phrases", [])]
    spans = [e["span"] for e in annotation.get("events", [])]
    return boxes, spans


def response_turns(response: Any) -> list[dict[str, str]]:
    """The turns of a response: structured (offline) or a chat model's text in the prompt format."""
    if isinstance(response, dict) and "conversations" not in response and "text" in response:
        try:
            return parse_answer(str(response["text"]))
        except InvalidAnswer as err:
            raise InvalidDialogue("malformed response", str(err)) from None
    turns = response.get("conversations") if isinstance(response, dict) else None
    if not isinstance(turns, list) or not turns or len(turns) % 2:
        raise InvalidDialogue("malformed conversation", "expected an even, non-empty list of turns")
    for k, turn in enumerate(turns):
        speaker = "human" if k % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != speaker:
            raise InvalidDialogue("malformed conversation", f"turn {k} should be from {speaker}")
        if not isinstance(turn.get("value"), str) or not turn["value"].strip():
            raise InvalidDialogue("malformed conversation", f"turn {k} has no text")
    return turns


def _check_grounding(k: int, text: str, boxes: list, spans: list) -> bool:
    """Whether turn `k` mentions a box or span; InvalidDialogue if one is malformed or invented."""
    try:
        found_boxes, found_spans = parse_boxes(text), parse_spans(text)
    except ValueError as err:
        # The shared parser rejects out-of-range values itself; count them apart from garbage.
        reason = "value outside 0..1" if "outside 0..1" in str(err) else "unparsable box or span"
        raise InvalidDialogue(reason, f"turn {k}: {err}") from None
    for value in [*found_boxes, *found_spans]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise InvalidDialogue("value outside 0..1", f"turn {k}: {list(value)}")
    for box in found_boxes:
        if not _close(box, boxes, BOX_TOLERANCE):
            raise InvalidDialogue("box not in annotations", f"turn {k}: {list(box)}")
    for span in found_spans:
        if not _close(span, spans, SPAN_TOLERANCE):
            raise InvalidDialogue("span not in annotations", f"turn {k}: {list(span)}")
    return bool(found_boxes or found_spans)


def validate_dialogue(
    response: dict[str, Any], annotation: dict[str, Any], pairs: int | None = None
) -> list[dict[str, str]]:
    """The response's turns if well formed and every box/span is one of the annotation's.

    `pairs`, when given, is the number of question/answer pairs the prompt asked for.
    """
    turns = response_turns(response)
    boxes, spans = known_boxes_and_spans(annotation)
    grounded = False
    for k, turn in enumerate(turns):
        if k % 2 == 1 and len(turn["value"]) > MAX_ANSWER_CHARS:
            raise InvalidDialogue(
                "answer too long", f"turn {k}: {len(turn['value'])} > {MAX_ANSWER_CHARS} chars"
            )
        grounded |= _check_grounding(k, turn["value"], boxes, spans) and k % 2 == 1
    if not grounded:
        raise InvalidDialogue("ungrounded", "no answer mentions a box or a span")
    if pairs is not None and len(turns) != 2 * pairs:
        raise InvalidDialogue("wrong number of turns", f"{len(turns) // 2} pairs, asked {pairs}")
    return [{"from": t["from"], "value": t["value"]} for t in turns]
