"""Which feature job encodes which media file: `features.shards` jobs per modality.

    >>> shard_of("resources/demo/media/videos/train_003.mp4", 64)   # the same on every machine
    >>> shard_digests([Path("results/convert/demo_video/train.jsonl")], "video", 4)
    >>> gather_indexes([Path("results/features/video/shard0.index.jsonl"), ...], summaries, out)

A media file belongs to shard `sha256(path) mod N`: a stable function of its path alone (never
Python's `hash()`, which is salted per process), so adding media moves no other file between
shards and a shard's job reruns only when its own media change. Kept free of torch: the Snakefile
imports it to compute each shard job's `params.media` (`shard_digests`) when it builds the DAG.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ground.common.jsonl import read_jsonl

# Which field of a conversation record names the media of each modality.
RECORD_FIELD = {"image": "image", "video": "video", "audio": "sound"}


def referenced_media(records: list[Path], modality: str) -> list[Path]:
    """Unique media paths of one modality named by the records, in a stable order."""
    field = RECORD_FIELD[modality]
    found: set[str] = set()
    for path in records:
        for _, record in read_jsonl(path):
            if record.get(field):
                found.add(record[field])
    return [Path(m) for m in sorted(found)]


def shard_of(media: str | Path, shards: int) -> int:
    """The shard (0 .. shards-1) of one media path: sha256 of the path string, mod `shards`."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    digest = hashlib.sha256(str(media).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def split_media(media: Iterable[str | Path], shards: int) -> list[list[Path]]:
    """Media paths per shard, each list sorted; every path lands in exactly one list."""
    parts: list[list[Path]] = [[] for _ in range(shards)]
    for path in sorted({str(m) for m in media}):
        parts[shard_of(path, shards)].append(Path(path))
    return parts


def digest(media: list[Path]) -> str:
    """sha256 of one shard's sorted media paths: its job reruns when this changes."""
    return hashlib.sha256("".join(f"{p}\n" for p in media).encode("utf-8", "surrogateescape")).hexdigest()


def shard_digests(records: list[Path], modality: str, shards: int) -> list[str]:
    """`digest` of each shard of the media the records name."""
    return [digest(part) for part in split_media(referenced_media(records, modality), shards)]


def planned_digests(records: list[str], modality: str, shards: int) -> list[str] | None:
    """`shard_digests` of the records as they are now, or None while one of them is missing.
    Cached per process by the files' size and mtime: the Snakefile asks once per shard job."""
    stamps = []
    for record in records:
        try:
            stat = os.stat(record)
        except FileNotFoundError:
            return None
        stamps.append((str(record), stat.st_mtime_ns, stat.st_size))
    return list(_digests(tuple(stamps), modality, shards))


@functools.lru_cache(maxsize=16)
def _digests(stamps: tuple[tuple[str, int, int], ...], modality: str, shards: int) -> tuple[str, ...]:
    return tuple(shard_digests([Path(path) for path, _, _ in stamps], modality, shards))


def write_listing(records: list[Path], modality: str, shards: int, out: Path) -> dict:
    """Media per shard and each shard's digest as of now (the `split_media` checkpoint's output,
    written once conversion has finished: the pipeline re-plans the shard jobs after it)."""
    parts = split_media(referenced_media(records, modality), shards)
    listing = {
        "modality": modality,
        "shards": shards,
        "media": [len(part) for part in parts],
        "digests": [digest(part) for part in parts],
        "sources": [str(r) for r in records],
    }
    _write_atomically(out, json.dumps(listing, indent=1) + "\n")
    return listing


def gather_indexes(indexes: list[Path], summaries: list[dict], out: Path) -> dict:
    """Merge the shards' index files into one (`{"media", "key"}` per line, sorted by media);
    `summaries` are the shard jobs' summaries (in their job records), for the failures and counts.
    A media path in two shards' indexes is a bug of the split: it stops the merge."""
    seen: dict[str, Path] = {}
    entries = []
    for path in indexes:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            entry = json.loads(line)
            if entry["media"] in seen:
                raise ValueError(f"{path}:{number}: {entry['media']} is also in {seen[entry['media']]}")
            seen[entry["media"]] = path
            entries.append({"media": entry["media"], "key": entry["key"]})
    entries.sort(key=lambda e: e["media"])
    _write_atomically(out, "".join(json.dumps(e) + "\n" for e in entries))
    counts = ("shard", "media", "encoded", "cached")
    return {
        "modality": summaries[0]["modality"] if summaries else None,
        "shards": len(indexes),
        "media": sum(s["media"] for s in summaries),
        "indexed": len(entries),
        "failed": [f for s in summaries for f in s["failed"]],
        # as of each shard's last execution: shards whose media did not change did not run again
        "by_shard": [{k: s.get(k) for k in counts} | {"failed": len(s["failed"])} for s in summaries],
    }


def _write_atomically(path: Path, text: str) -> None:
    """Readers (and a crash) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
