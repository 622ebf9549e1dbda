"""The generate step: grounded multi-turn dialogues (stage-3 instruction data) from converted data.

    python -m ground.instruct.generate --sources results/convert/demo_image/train.jsonl \
        results/convert/demo_video/train.jsonl --out results/generate/dialogues.jsonl \
        --manifest results/generate/dialogues.manifest.json --seed 0 --cache-dir cache/generate

Converted records are grouped per media file; each group's annotations (objects and boxes,
expressions, timed events, in the model's normalised units) become one request to a backend
(`BACKENDS`; "offline" is the deterministic composer of `ground.instruct.offline`, a GPT backend
plugs in beside it). Every response goes through a cache keyed by the sha256 of the backend, model,
prompt version, request and sampling parameters, so a rerun never pays twice (and two media files
with identical annotations share one response: the request never names the file). Each dialogue is
validated: every box or span it mentions must be one of the annotations'; others are rejected and
counted by reason in the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ground.data.formats import box_to_square, parse_boxes, parse_spans
from ground.data.jsonl import brief_summary, write_outputs, write_text_atomic
from ground.instruct.offline import OfflineComposer

TASK = "grounded_dialogue"
# A box or span matches an annotation if every coordinate is within this: formatting to 3 (2)
# decimals moves a value by at most half a unit, and a re-rounding backend by one more.
BOX_TOLERANCE = 0.0015
SPAN_TOLERANCE = 0.015


class Backend(Protocol):
    """What a dialogue backend provides; `complete` is the only call that may cost money."""

    name: str
    model: str
    prompt_version: str

    def request(self, annotation: dict[str, Any], turns: int) -> dict[str, Any]: ...

    def sampling(self, seed: int) -> dict[str, Any]: ...

    def complete(self, request: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]: ...


BACKENDS: dict[str, Callable[[], Backend]] = {"offline": OfflineComposer}


def make_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown instruction backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]()


@dataclass
class MediaGroup:
    """The annotations of one media file, gathered from all converted records that name it."""

    kind: str  # "image" | "video"
    media: str
    dataset: str
    split: str
    raw_id: str
    meta: dict[str, Any] = field(default_factory=dict)  # width/height or duration
    caption: str = ""
    objects: list[dict[str, Any]] = field(default_factory=list)
    expressions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Events seen only through temporal-grounding records (datasets without a caption record).
    queries: list[dict[str, Any]] = field(default_factory=list)

    def box(self, box_px: list[float]) -> list[float]:
        square = box_to_square(box_px, self.meta["width"], self.meta["height"])
        return [round(v, 3) for v in square]

    def span(self, start: float, end: float) -> list[float]:
        duration = self.meta["duration"]
        return [round(min(1.0, max(0.0, t / duration)), 2) for t in (start, end)]

    def annotation(self) -> dict[str, Any]:
        """The request content, in normalised units (the media path is deliberately absent)."""
        if self.kind == "image":
            objects = [
                {k: o[k] for k in ("shape", "color", "size")} | {"box": self.box(o["box"])}
                for o in self.objects
            ]
            expressions = [
                {"text": e["text"], "box": self.box(e["box_px"])} for e in self.expressions
            ]
            return {
                "kind": "image",
                "caption": self.caption,
                "objects": objects,
                "expressions": expressions,
            }
        events = self.events or self.queries
        events = [{"text": e["text"], "span": self.span(e["start"], e["end"])} for e in events]
        return {"kind": "video", "caption": self.caption, "events": events}


def _add_record(group: MediaGroup, record: dict[str, Any]) -> None:
    meta = record.get("meta", {})
    for key in ("width", "height", "duration"):
        if key in meta:
            group.meta[key] = meta[key]
    if record["task"] in ("image_caption", "video_caption") and not group.caption:
        group.caption = meta["caption"]
    if "objects" in meta and not group.objects:
        group.objects = list(meta["objects"])
    if "events" in meta and not group.events:
        group.events = list(meta["events"])
    if record["task"] == "rec":
        group.expressions.append({"text": meta["expression"], "box_px": meta["box_px"]})
    if record["task"] == "temporal_grounding":
        start, end = meta["segment_s"]
        group.queries.append({"text": meta["query"], "start": start, "end": end})


def load_groups(sources: list[Path]) -> tuple[list[MediaGroup], int, int]:
    """Media groups (in first-seen order), records read, records skipped (no image or video)."""
    groups: dict[tuple[str, str], MediaGroup] = {}
    read = skipped = 0
    for path in sources:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON record ({err})") from err
            read += 1
            # Sound localisation also names an image; dialogues are about images and videos only.
            kind = next((k for k in ("video", "image") if k in record), None)
            if kind is None or "sound" in record:
                skipped += 1
                continue
            key = (kind, record[kind])
            if key not in groups:
                raw_id = record["meta"]["raw_id"]
                groups[key] = MediaGroup(
                    kind, record[kind], record["dataset"], record["split"], raw_id
                )
            _add_record(groups[key], record)
    return list(groups.values()), read, skipped


class InvalidDialogue(ValueError):
    """A generated dialogue that fails validation; `reason` is the manifest's counting key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _close(found: tuple[float, ...], known: list[list[float]], tolerance: float) -> bool:
    return any(all(abs(a - b) <= tolerance for a, b in zip(found, k, strict=True)) for k in known)


def validate_dialogue(response: dict[str, Any], annotation: dict[str, Any]) -> list[dict[str, str]]:
    """The response's turns if well formed and every box/span is one of the annotation's."""
    turns = response.get("conversations") if isinstance(response, dict) else None
    if not isinstance(turns, list) or not turns or len(turns) % 2:
        raise InvalidDialogue("malformed conversation", "expected an even, non-empty list of turns")
    for k, turn in enumerate(turns):
        speaker = "human" if k % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != speaker:
            raise InvalidDialogue("malformed conversation", f"turn {k} should be from {speaker}")
        if not isinstance(turn.get("value"), str) or not turn["value"].strip():
            raise InvalidDialogue("malformed conversation", f"turn {k} has no text")
    boxes = [o["box"] for o in annotation.get("objects", [])]
    boxes += [e["box"] for e in annotation.get("expressions", [])]
    spans = [e["span"] for e in annotation.get("events", [])]
    grounded = False
    for k, turn in enumerate(turns):
        try:
            found_boxes, found_spans = parse_boxes(turn["value"]), parse_spans(turn["value"])
        except ValueError as err:
            raise InvalidDialogue("unparsable box or span", f"turn {k}: {err}") from None
        for box in found_boxes:
            if not _close(box, boxes, BOX_TOLERANCE):
                raise InvalidDialogue("box not in annotations", f"turn {k}: {list(box)}")
        for span in found_spans:
            if not _close(span, spans, SPAN_TOLERANCE):
                raise InvalidDialogue("span not in annotations", f"turn {k}: {list(span)}")
        grounded |= k % 2 == 1 and bool(found_boxes or found_spans)
    if not grounded:
        raise InvalidDialogue("ungrounded", "no answer mentions a box or a span")
    return [{"from": t["from"], "value": t["value"]} for t in turns]


def cache_key(material: dict[str, Any]) -> str:
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Backend responses on disk at `root/<key[:2]>/<key>.json`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))["response"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            # A damaged entry is not silently re-bought: someone should look at it first.
            raise ValueError(
                f"{path}: unreadable cache entry ({err!r}); delete it to retry"
            ) from err

    def put(self, key: str, material: dict[str, Any], response: dict[str, Any]) -> None:
        entry = {"key": key, "material": material, "response": response}
        write_text_atomic(self.path(key), json.dumps(entry, indent=1, ensure_ascii=False) + "\n")


def dialogue_record(
    group: MediaGroup, turns: list[dict[str, str]], backend: Backend, key: str
) -> dict[str, Any]:
    first = {"from": "human", "value": f"<{group.kind}>\n" + turns[0]["value"]}
    if group.kind == "image":
        ground_truth = {"objects": group.objects, "expressions": group.expressions}
    else:
        ground_truth = {"events": group.events or group.queries}
    return {
        "id": f"{group.dataset}-{group.split}-{group.raw_id}-{TASK}-0",
        "dataset": group.dataset,
        "split": group.split,
        "task": TASK,
        group.kind: group.media,
        "conversations": [first, *turns[1:]],
        "meta": {
            "raw_id": group.raw_id,
            **group.meta,
            **ground_truth,
            "backend": backend.name,
            "model": backend.model,
            "prompt_version": backend.prompt_version,
            "cache_key": key,
        },
    }


def respond(
    engine: Backend, cache: ResponseCache, annotation: dict[str, Any], *, seed: int, turns: int
) -> tuple[str, dict[str, Any], bool]:
    """(cache key, response, whether it came from the cache); calls the backend on a miss only."""
    material = {
        "backend": engine.name,
        "model": engine.model,
        "prompt_version": engine.prompt_version,
        "request": engine.request(annotation, turns),
        "sampling": engine.sampling(seed),
    }
    key = cache_key(material)
    response = cache.get(key)
    if response is not None:
        return key, response, True
    response = engine.complete(material["request"], material["sampling"])
    cache.put(key, material, response)
    return key, response, False


def generate_instructions(
    sources: list[Path],
    out: Path,
    manifest: Path,
    *,
    backend: str = "offline",
    seed: int,
    cache_dir: Path,
    turns: int = 3,
) -> dict[str, Any]:
    """Write one validated grounded dialogue per media file of `sources`; returns the manifest.

    `turns` counts question/answer pairs per dialogue, the first being the grounded overview
    (a detailed description of an image, the timed events of a video).
    """
    if turns < 1:
        raise ValueError(f"turns must be at least 1, got {turns}")
    engine = make_backend(backend)
    cache = ResponseCache(cache_dir)
    groups, records_in, skipped = load_groups(sources)
    records, rejected = [], []
    requests = hits = 0
    for group in groups:
        annotation = group.annotation()
        # Nothing to ground a dialogue in: not worth a (possibly paid) request.
        if not any(annotation.get(k) for k in ("objects", "expressions", "events")):
            rejected.append({"media": group.media, "reason": "no annotations", "detail": ""})
            continue
        key, response, cached = respond(engine, cache, annotation, seed=seed, turns=turns)
        hits += cached
        requests += not cached
        try:
            dialogue = validate_dialogue(response, annotation)
        except InvalidDialogue as err:
            rejected.append({"media": group.media, "reason": err.reason, "detail": err.detail})
            continue
        records.append(dialogue_record(group, dialogue, engine, key))
    summary = {
        "backend": engine.name,
        "model": engine.model,
        "prompt_version": engine.prompt_version,
        "sources": [Path(s).as_posix() for s in sources],
        "seed": seed,
        "turns": turns,
        "records_in": records_in,
        "records_skipped": skipped,
        "media": len(groups),
        "records_out": len(records),
        "requests": requests,
        "cache_hits": hits,
        "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in rejected).items())),
        "rejected": rejected,
    }
    write_outputs(out, records, manifest, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", required=True, nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--cache-dir", required=True, type=Path)
    parser.add_argument("--backend", default="offline", choices=sorted(BACKENDS))
    parser.add_argument("--turns", type=int, default=3)
    # Option names match generate_instructions's parameters: the namespace passes straight through.
    print(brief_summary(generate_instructions(**vars(parser.parse_args()))))


if __name__ == "__main__":
    main()
