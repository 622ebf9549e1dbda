"""What every converter builds on: the `Context` a converter gets (media, seeded questions, records)
and the loop that turns raw JSONL lines into records and rejections.

    >>> from ground.convert.context import Context, convert_lines
    >>> ctx = Context("demo_image", "train", Path("resources/demo"), Path("resources/demo"), seed=0)
    >>> records, rejected = convert_lines(lines, converter, ctx)   # rejected: line, id, reason
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ground.convert.fields import RejectRecord, text_field
from ground.convert.templates import render

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
