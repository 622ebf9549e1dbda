"""The authors' own converted JSON (zwli/GroundingGPT), accepted as an alternative source.

    >>> from ground.convert.sources.authors import convert_authors
    >>> records, rejected = convert_authors(  # doctest: +SKIP
    ...     "refcoco", Path("resources/groundinggpt/raw/authors"), "train", seed=0)

Reads `raw_dir/<the catalog's authors file>` (e.g. Stage2/refcoco.json) and keeps each record as
published once it passes our checks (`conversations.llava_parts`: turns, media tokens against
media fields, relative media paths; here also every box and span in 0..1 and ordered, and, with
`media_dir`, the media files existing). The task is inferred (`authors_task`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ground.common.catalog import Dataset
from ground.common.catalog import dataset as catalog_entry
from ground.common.formats import (
    FLOAT2,
    FLOAT3,
    format_box,
    forms,
    parse_boxes,
    parse_spans,
    rewrite,
)
from ground.convert.context import MEDIA_ORDER, Context
from ground.convert.fields import RejectRecord, at
from ground.convert.sources.conversations import (
    BOX,
    CAPTION_TASK,
    INSTRUCTION,
    SPAN,
    Result,
    Turns,
    check_box,
    convert_file,
    llava_parts,
)


def check_grounding(turns: Turns) -> None:
    """Every bracketed box and braced span parses, lies in 0..1 and is ordered (strictly)."""
    for number, turn in enumerate(turns):
        with at(f"conversations[{number}]"):
            for box in parse_boxes(turn["value"], FLOAT3):
                check_box(box, format_box(box, FLOAT3))
            for t1, t2 in parse_spans(turn["value"], FLOAT2):
                if not t1 < t2:
                    raise RejectRecord(f"span {{{t1}, {t2}}} needs t1 < t2")


def _only(text: str, pattern: re.Pattern[str]) -> bool:
    """`text` is nothing but matches of `pattern` (with separators)."""
    return bool(pattern.search(text)) and not pattern.sub("", text).strip(" ,.;\n")


def pair_task(question: str, answer: str, media: dict[str, str]) -> str | None:
    """The stage-2 task a question/answer pair is an instance of, if any."""
    if _only(answer, BOX):
        return "sound_localization" if "sound" in media else "rec"
    if _only(answer, SPAN):
        return "temporal_grounding"
    if BOX.search(answer) or SPAN.search(answer):
        return None
    if BOX.search(question):
        return "reg"
    if SPAN.search(question):
        return "dense_caption"
    return None


def authors_task(stage: int, media: dict[str, str], turns: Turns) -> str:
    """Stage 1: the caption task of the record's first medium. Otherwise the task every pair
    agrees on (answer only boxes: rec, or sound_localization with a sound; only spans:
    temporal_grounding; prose about a box: reg, about a span: dense_caption); else instruction."""
    if stage == 1:
        if not media:
            raise RejectRecord("a stage-1 caption record needs a media field")
        return CAPTION_TASK[next(kind for kind in MEDIA_ORDER if kind in media)]
    tasks = {
        pair_task(turns[i]["value"], turns[i + 1]["value"], media) for i in range(0, len(turns), 2)
    }
    (task,) = tasks if len(tasks) == 1 else (None,)
    return task or INSTRUCTION



def check_media_files(media: dict[str, str], media_dir: Path) -> None:
    for kind, rel in media.items():
        if not (media_dir / rel).is_file():
            raise RejectRecord(f"field {kind!r}: missing media file {(media_dir / rel).as_posix()}")


def training_split(entry: Dataset) -> str:
    """The published split the authors' (training) file stands for: the catalog's `train`."""
    return entry.published("train")


def convert_authors(
    dataset: str, raw_dir: Path, split: str, seed: int, *, media_dir: Path | None = None
) -> Result:
    """The authors' conversion of `dataset` (`raw_dir/<catalog authors file>`), accepted as
    published once it passes our checks: conversations, media tokens against media fields,
    relative media paths (existing under `media_dir` when given), every box and span in 0..1
    and ordered. The task is inferred (`authors_task`); the authors' id is `meta.raw_id`. Boxes
    and spans are re-written only in a form other than the authors' (`convert.coords`, `spans`)."""
    entry = catalog_entry(dataset)
    if not entry.authors:
        raise ValueError(f"{dataset}: the authors published no converted file for it")
    if split != training_split(entry):
        raise ValueError(
            f"{dataset}: {entry.authors} is training data; convert it as split "
            f"{training_split(entry)!r}, not {split!r}"
        )
    ctx = Context.annotations_only(dataset, split, seed)

    def one(item: dict[str, Any], raw_id: str, k: int) -> dict[str, Any]:
        media, turns = llava_parts(item, MEDIA_ORDER)
        if media_dir is not None:
            check_media_files(media, Path(media_dir))
        check_grounding(turns)
        task = authors_task(entry.stage, media, turns)
        turns = [{**turn, "value": rewrite(turn["value"], *forms())} for turn in turns]  # convert.coords
        return ctx.conversation(raw_id, task, k, media, turns, {"authors_file": entry.authors})

    return convert_file(Path(raw_dir) / entry.authors, one, label=entry.authors)
