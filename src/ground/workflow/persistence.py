"""Snakemake's per-output record files under `.snakemake/` (`metadata/`, `incomplete/`), read
without Snakemake: each is named by the output's path in urlsafe base64, cut into folder names
of at most 254 characters, all but the last starting with `@` (`snakemake.persistence.file`).

    records(root / ".snakemake" / "metadata")   # {"results/convert/a/train.jsonl": Path(...)}
"""

from __future__ import annotations

import os
from base64 import urlsafe_b64decode, urlsafe_b64encode
from pathlib import Path


def record_path(folder: Path, output: str) -> Path:
    """Where Snakemake keeps `output`'s record in `folder`."""
    name = urlsafe_b64encode(output.encode()).decode()
    parts = [name[i : i + 254] for i in range(0, len(name), 254)]
    return folder.joinpath(*["@" + s for s in parts[:-1]], parts[-1])


def records(folder: Path) -> dict[str, Path]:
    """Output path -> its record file, of every record in `folder` ({} if there is none)."""
    found: dict[str, Path] = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            record = Path(parent) / name
            parts = record.relative_to(folder).parts
            try:
                path = urlsafe_b64decode("".join(p.removeprefix("@") for p in parts)).decode()
            except ValueError:  # not base64 of a UTF-8 path (binascii.Error, UnicodeDecodeError)
                continue  # Snakemake's own bookkeeping files (e.g. migration_underway)
            found[path] = record
    return found
