"""The "offline" instruction backend: a deterministic composer standing in for GPT. No model runs.

    python -m ground.generate.run --backend offline \
        --sources results/convert/demo_image/train.jsonl --out /tmp/dialogues.jsonl \
        --manifest /tmp/dialogues.manifest.json --seed 0 --cache-dir /tmp/generate-cache

The paper has GPT-3.5 turn annotations into grounded descriptions and conversations (Figures 4-6).
`OfflineComposer` fills the same slot without a network or API key: it COMPOSES multi-turn
grounded dialogues from the annotations themselves (objects with attributes and boxes, timed
events), with question wording drawn from the Table 11 pools. Its output is therefore correct by
construction but far less varied than GPT's; it exists so the demo pipeline, the response cache
and the validator run end to end. Every choice comes from a generator seeded by the request and
the sampling parameters only, so the response is a pure function of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from ground.common.formats import format_box
from ground.convert.templates import render

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DESCRIBE_IMAGE = (
    "Describe the image in detail, giving the position of every object.",
    "What objects are in this image, and where are they?",
    "Give a detailed description of the picture, with the location of each thing in it.",
    "Describe everything you see in the image and where it is.",
)
DESCRIBE_VIDEO = (
    "What happens in the video?",
    "Describe the events of this video and when they take place.",
    "Walk me through the video, giving the time of each event.",
    "Give a detailed account of the clip with timestamps.",
)


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:]


def _span(span: list[float]) -> str:
    # Request spans are already rounded to 2 decimals; format like `format_span` does.
    return "{" + f"{span[0]:.2f}, {span[1]:.2f}" + "}"


class OfflineComposer:
    """Deterministic, non-GPT stand-in backend: composes grounded dialogues from annotations."""

    name = "offline"
    model = "offline-composer"
    prompt_version = "compose-v1"

    def request(self, annotation: dict[str, Any], turns: int) -> dict[str, Any]:
        """The request payload (part of the cache key): the annotation as the model sees it."""
        return {"annotation": annotation, "turns": turns}

    def sampling(self, seed: int) -> dict[str, Any]:
        return {"seed": seed}

    def complete(self, request: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
        """One dialogue as `{"conversations": [{"from", "value"}, ...]}` (no media tokens)."""
        material = json.dumps([request, sampling], sort_keys=True)
        rng = random.Random(int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big"))
        annotation, turns = request["annotation"], request["turns"]
        if annotation["kind"] == "image":
            pairs = compose_image(annotation, turns, rng)
        elif annotation["kind"] == "video":
            pairs = compose_video(annotation, turns, rng)
        else:
            raise ValueError(f"offline composer: no dialogue for media kind {annotation['kind']!r}")
        conversations = []
        for question, answer in pairs:
            conversations += [
                {"from": "human", "value": question},
                {"from": "gpt", "value": answer},
            ]
        return {"conversations": conversations}


# ---------------------------------------------------------------------------- images


def _regions(annotation: dict[str, Any]) -> list[dict[str, Any]]:
    """Named boxes: objects with attributes when known, else the referring expressions."""
    if annotation.get("objects"):
        return [
            {**o, "name": f"{o['size']} {o['color']} {o['shape']}", "box": format_box(o["box"])}
            for o in annotation["objects"]
        ]
    return [{"name": e["text"], "box": format_box(e["box"])} for e in annotation["expressions"]]


def describe_image(regions: list[dict[str, Any]]) -> str:
    """'There are two shapes: a small red circle[...] and a large blue square[...].'"""
    items = [f"a {r['name']}{r['box']}" for r in regions]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    if "shape" not in regions[0]:
        return f"The image shows {listed}."
    noun = "shape" if len(regions) == 1 else "shapes"
    verb = "is" if len(regions) == 1 else "are"
    return f"There {verb} {_number(len(regions))} {noun}: {listed}."


def image_question(
    kind: str, target: Any, regions: list[dict], rng: random.Random
) -> tuple[str, str]:
    """One grounded question/answer pair about an image region (or, for counts, a shape)."""
    if kind == "where":
        question = render("rec", rng, exp=f"the {target['name']}")
        return question, f"The {target['name']} is at {target['box']}."
    if kind == "what":
        return render("reg", rng, region=target["box"]), f"It is a {target['name']}{target['box']}."
    if kind == "color":
        question = render("object_color", rng, exp=f"{target['shape']}{target['box']}")
        return question, f"The {target['shape']}{target['box']} is {target['color']}."
    matches = [r for r in regions if r.get("shape") == target]
    question = render("object_count", rng, exp=f"{target}s")
    noun = target if len(matches) == 1 else f"{target}s"
    verb = "is" if len(matches) == 1 else "are"
    boxes = "".join(r["box"] for r in matches)
    return question, f"There {verb} {_number(len(matches))} {noun}{boxes}."


def compose_image(
    annotation: dict[str, Any], turns: int, rng: random.Random
) -> list[tuple[str, str]]:
    """A grounded description, then up to `turns - 1` questions about positions, colours, counts."""
    regions = _regions(annotation)
    if not regions:
        return []
    pairs = [(rng.choice(DESCRIBE_IMAGE), describe_image(regions))]
    candidates: list[tuple[str, Any]] = [("where", r) for r in regions]
    if "shape" in regions[0]:
        candidates += [("what", r) for r in regions] + [("color", r) for r in regions]
        candidates += [("count", s) for s in sorted({r["shape"] for r in regions})]
    for kind, target in rng.sample(candidates, min(len(candidates), max(0, turns - 1))):
        pairs.append(image_question(kind, target, regions, rng))
    return pairs


# ---------------------------------------------------------------------------- videos


def describe_video(events: list[dict[str, Any]]) -> str:
    """'First, X during {..}. Then Y during {..}.' in order of start time."""
    sentences = []
    for k, event in enumerate(events):
        lead = "First, " if k == 0 and len(events) > 1 else ("Then " if k else "")
        text = _sentence(event["text"])
        text = text if not lead else lead + text[:1].lower() + text[1:]
        sentences.append(f"{text} during {_span(event['span'])}.")
    return " ".join(sentences)


def video_question(kind: str, event: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """One grounded question/answer pair about a timed event."""
    span = _span(event["span"])
    if kind == "when":
        question = render("temporal_grounding", rng, event=event["text"])
        return question, f"It happens during {span}."
    if kind == "what":
        return render("dense_caption", rng, time=span), f"{_sentence(event['text'])}."
    order = "first" if kind == "first" else "last"
    return f"What happens {order} in the video?", f"{_sentence(event['text'])} during {span}."


def compose_video(
    annotation: dict[str, Any], turns: int, rng: random.Random
) -> list[tuple[str, str]]:
    """A timed overview of the events, then up to `turns - 1` temporal questions."""
    events = sorted(annotation["events"], key=lambda e: (e["span"][0], e["span"][1]))
    if not events:
        return []
    pairs = [(rng.choice(DESCRIBE_VIDEO), describe_video(events))]
    candidates: list[tuple[str, dict[str, Any]]] = [("when", e) for e in events]
    candidates += [("what", e) for e in events]
    # "first"/"last" only when no other event starts at the same time, so the answer is definite.
    if len(events) > 1 and events[0]["span"][0] < events[1]["span"][0]:
        candidates.append(("first", events[0]))
    if len(events) > 1 and events[-1]["span"][0] > events[-2]["span"][0]:
        candidates.append(("last", events[-1]))
    for kind, event in rng.sample(candidates, min(len(candidates), max(0, turns - 1))):
        pairs.append(video_question(kind, event, rng))
    return pairs
