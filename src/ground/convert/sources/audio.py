"""Converters for the audio training sources' published annotations -> audio caption records.

    >>> from ground.convert.sources.audio import convert_clotho
    >>> records, rejected = convert_clotho(  # doctest: +SKIP
    ...     "clotho", Path("resources/raw/clotho"), "development", seed=0)

Also `convert_wavcaps` (the four `json_files` of WavCaps). Both have the catalog's converter
signature `(dataset, raw_dir, split, seed)`, read annotation files only and return
`(records, rejected)`: `audio_caption` records (media field `sound`, path relative to the
dataset's media folder) in `ground.convert.context`'s schema, and one `{"id", "line" or "index",
"reason"}` per caption that could not be converted, the reason naming the file and the record.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path, PurePosixPath
from typing import Any

from ground.common.jsonl import read_json
from ground.convert.context import Context
from ground.convert.fields import RejectRecord

Records = list[dict[str, Any]]
Result = tuple[Records, list[dict[str, Any]]]

# WavCaps json file -> the folder its audio is extracted to (the source's name in WavCaps).
WAVCAPS_SOURCES = {
    "as_final.json": "AudioSet_SL",
    "bbc_final.json": "BBC_Sound_Effects",
    "fsd_final.json": "FreeSound",
    "sb_final.json": "SoundBible",
}
WAVCAPS_AUDIO_EXT = ".flac"  # the released archives hold FLAC; ids without extension get it
CLOTHO_CAPTIONS = 5


def _caption(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RejectRecord(f"{what} {value!r} is not a non-empty string")
    return value.strip()


# ---------------------------------------------------------------------------- WavCaps


def wavcaps_file(raw_dir: Path, name: str) -> Path | None:
    """Where `name` is: flat in `raw_dir` (the catalog's layout) or as the hub repo nests it."""
    for path in (raw_dir / name, raw_dir / "json_files" / WAVCAPS_SOURCES[name] / name):
        if path.is_file():
            return path
    return None


def wavcaps_audio(entry: dict[str, Any]) -> tuple[str, str]:
    """(id, audio file name) of an entry: the id, plus `.flac` when it has no extension."""
    raw = entry.get("id")
    if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).strip():
        raise RejectRecord(f"id {raw!r} is missing or not an id")
    ident = str(raw).strip()
    if "/" in ident or ident.startswith("."):
        raise RejectRecord(f"id {ident!r} is not a plain file name")
    name = ident if PurePosixPath(ident).suffix else ident + WAVCAPS_AUDIO_EXT
    return ident, name


def wavcaps_source(path: Path, folder: str, ctx: Context) -> Result:
    """The caption records of one WavCaps json file (`{"data": [...]}`)."""
    data = read_json(path)
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected an object with a 'data' list")
    records: Records = []
    rejected: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        ident = entry.get("id") if isinstance(entry, dict) else None
        try:
            if not isinstance(entry, dict):
                raise RejectRecord(f"expected an object, got {type(entry).__name__}")
            ident, name = wavcaps_audio(entry)
            if ident in seen:
                raise RejectRecord(f"duplicate id (first at index {seen[ident]})")
            caption = _caption(entry.get("caption"), "caption")
        except RejectRecord as err:
            reason = f"{path.name}: data[{index}] (id {ident}): {err}"
            rejected.append({"id": ident, "index": index, "reason": reason})
            continue
        seen[ident] = index
        meta: dict[str, Any] = {"source": folder, "audio_id": ident, "caption": caption}
        duration = entry.get("duration")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            if math.isfinite(duration) and duration > 0:
                meta["duration"] = duration
        media = {"sound": f"{folder}/{name}"}
        records.append(ctx.record(f"{folder}-{ident}", "audio_caption", 0, media, caption, meta))
    return records, rejected


def convert_wavcaps(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """Audio captions of every WavCaps source whose json file is present (at least one must be).

    A user may fetch only some sources, so an absent file is skipped, not an error. The audio
    path is `<source folder>/<id>` (`.flac` added to an id without extension).
    """
    raw_dir = Path(raw_dir)
    ctx = Context.annotations_only(dataset, split, seed)
    found = {name: wavcaps_file(raw_dir, name) for name in WAVCAPS_SOURCES}
    if not any(found.values()):
        raise FileNotFoundError(f"{raw_dir}: none of the WavCaps files {list(WAVCAPS_SOURCES)}")
    records: Records = []
    rejected: list[dict[str, Any]] = []
    for name, path in found.items():
        if path is not None:
            converted, bad = wavcaps_source(path, WAVCAPS_SOURCES[name], ctx)
            records += converted
            rejected += bad
    return records, rejected


# ---------------------------------------------------------------------------- Clotho


def convert_clotho(dataset: str, raw_dir: Path, split: str, seed: int) -> Result:
    """One audio caption record per caption (`k` = caption index 0..4) of each csv row.

    A row without a file name is rejected whole; an empty caption is rejected alone (its column
    named), the row's other captions kept. The audio path is `<split>/<file_name>`.
    """
    path = Path(raw_dir) / f"clotho_captions_{split}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: published annotation file not found")
    columns = ["file_name", *(f"caption_{i}" for i in range(1, CLOTHO_CAPTIONS + 1))]
    ctx = Context.annotations_only(dataset, split, seed)
    records: Records = []
    rejected: list[dict[str, Any]] = []
    # utf-8-sig: some releases of the csv start with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {missing}")
        for row in reader:
            line = reader.line_num
            name = (row["file_name"] or "").strip()
            if not name:
                reason = f"{path.name}:{line}: missing file_name"
                rejected.append({"line": line, "id": None, "reason": reason})
                continue
            for k, column in enumerate(columns[1:]):
                caption = (row[column] or "").strip()
                if not caption:
                    reason = f"{path.name}:{line}: file {name}: {column} is empty"
                    rejected.append({"line": line, "id": f"{name}/{k}", "reason": reason})
                    continue
                meta = {"file_name": name, "caption": caption, "caption_index": k, "line": line}
                media = {"sound": f"{split}/{name}"}
                records.append(ctx.record(name, "audio_caption", k, media, caption, meta))
    return records, rejected
