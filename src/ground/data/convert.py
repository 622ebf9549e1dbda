"""The convert step: raw annotations of one (dataset, split) -> LLaVA-style conversation records.

    python -m ground.data.convert --dataset demo_image --split train --root resources/demo \
        --out results/convert/demo_image/train.jsonl \
        --manifest results/convert/demo_image/train.manifest.json --seed 0

Reads `ROOT/raw/DATASET/SPLIT.jsonl`, writes one JSON record per line to `--out` and a manifest
(counts per task, every rejected raw line with its number, id and reason). Questions are drawn
from the Table 11 template pools with a generator seeded per output record, so adding a raw record
never changes another record's question. A malformed raw record is rejected and reported; more
than `max_reject_fraction` rejected records fails the step. Real datasets plug in as further
entries of `CONVERTERS` (dataset name -> function turning one raw record into records).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ground.data.fields import (
    RejectRecord,
    at,
    field,
    index_field,
    list_field,
    positive_field,
    text_field,
)
from ground.data.formats import (
    box_to_square,
    format_box,
    format_span,
    validate_box_px,
    validate_span_s,
)
from ground.data.jsonl import brief_summary, write_outputs
from ground.data.templates import TEMPLATE_VERSION, render

# Order of media tokens inside the first human turn, as the model splices them.
MEDIA_ORDER = ("sound", "video", "image")
REASONS_IN_ERROR = 5


@dataclass(frozen=True)
class Context:
    """What a converter needs besides the raw record: where media live and how to seed."""

    dataset: str
    split: str
    root: Path
    media_prefix: Path
    seed: int

    @classmethod
    def annotations_only(cls, dataset: str, split: str, seed: int) -> Context:
        """For converters that read annotation files only: media are never looked at."""
        return cls(dataset, split, Path("."), Path("."), seed)

    def rng(self, raw_id: str, task: str, k: int) -> random.Random:
        """A generator private to one output record: stable under adding or removing others."""
        material = json.dumps([self.seed, self.dataset, self.split, raw_id, task, k])
        digest = hashlib.sha256(material.encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def media(self, raw: dict[str, Any], name: str) -> str:
        """The record's media path for field `name`: must be relative and exist under the root."""
        rel = text_field(raw, name)
        parts = PurePosixPath(rel)
        if parts.is_absolute() or ".." in parts.parts:
            raise RejectRecord(f"field {name!r}: media path {rel!r} must be relative to the root")
        if not (self.root / rel).is_file():
            raise RejectRecord(f"field {name!r}: missing media file {(self.root / rel).as_posix()}")
        return (self.media_prefix / rel).as_posix()

    def record(
        self,
        raw_id: str,
        task: str,
        k: int,
        media: dict[str, str],
        answer: str,
        meta: dict[str, Any],
        **slots: str,
    ) -> dict[str, Any]:
        """Record `k` of `task`: a question from the task's pool (filled with `slots`), `answer`.

        Media tokens lead the question in `MEDIA_ORDER`.
        """
        question = render(task, self.rng(raw_id, task, k), **slots)
        tokens = "".join(f"<{kind}>\n" for kind in MEDIA_ORDER if kind in media)
        turns = [{"from": "human", "value": tokens + question}, {"from": "gpt", "value": answer}]
        return self.conversation(raw_id, task, k, media, turns, meta)

    def conversation(
        self, raw_id: str, task: str, k: int, media: dict[str, str], turns: list, meta: dict
    ) -> dict[str, Any]:
        """Record `k` of `task` holding `turns` as given (e.g. a published conversation)."""
        return {
            "id": f"{self.dataset}-{self.split}-{raw_id}-{task}-{k}",
            "dataset": self.dataset,
            "split": self.split,
            "task": task,
            **{kind: media[kind] for kind in MEDIA_ORDER if kind in media},
            "conversations": turns,
            "meta": {"raw_id": raw_id, **meta},
        }


Converter = Callable[[dict[str, Any], Context], list[dict[str, Any]]]


def image_objects(raw: dict[str, Any], width: float, height: float) -> list[dict[str, Any]]:
    """The `objects` list with every attribute present and every box inside the image."""
    objects = []
    for i, obj in enumerate(list_field(raw, "objects")):
        with at(f"objects[{i}]"):
            if not isinstance(obj, dict):
                raise RejectRecord(f"must be an object, got {obj!r}")
            for attr in ("shape", "color", "size"):
                text_field(obj, attr)
            validate_box_px(field(obj, "box"), width, height)
        objects.append({**obj, "box": list(obj["box"])})
    return objects


# ---------------------------------------------------------------------------- demo converters


def convert_demo_image(raw: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Caption (stage 1), plus REC and REG records for every referring expression (stage 2)."""
    raw_id = text_field(raw, "id")
    width, height = positive_field(raw, "width"), positive_field(raw, "height")
    objects = image_objects(raw, width, height)
    caption = text_field(raw, "caption")
    media = {"image": ctx.media(raw, "image")}
    size = {"width": width, "height": height}
    caption_meta = {**size, "caption": caption, "objects": objects}
    records = [ctx.record(raw_id, "image_caption", 0, media, caption, caption_meta)]
    for k, expr in enumerate(list_field(raw, "expressions")):
        with at(f"expressions[{k}]"):
            if not isinstance(expr, dict):
                raise RejectRecord(f"must be an object, got {expr!r}")
            text = text_field(expr, "text")
            index = index_field(expr, "object", len(objects), "objects")
        box_px = objects[index]["box"]
        box = format_box(box_to_square(box_px, width, height))
        meta = {**size, "box_px": box_px, "expression": text, "object": index}
        records.append(ctx.record(raw_id, "rec", k, media, box, meta, exp=text))
        records.append(ctx.record(raw_id, "reg", k, media, text, meta, region=box))
    return records


def video_events(raw: dict[str, Any], duration: float) -> list[dict[str, Any]]:
    events = []
    for k, event in enumerate(list_field(raw, "events")):
        with at(f"events[{k}]"):
            if not isinstance(event, dict):
                raise RejectRecord(f"must be an object, got {event!r}")
            text = text_field(event, "text")
            validate_span_s(field(event, "start"), field(event, "end"), duration)
        events.append({**event, "text": text})
    return events


def convert_demo_video(raw: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Caption (stage 1), plus temporal grounding and dense captioning per event (stage 2)."""
    raw_id = text_field(raw, "id")
    duration = positive_field(raw, "duration")
    events = video_events(raw, duration)
    caption = text_field(raw, "caption")
    media = {"video": ctx.media(raw, "video")}
    extra = {key: raw[key] for key in ("fps", "width", "height") if key in raw}
    caption_meta = {"duration": duration, **extra, "caption": caption, "events": events}
    records = [ctx.record(raw_id, "video_caption", 0, media, caption, caption_meta)]
    for k, event in enumerate(events):
        text, segment = event["text"], [event["start"], event["end"]]
        span = format_span(event["start"], event["end"], duration)
        tg_meta = {"duration": duration, "segment_s": segment, "query": text}
        dc_meta = {"duration": duration, "segment_s": segment, "event": text}
        records.append(
            ctx.record(raw_id, "temporal_grounding", k, media, span, tg_meta, event=text)
        )
        records.append(ctx.record(raw_id, "dense_caption", k, media, text, dc_meta, time=span))
    return records


def sound_source_box(raw: dict[str, Any], width: float, height: float) -> list[float]:
    """The sounding object's box; when `objects`/`source` are given they must agree with it."""
    with at("box"):
        validate_box_px(field(raw, "box"), width, height)
    box = list(raw["box"])
    if "objects" in raw and "source" in raw:
        objects = image_objects(raw, width, height)
        source = index_field(raw, "source", len(objects), "objects")
        if any(abs(a - b) > 0.5 for a, b in zip(box, objects[source]["box"], strict=True)):
            expected = objects[source]["box"]
            raise RejectRecord(f"box {box} differs from objects[{source}].box {expected}")
    return box


def convert_demo_audio(raw: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """Audio caption (sound only, stage 1) and sound localisation (sound + image, stage 2)."""
    raw_id = text_field(raw, "id")
    duration = positive_field(raw, "duration")
    width, height = positive_field(raw, "width"), positive_field(raw, "height")
    box_px = sound_source_box(raw, width, height)
    caption = text_field(raw, "caption")
    sound = ctx.media(raw, "audio")
    image = ctx.media(raw, "image")
    loc_meta: dict[str, Any] = {"width": width, "height": height, "box_px": box_px}
    loc_meta |= {key: raw[key] for key in ("source", "objects") if key in raw}
    box = format_box(box_to_square(box_px, width, height))
    caption_meta = {"duration": duration, "caption": caption}
    return [
        ctx.record(raw_id, "audio_caption", 0, {"sound": sound}, caption, caption_meta),
        ctx.record(
            raw_id, "sound_localization", 0, {"sound": sound, "image": image}, box, loc_meta
        ),
    ]


CONVERTERS: dict[str, Converter] = {
    "demo_image": convert_demo_image,
    "demo_video": convert_demo_video,
    "demo_audio": convert_demo_audio,
}


# ---------------------------------------------------------------------------- the step


def converter_for(dataset: str) -> Converter:
    try:
        return CONVERTERS[dataset]
    except KeyError:
        known = sorted(CONVERTERS)
        raise ValueError(f"no converter for dataset {dataset!r}; known: {known}") from None


def convert_lines(
    lines: list[str], converter: Converter, ctx: Context
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Converted records and rejections (line number, id, reason) of the raw JSONL lines."""
    records: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        raw_id = None
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise RejectRecord(f"expected a JSON object, got {type(raw).__name__}")
            raw_id = raw.get("id")
            if isinstance(raw_id, str) and raw_id in first_line:
                raise RejectRecord(f"duplicate id (first seen on line {first_line[raw_id]})")
            converted = converter(raw, ctx)
        except json.JSONDecodeError as err:
            rejected.append({"line": number, "id": None, "reason": f"not valid JSON: {err}"})
            continue
        except RejectRecord as err:
            rejected.append({"line": number, "id": raw_id, "reason": str(err)})
            continue
        first_line[raw_id] = number
        records.extend(converted)
    return records, rejected


def check_rejections(raw_path: Path, records_in: int, rejected: list[dict], limit: float) -> None:
    """Fail the step when the raw file is empty or too much of it is malformed."""
    if records_in == 0:
        raise ValueError(f"{raw_path}: no raw records")
    if len(rejected) / records_in > limit:
        # Evaluation-set converters put the file and line or id into the reason itself.
        first = "; ".join(
            f"line {r['line']} (id {r['id']}): {r['reason']}" if {"line", "id"} <= r.keys() else r["reason"]
            for r in rejected[:REASONS_IN_ERROR]
        )
        raise ValueError(
            f"{raw_path}: {len(rejected)} of {records_in} raw records rejected, more than "
            f"max_reject_fraction={limit}; first: {first}"
        )


def convert_dataset(
    dataset: str,
    split: str,
    root: Path,
    out: Path,
    manifest: Path,
    *,
    seed: int,
    media_root_prefix: Path | None = None,
    max_reject_fraction: float = 0.05,
    authors: bool = False,
) -> dict[str, Any]:
    """Convert `root/raw/dataset/split.jsonl`; media paths are written as `prefix/relative`.

    Real datasets (`ground.data.catalog`) are read from their published files in
    `root/raw/dataset/` (or, with `authors`, from the authors' converted JSON): see
    `ground.data.published`.

    `media_root_prefix` defaults to `root` (the media must exist under `root` either way); give
    another prefix when the records will be read where the media live elsewhere.
    """
    if dataset not in CONVERTERS:
        # Imported here: the real-data converters build on this module's Context and checks.
        from ground.data.catalog import DATASETS
        from ground.data.published import convert_published

        if dataset not in DATASETS:
            known = sorted(CONVERTERS) + sorted(DATASETS)
            raise ValueError(f"no converter for dataset {dataset!r}; known: {known}")
        return convert_published(dataset, split, root, out, manifest, seed=seed,
                                 max_reject_fraction=max_reject_fraction, authors=authors)  # fmt: skip
    converter = converter_for(dataset)
    root = Path(root)
    raw_path = root / "raw" / dataset / f"{split}.jsonl"
    if not raw_path.is_file():
        raise FileNotFoundError(f"{raw_path}: raw annotations of {dataset}/{split} not found")
    prefix = Path(media_root_prefix) if media_root_prefix is not None else root
    ctx = Context(dataset, split, root, prefix, seed)
    lines = raw_path.read_text(encoding="utf-8").splitlines()
    records, rejected = convert_lines(lines, converter, ctx)
    check_rejections(raw_path, len(lines), rejected, max_reject_fraction)
    summary = {
        "dataset": dataset,
        "split": split,
        "raw": raw_path.as_posix(),
        "records_in": len(lines),
        "records_out": len(records),
        "by_task": dict(sorted(Counter(r["task"] for r in records).items())),
        "rejected": rejected,
        "template_version": TEMPLATE_VERSION,
        "seed": seed,
    }
    write_outputs(out, records, manifest, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--media-root-prefix", type=Path, default=None)
    parser.add_argument("--max-reject-fraction", type=float, default=0.05)
    parser.add_argument("--authors", action="store_true", help="read zwli/GroundingGPT's JSON")
    # Option names match convert_dataset's parameters, so the namespace passes straight through.
    summary = convert_dataset(**vars(parser.parse_args()))
    print(brief_summary(summary))
    print(f"rejected: {len(summary['rejected'])}")


if __name__ == "__main__":
    main()
