"""What a job read, as it was when read: the size, mtime and sha256 of each input file.

    stamps = stamp([Path("resources/demo/raw/demo_video/train.jsonl")])  # in the job
    changes(stamps)   # later, in `ground status` and `ground run`: [] while nothing changed

Jobs keep the stamps of the files they read in their job record (`JobRecorder.read`): media
named by the conversation data, raw annotation files, base model folders. Snakemake cannot see
those files change (a media folder is one `directory()` output, hub files stand behind the
download lock), so the head process compares the stamps with the files as they are now: one
stat per file, a hash only where size or mtime moved, so that a touched but unchanged file
reruns nothing and millions of unchanged media cost a stat each.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed so large checkpoints do not fill memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def stamp_file(path: str | Path) -> list[Any]:
    """[size, mtime_ns, sha256] of one file; stat first, so a write during the hash shows up
    as a changed mtime at the next comparison."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, sha256_file(Path(path))]


def stamp(paths: Iterable[str | Path]) -> dict[str, list[Any]]:
    """`stamp_file` of every path that exists (a folder stands for every file under it)."""
    return {str(f): stamp_file(f) for p in paths for f in files_under(Path(p)) if f.is_file()}


def files_under(path: Path) -> list[Path]:
    """A file itself, or every file under a folder, sorted."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def changes(stamps: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The stamped files that are gone or whose content differs now, in the stamps' order:
    `{"path", "change": "missing" | "content", "detail"}`."""
    found = []
    for path, (size, mtime_ns, sha256) in stamps.items():
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            found.append({"path": path, "change": "missing", "detail": f"{path} is missing"})
            continue
        if (stat.st_size, stat.st_mtime_ns) == (size, mtime_ns):
            continue
        if stat.st_size == size and sha256_file(Path(path)) == sha256:
            continue  # touched, not changed
        sizes = f"size {size} -> {stat.st_size}" if stat.st_size != size else "same size"
        found.append({"path": path, "change": "content", "detail": f"{path} changed ({sizes})"})
    return found
