"""Converters for conversation-format ("LLaVA-style") sources (the authors' JSON: `authors.py`).

    >>> from ground.convert.sources.conversations import convert_llava_mix665k
    >>> records, rejected = convert_llava_mix665k(  # doctest: +SKIP
    ...     "llava_mix665k", Path("raw/llava_mix665k"), "train", seed=0)

Each converter has the catalog's signature `(dataset, raw_dir, split, seed) -> (records,
rejected)` and reads one published file, named as upstream, from `raw_dir`:

    convert_llava_pretrain    blip_laion_cc_sbu_558k.json   image_caption (question re-drawn)
    convert_valley_pretrain   train.json                    video_caption (question re-drawn) when
                                                            the record is one human/gpt pair,
                                                            else instruction (kept as published)
    convert_llava_mix665k     llava_v1_5_mix665k.json       instruction (boxes re-formatted)
    convert_valley_instruct   valley_instruct_73k.json      instruction
    convert_videochat_11k     videochat_instruct_11k.json   instruction (one record per video)

Records have `ground.convert.context`'s schema: captions are built by `Context.record`, kept
conversations get the same shape with the media tokens moved to the front of the first human turn
in `MEDIA_ORDER`. Media paths are relative to the dataset's media folder. A rejection is `{"index", "id",
"reason"}`, the reason naming the file, the record's index and id and what is wrong.

Ids are `{dataset}-{split}-{raw_id}-{task}-{k}`, k counting earlier records with the same raw id
in the file: LLaVA-1.5 and VideoChat key records by their image or video, so one raw id may carry
several different conversations. A record identical to an earlier one is rejected as a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ground.common.formats import format_box
from ground.common.jsonl import read_json
from ground.convert.context import MEDIA_ORDER, Context
from ground.convert.fields import RejectRecord, at, field, list_field, text_field
from ground.model.template import STOP

Records = list[dict[str, Any]]
Result = tuple[Records, list[dict[str, Any]]]
Turns = list[dict[str, str]]
# (raw record, raw id, occurrence k of that id) -> one converted record
OneRecord = Callable[[dict[str, Any], str, int], dict[str, Any]]

MEDIA_TOKENS = {"sound": "<sound>", "video": "<video>", "image": "<image>"}
CAPTION_TASK = {"sound": "audio_caption", "video": "video_caption", "image": "image_caption"}
INSTRUCTION = "instruction"
# The model's own splice tokens: written literally they would splice features where none are.
_RESERVED = re.compile(r"<(?:im|vi|so)_(?:patch|start|end)>")
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
SPAN = re.compile(r"\{" + _NUM + "," + _NUM + r"\}")
_LEADING_TOKENS = re.compile(r"^(?:<(?:sound|video|image)>\n)+")


# ---------------------------------------------------------------------------- reading


def raw_id_field(item: dict[str, Any]) -> str:
    value = field(item, "id")
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise RejectRecord(f"field 'id' must be a non-empty string or integer, got {value!r}")
    return str(value).strip()


def convert_file(
    path: Path,
    convert_one: OneRecord,
    label: str | None = None,
    raw_id_of: Callable[[dict[str, Any]], str] = raw_id_field,
) -> Result:
    """Records and rejections of every item of `path` (`label` names the file in reasons)."""
    label = label or path.name
    records: Records = []
    rejected: list[dict[str, Any]] = []
    first: dict[bytes, int] = {}  # digest of a record's content -> its index
    seen: Counter[str] = Counter()
    for index, item in enumerate(read_json(path, list, "a JSON list of records")):
        raw_id = None
        try:
            if not isinstance(item, dict):
                raise RejectRecord(f"expected a JSON object, got {type(item).__name__}")
            raw_id = raw_id_of(item)
            digest = hashlib.sha1(json.dumps(item, sort_keys=True).encode()).digest()
            if digest in first:
                raise RejectRecord(f"duplicate of record {first[digest]} (same id and content)")
            first[digest] = index
            record = convert_one(item, raw_id, seen[raw_id])
        except RejectRecord as err:
            reason = f"{label}: record {index} (id {raw_id!r}): {err}"
            rejected.append({"index": index, "id": raw_id, "reason": reason})
            continue
        seen[raw_id] += 1
        records.append(record)
    return records, rejected


# ---------------------------------------------------------------------------- LLaVA-style checks


def conversation_turns(item: dict[str, Any]) -> Turns:
    """`conversations` as non-empty human/gpt turns alternating from human to gpt."""
    turns = list_field(item, "conversations")
    if not turns or len(turns) % 2:
        raise RejectRecord(f"'conversations' needs human/gpt pairs, got {len(turns)} turn(s)")
    checked: Turns = []
    for number, turn in enumerate(turns):
        expected = "gpt" if number % 2 else "human"
        with at(f"conversations[{number}]"):
            got = turn.get("from") if isinstance(turn, dict) else turn
            if got != expected:
                raise RejectRecord(f"expected a turn from {expected!r}, got {got!r}")
            value = text_field(turn, "value")
            reserved = _RESERVED.search(value)
            if reserved:
                raise RejectRecord(f"holds the reserved token {reserved.group(0)}")
            if STOP in value:  # the template's turn separator: training would cut the turn there
                raise RejectRecord(f"holds the stop string {STOP!r}")
        checked.append({"from": expected, "value": value})
    return checked


def media_path(item: dict[str, Any], name: str) -> str:
    """Field `name` as a path relative to the media folder (no absolute path, no `..`)."""
    rel = text_field(item, name)
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise RejectRecord(
            f"field {name!r}: media path {rel!r} must be relative to the media folder"
        )
    return path.as_posix()


def item_media(
    item: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> dict[str, str]:
    """The record's media fields (`MEDIA_ORDER` names): `required` ones must be there."""
    unexpected = [kind for kind in MEDIA_ORDER if kind in item and kind not in allowed]
    if unexpected:
        raise RejectRecord(
            f"unexpected media field(s) {unexpected}; this source has {list(allowed)}"
        )
    return {
        kind: media_path(item, kind) for kind in MEDIA_ORDER if kind in item or kind in required
    }


def lead_media(turns: Turns, media: dict[str, str]) -> Turns:
    """Each media field's token once, in the first human turn, moved to its front in
    `MEDIA_ORDER`; a token without its field (or a field without its token) is rejected."""
    for number, turn in enumerate(turns):
        for kind, token in MEDIA_TOKENS.items():
            count = turn["value"].count(token)
            if count and kind not in media:
                raise RejectRecord(f"turn {number} has {token} but the record has no {kind!r}")
            if count and (number or count > 1):
                raise RejectRecord(
                    f"{token} must appear once, in the first human turn (turn {number} has {count})"
                )
    question = turns[0]["value"]
    for kind in media:
        token = MEDIA_TOKENS[kind]
        if token not in question:
            raise RejectRecord(f"field {kind!r} is given but the first human turn lacks {token}")
        question = re.sub(rf"\n*{re.escape(token)}\n*", "\n", question)
    question = question.strip()
    if not question:
        raise RejectRecord("the first human turn holds nothing but media tokens")
    tokens = "".join(f"{MEDIA_TOKENS[kind]}\n" for kind in MEDIA_ORDER if kind in media)
    return [{"from": "human", "value": tokens + question}, *turns[1:]]


def llava_parts(
    item: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> tuple[dict[str, str], Turns]:
    """Validated media paths and conversation of a LLaVA-style record (RejectRecord if broken):
    the shared check of every converter here."""
    media = item_media(item, allowed, required)
    return media, lead_media(conversation_turns(item), media)


def question_text(turn: dict[str, str]) -> str:
    """A human turn without its leading media tokens."""
    return _LEADING_TOKENS.sub("", turn["value"])


# ---------------------------------------------------------------------------- boxes and spans


def check_box(box: tuple[float, ...], written: str) -> None:
    x1, y1, x2, y2 = box
    if not all(0.0 <= v <= 1.0 for v in box):
        raise RejectRecord(f"box {written} lies outside 0..1")
    if not (x1 < x2 and y1 < y2):
        raise RejectRecord(f"box {written} needs x1 < x2 and y1 < y2")


def reformat_boxes(turns: Turns) -> Turns:
    """Every `[x1, y1, x2, y2]` checked (0..1, ordered) and re-written in the form in effect
    (`convert.coords`: 3 decimals by default)."""

    def one(match: re.Match[str]) -> str:
        box = tuple(float(v) for v in match.groups())
        check_box(box, match.group(0))
        return format_box(box)

    out: Turns = []
    for number, turn in enumerate(turns):
        with at(f"conversations[{number}]"):
            out.append({**turn, "value": BOX.sub(one, turn["value"])})
    return out


# ---------------------------------------------------------------------------- sources


def caption_or_kept(
    ctx: Context, raw_id: str, k: int, media: dict[str, str], turns: Turns, meta: dict[str, Any]
) -> dict[str, Any]:
    """One human/gpt pair: a caption record with the question re-drawn from the pool of the
    medium's caption task; a longer conversation: kept as an instruction record."""
    if len(turns) != 2:
        return ctx.conversation(raw_id, INSTRUCTION, k, media, turns, meta)
    task = CAPTION_TASK[next(kind for kind in MEDIA_ORDER if kind in media)]
    meta = {**meta, "raw_question": question_text(turns[0])}
    return ctx.record(raw_id, task, k, media, turns[1]["value"], meta)


def convert_llava_pretrain(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """LLaVA-Pretrain-558K: image captions, the question re-drawn from the caption pool."""
    ctx = Context.annotations_only(dataset, split, seed)

    def one(item: dict[str, Any], raw_id: str, k: int) -> dict[str, Any]:
        media, turns = llava_parts(item, ("image",), ("image",))
        if len(turns) != 2:
            raise RejectRecord(f"expected one human/gpt pair, got {len(turns)} turns")
        return caption_or_kept(ctx, raw_id, k, media, turns, {})

    return convert_file(Path(raw_dir) / "blip_laion_cc_sbu_558k.json", one)


def valley_media(media: dict[str, str], item: dict[str, Any], by_source: bool) -> dict[str, str]:
    """Valley's video path: `.mp4` added when it has no suffix (as Valley's loader does), under
    `<source>/` when `by_source` and the record names its source (VATEX, jukinmedia, ...)."""
    video = media["video"]
    if not PurePosixPath(video).suffix:
        video += ".mp4"
    if by_source and "source" in item:
        source = text_field(item, "source")
        if "/" in source or source in (".", ".."):
            raise RejectRecord(f"field 'source' must be a folder name, got {source!r}")
        video = f"{source}/{video}"
    return {**media, "video": video}


def valley_tokens(item: dict[str, Any]) -> dict[str, Any]:
    """Valley's loader splices the video at `<image>` as at `<video>`: read both as `<video>`."""
    turns = item.get("conversations")
    if not isinstance(turns, list):
        return item
    renamed = [
        {**turn, "value": turn["value"].replace(MEDIA_TOKENS["image"], MEDIA_TOKENS["video"])}
        if isinstance(turn, dict) and isinstance(turn.get("value"), str)
        else turn
        for turn in turns
    ]
    return {**item, "conversations": renamed}


def convert_valley_pretrain(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Valley-webvid2M-Pretrain-703K: a single human/gpt pair is a video caption (question
    re-drawn); a multi-turn conversation is kept whole as an instruction record."""
    ctx = Context.annotations_only(dataset, split, seed)

    def one(item: dict[str, Any], raw_id: str, k: int) -> dict[str, Any]:
        media, turns = llava_parts(valley_tokens(item), ("video",), ("video",))
        media = valley_media(media, item, by_source=False)
        return caption_or_kept(ctx, raw_id, k, media, turns, {})

    return convert_file(Path(raw_dir) / "train.json", one)


def convert_llava_mix665k(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """LLaVA-v1.5-mix665k: conversations kept (multi-turn, possibly text-only); in records with
    an image every `[x1, y1, x2, y2]` (already relative to the padded square) is checked and
    re-written (`convert.coords`). Boxes of text-only records are left alone: code, not boxes."""
    ctx = Context.annotations_only(dataset, split, seed)

    def one(item: dict[str, Any], raw_id: str, k: int) -> dict[str, Any]:
        media, turns = llava_parts(item, ("image",))
        if media:
            turns = reformat_boxes(turns)
        return ctx.conversation(raw_id, INSTRUCTION, k, media, turns, {})

    return convert_file(Path(raw_dir) / "llava_v1_5_mix665k.json", one)


def convert_valley_instruct(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Valley-Instruct-73k: conversations kept; videos under `<source>/` of the media folder."""
    ctx = Context.annotations_only(dataset, split, seed)

    def one(item: dict[str, Any], raw_id: str, k: int) -> dict[str, Any]:
        media, turns = llava_parts(valley_tokens(item), ("video",), ("video",))
        media = valley_media(media, item, by_source=True)
        meta = {"source": item["source"]} if "source" in item else {}
        return ctx.conversation(raw_id, INSTRUCTION, k, media, turns, meta)

    return convert_file(Path(raw_dir) / "valley_instruct_73k.json", one)


def _optional_text(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name, "")
    if not isinstance(value, str):
        raise RejectRecord(f"field {name!r} must be a string, got {value!r}")
    return value.strip()


def videochat_turns(item: dict[str, Any]) -> Turns:
    """VideoChat's `QA` list as turns: human = `i` (when it changes) and `q`, gpt = `a`."""
    qa = list_field(item, "QA")
    if not qa:
        raise RejectRecord("field 'QA' is empty")
    turns: Turns = []
    last_instruction = ""
    for j, entry in enumerate(qa):
        with at(f"QA[{j}]"):
            if not isinstance(entry, dict):
                raise RejectRecord(f"must be an object, got {entry!r}")
            instruction, question = _optional_text(entry, "i"), _optional_text(entry, "q")
            answer = text_field(entry, "a")
            shown = instruction if instruction != last_instruction else ""
            parts = [part for part in (shown, question) if part]
            if not parts:
                raise RejectRecord("'i' and 'q' are both empty")
        last_instruction = instruction or last_instruction
        turns += [{"from": "human", "value": "\n".join(parts)}, {"from": "gpt", "value": answer}]
    turns[0] = {"from": "human", "value": MEDIA_TOKENS["video"] + "\n" + turns[0]["value"]}
    return turns


def video_id(item: dict[str, Any]) -> str:
    """VideoChat records have no id: the video path without its suffix stands for one."""
    return PurePosixPath(text_field(item, "video")).with_suffix("").as_posix()


def convert_videochat_11k(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """VideoChat-Instruct-11K: one multi-turn instruction record per video entry."""
    ctx = Context.annotations_only(dataset, split, seed)

    def one(item: dict[str, Any], raw_id: str, k: int) -> dict[str, Any]:
        llava_item = {"video": item["video"], "conversations": videochat_turns(item)}
        media, turns = llava_parts(llava_item, ("video",), ("video",))
        return ctx.conversation(raw_id, INSTRUCTION, k, media, turns, {})

    return convert_file(Path(raw_dir) / "videochat_instruct_11k.json", one, raw_id_of=video_id)


# ---------------------------------------------------------------------------- the authors' files
