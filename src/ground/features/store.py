"""A content-addressed, sharded, write-once store of feature tensors.

    >>> store = FeatureStore(Path("cache/features/video"))
    >>> key = feature_key(file_sha256(media), encoder.identity, {"frames": 64, "size": 224})
    >>> if key not in store:
    ...     with store.writer(shard_size=256) as writer:
    ...         writer.add(key, features)          # stored as given: the caller picks the dtype
    >>> store.load(key)

Layout under `root`:

    shards/<time>-<random>.safetensors   written once (tmp file, fsync, rename), never rewritten
    index/<time>-<random>.jsonl          {"key", "shard", "shape", "dtype"} per tensor of the
                                         shard of the same name, written once the same way
    index.jsonl                          stores written before per-shard index files: read, never
                                         written again (old caches stay valid as they are)

Every file has one writer and is complete before it gets its name, so many jobs may fill one
store at once on NFS or Lustre: nothing is appended to, nothing is locked, no two jobs ever
write the same file (names carry a random suffix). Opening the store reads every index file.
Order makes it crash-safe: a shard is renamed into place before its index file, so an index
never points at a partial shard. What a crash can leave, and what loading does with it:

- a stray `shards/.*.tmp` or `index/.*.tmp` file: never referenced, ignored;
- a complete shard without an index file: an orphan, its media are encoded again next run;
- in the old `index.jsonl`, a torn last line: it does not parse and is skipped (with a warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

log = logging.getLogger(__name__)
_FIELDS = ("key", "shard", "shape", "dtype")
LEGACY_INDEX = "index.jsonl"


def feature_key(media_sha256: str, encoder_identity: str, preprocess: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the media hash, the encoder and the preprocessing."""
    payload = {"media": media_sha256, "encoder": encoder_identity, "preprocess": preprocess}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class FeatureStore:
    """Tensors by key; see the module docstring for the layout and its guarantees."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.index_dir = self.root / "index"
        self._entries: dict[str, dict[str, Any]] = {}
        self._handles: dict[str, Any] = {}
        self._read_indexes()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        return list(self._entries)

    def load(self, key: str) -> torch.Tensor:
        entry = self._entries.get(key)
        if entry is None:
            raise KeyError(f"{key}: not in the feature store {self.root}")
        shard = entry["shard"]
        handle = self._handles.get(shard)
        if handle is None:
            # Lazy memory-mapped reads: opening a shard costs only its header.
            handle = safe_open(str(self.root / "shards" / shard), framework="pt", device="cpu")
            self._handles[shard] = handle
        return handle.get_tensor(key)

    def load_many(self, keys: Iterable[str]) -> dict[str, torch.Tensor]:
        return {key: self.load(key) for key in keys}

    def writer(self, shard_size: int = 256) -> StoreWriter:
        return StoreWriter(self, shard_size)

    def index_files(self) -> list[Path]:
        """The old shared index (if any) first, then every per-shard index file."""
        legacy = [self.root / LEGACY_INDEX] if (self.root / LEGACY_INDEX).is_file() else []
        mine = sorted(self.index_dir.glob("[!.]*.jsonl")) if self.index_dir.is_dir() else []
        return legacy + mine

    def _read_indexes(self) -> None:
        bad = 0
        shard_ok: dict[str, bool] = {}
        for path in self.index_files():
            for line in filter(bytes.strip, path.read_bytes().split(b"\n")):
                entry = _parse_entry(line)
                if entry is not None and entry["shard"] not in shard_ok:
                    shard_ok[entry["shard"]] = (self.root / "shards" / entry["shard"]).is_file()
                if entry is None or not shard_ok[entry["shard"]]:
                    bad += 1
                    continue
                self._entries.setdefault(entry["key"], entry)
        if bad:
            log.warning("%s: ignored %d unreadable index lines or missing shards", self.root, bad)

    def _write_shard(self, tensors: dict[str, torch.Tensor]) -> list[Path]:
        """Write one shard and then its index file; return both paths (shard first)."""
        stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex}"
        shard = self.root / "shards" / f"{stem}.safetensors"
        _write_atomically(shard, lambda tmp: save_file(tensors, str(tmp)))
        entries = [
            {"key": k, "shard": shard.name, "shape": list(t.shape), "dtype": str(t.dtype).split(".")[-1]}
            for k, t in tensors.items()
        ]
        data = "".join(json.dumps(e) + "\n" for e in entries).encode()
        index = self.index_dir / f"{stem}.jsonl"
        _write_atomically(index, lambda tmp: tmp.write_bytes(data))
        for entry in entries:
            self._entries.setdefault(entry["key"], entry)
        return [shard, index]


class StoreWriter:
    """Buffers tensors and writes each `shard_size` of them as one new shard.

    Leaving the `with` block flushes what is buffered, also when an exception leaves it (those
    tensors are valid); the exception then propagates. `written` lists the files it created.
    """

    def __init__(self, store: FeatureStore, shard_size: int) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.store = store
        self.shard_size = shard_size
        self.written: list[Path] = []
        self._buffer: dict[str, torch.Tensor] = {}

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()  # also on an exception: what was added is valid; it then propagates

    def add(self, key: str, tensor: torch.Tensor) -> None:
        if key in self.store or key in self._buffer:
            return  # same key, same content: nothing to add
        # A private contiguous CPU copy: a row of a batch would otherwise keep the whole batch
        # alive, and the caller may reuse its buffer before the shard is written.
        self._buffer[key] = tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
        if len(self._buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            buffer, self._buffer = self._buffer, {}
            self.written.extend(self.store._write_shard(buffer))


def _write_atomically(path: Path, write: Any) -> None:
    """`write(tmp)`, fsync, rename to `path`, fsync the folder: readers see all of it or nothing.
    The tmp name is private to this process (pid + random), hidden from the index glob."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _parse_entry(line: bytes) -> dict[str, Any] | None:
    """An index line, or None for a line torn by a crash mid-append (old shared index)."""
    try:
        entry = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return entry if isinstance(entry, dict) and all(f in entry for f in _FIELDS) else None


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
