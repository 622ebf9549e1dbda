"""Code fingerprints and shard digests remembered across processes, keyed by the state of every
file they may read.

    >>> from ground.workflow.codecache import cached_digests, cached_fingerprint
    >>> cached_fingerprint("ground.convert.run", files=["rules/scripts/convert_dataset.py"],
    ...                    cache=Path(".snakemake/ground/fingerprints.json"))
    >>> cached_digests(["results/convert/demo_video/train.jsonl"], "video", 4,
    ...                cache=Path(".snakemake/ground/digests.json"))

Fingerprinting parses every module a step reaches; the Snakefile asks for all steps' on every
DAG build (`ground status` builds one, each job one more), which was most of their start-up.
A fingerprint depends only on the files under the package's folders (what exists there, and
their bytes), the script `files`, the fingerprint code itself and the Python version (its AST
layout). The cache key is the path, size, mtime, ctime and inode of each of those files: any
edit, `touch`, checkout, added or removed module changes it (the ctime even when a tool puts
the mtime back). A file whose ctime is under `RACY_S` seconds old might change again within the
clock's granularity without changing its stat, so while one is that fresh nothing is stored
(git's "racily clean" rule). The shard digests (`ground.features.shards.planned_digests`, each
shard job's `params.media`) read every conversation record of the recipe, on every DAG build too:
they are keyed the same way, by the stat of the records and of the module that computes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ground.workflow import fingerprint
from ground.workflow.fingerprint import code_fingerprint

RACY_S = 2.0
KEEP = 8  # states remembered: checkouts whose trees differ (a head and its jobs' PYTHONPATH)
_memory: dict[str, dict[str, Any]] = {}  # state -> {request: fingerprint or digests}, in one process


def cached_fingerprint(
    *modules: str, package: str = "ground", files: Sequence[str | Path] = (), cache: Path | None = None
) -> str:
    """`code_fingerprint(*modules, package=..., files=...)`, read from `cache` when no file it
    may depend on has changed since it was stored there (or earlier in this process)."""
    paths = [Path(f).resolve() for f in files]
    state, fresh = _state(package, paths)
    request = json.dumps([list(modules), package, [str(p) for p in paths]])
    known = _memory.setdefault(state, {})
    if request not in known and cache is not None:
        known.update(_load(cache).get(state, {}))
    if request in known:
        return known[request]
    value = code_fingerprint(*modules, package=package, files=paths)
    if not fresh:
        known[request] = value
        if cache is not None:
            _store(cache, state, request, value)
    return value


def cached_digests(records: Sequence[str], modality: str, shards: int, cache: Path) -> list[str] | None:
    """`planned_digests(records, modality, shards)`, read from this process's memory or `cache`
    while the records and the shards module are as they were when it was stored (None while a
    record is missing)."""
    from ground.features import shards as module

    h = hashlib.sha256(json.dumps(["digests", modality, shards]).encode())
    newest = _stat_into(h, [module.__file__, *map(str, records)])
    if newest is None:
        return None  # not converted yet: the job is planned again after the checkpoint
    state = h.hexdigest()
    known = _memory.setdefault(state, {})  # a DAG build asks once per shard job
    if "digests" not in known:
        known.update(_load(cache).get(state, {}))
    if "digests" in known:
        return list(known["digests"])
    digests = module.planned_digests(list(records), modality, shards)
    if digests is not None and not _racy(newest):
        known["digests"] = digests
        _store(cache, state, "digests", digests)
    return digests


def _state(package: str, files: list[Path]) -> tuple[str, bool]:
    """A digest of the stat of every file the fingerprint may read, and whether one is racy."""
    spec = importlib.util.find_spec(package)  # a top-level name: found without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    paths = [fingerprint.__file__, *map(str, files)]
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            paths.append(folder)  # a folder's entries: modules added or removed
            paths.extend(os.path.join(folder, n) for n in sorted(names))
    h = hashlib.sha256(f"{sys.version}\n{package}\n{roots}\n".encode())
    newest = _stat_into(h, paths)
    # a file removed while we looked (an editor's temporary file): unsettled
    return h.hexdigest(), newest is None or _racy(newest)


def _stat_into(h: Any, paths: Sequence[str]) -> int | None:
    """Hash each file's path, size, mtime, ctime and inode into `h`; the newest ctime (any write
    sets the ctime to now), or None when a file is missing."""
    newest = 0
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
        newest = max(newest, st.st_ctime_ns)
    return newest


def _racy(ctime_ns: int) -> bool:
    return ctime_ns > time.time_ns() - RACY_S * 1e9


def _load(cache: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):  # absent, or written by another version: recompute
        return {}
    return data if isinstance(data, dict) else {}


def _store(cache: Path, state: str, request: str, value: Any) -> None:
    """Add one entry; concurrent writers (a head, its jobs) each replace the file atomically, so a
    lost entry is recomputed later, never read half-written."""
    data = _load(cache)
    entries = data.pop(state, {})
    entries[request] = value
    data[state] = entries  # the newest state last; the oldest ones dropped
    data = dict(list(data.items())[-KEEP:])
    with contextlib.suppress(OSError):  # a read-only checkout: just not cached
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cache)
