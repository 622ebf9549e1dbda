"""Read a Hugging Face model folder's weights: safetensors or `.bin` shards, with or without an index.

    >>> state = read_weights(Path("resources/groundinggpt-release/models/groundinggpt-release"))

`.bin` files are pickles: they are opened only through `torch.load(weights_only=True)`, which
refuses anything but tensors and plain containers (a pickled callable stops the import, naming
the file), and memory-mapped, so the 18 GB release is not read twice.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ground.release.layout import ReleaseError

INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE = ("model.safetensors", "pytorch_model.bin")


def weight_files(folder: Path) -> list[Path]:
    """The weight files of `folder`: those its index names, else the one unsharded file."""
    for name in INDEXES:
        index = folder / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ReleaseError(f"{index}: not a weight index ({err})") from err
            files = [folder / f for f in sorted(set(weight_map.values()))]
            absent = [f.name for f in files if not f.is_file()]
            if absent:
                raise ReleaseError(f"{index}: names missing shard(s) {absent}")
            return files
    found = [folder / n for n in SINGLE if (folder / n).is_file()]
    if not found:
        raise ReleaseError(f"{folder}: no weights ({', '.join(INDEXES + SINGLE)})")
    return found[:1]


def read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ReleaseError(f"{path}: unreadable safetensors ({err})") from err
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):  # a legacy (pre-zip) file cannot be mapped: read it whole
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as err:
        raise ReleaseError(f"{path}: refused by torch.load(weights_only=True): "
                           f"{str(err).splitlines()[0]}") from err  # fmt: skip
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReleaseError(f"{path}: not a state dict of tensors")
    return state


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """Every tensor of the folder's weight files, and the files; a key in two shards is an error."""
    files = weight_files(Path(folder))
    state: dict[str, torch.Tensor] = {}
    for path in files:
        part = read_file(path)
        twice = sorted(set(part) & set(state))
        if twice:
            raise ReleaseError(f"{path}: keys also in another shard, e.g. {twice[0]}")
        state.update(part)
    return state, files
