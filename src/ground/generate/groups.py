"""Converted records grouped per media file: what one dialogue request is made from.

    python -c "from pathlib import Path; from ground.generate.groups import load_groups; \
        print(load_groups([Path('results/convert/demo_image/train.jsonl')])[0][0].annotation())"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground.common.formats import box_to_square


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
