"""The convert step for real datasets: published raw files -> conversation records + manifest.

    python -m ground.convert.run --dataset didemo --split train --root resources/groundinggpt \
        --out results/convert/didemo/train.jsonl --manifest results/convert/didemo/train.manifest.json

(`ground.convert.run.convert_dataset` comes here for every dataset of `ground.common.catalog`.)
The catalog names each dataset's converter and the files it reads in `ROOT/raw/<dataset>/`;
with `authors=True` the authors' own converted JSON (`ROOT/raw/authors/<file>`) is validated and
taken instead. Converters read annotations only, so this works before the media are downloaded;
media paths come back relative to the dataset's media folder and are written as
`ROOT/media/<folder>/<path>`, where the feature step finds them.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ground.common.catalog import AUTHORS_CONVERTER, AUTHORS_DIR, Dataset, dataset
from ground.common.jsonl import write_outputs
from ground.convert.context import MEDIA_ORDER, check_rejections
from ground.convert.sources.evalsets import clipping_report

Result = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def load_converter(target: str) -> Callable[[str, Path, str, int], Result]:
    """The function `module:function` names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def raw_paths(raw_dir: Path, entry: Dataset, split: str, authors: bool = False) -> list[Path]:
    """The files the convert step reads for one (dataset, split) in its raw folder
    (`raw/<dataset>/`, or `raw/authors/` for the authors' JSON)."""
    if authors:
        if not entry.authors:
            raise ValueError(f"{entry.name}: zwli/GroundingGPT publishes no converted file for it")
        return [Path(raw_dir) / entry.authors]
    return [Path(raw_dir) / name for name in entry.files(split)]


def with_media_root(records: list[dict[str, Any]], media_root: str) -> None:
    """Prefix every record's media paths with the dataset's media folder (in place)."""
    for record in records:
        for field in MEDIA_ORDER:
            if field in record:
                record[field] = f"{media_root}/{record[field]}"


def convert_published(
    name: str,
    split: str,
    root: Path | None,
    out: Path,
    manifest: Path,
    *,
    seed: int,
    max_reject_fraction: float = 0.05,
    authors: bool = False,
    raw_dir: Path | None = None,
) -> dict[str, Any]:
    """Convert one split of a catalog dataset; write records and a manifest (counts, every
    rejection with its line or id and reason, every clipped ground truth).

    With `raw_dir` the published files are read there instead of under `root`, and with no
    `root` media paths stay relative to the dataset's media folder (`ground data convert`).
    """
    entry = dataset(name)
    if raw_dir is None:
        raw_dir = Path(root) / "raw" / (AUTHORS_DIR if authors else name)
    files = raw_paths(raw_dir, entry, split, authors)
    missing = [f.as_posix() for f in files if not f.exists()]
    if missing and not (entry.any_files and len(missing) < len(files)):
        fix = "`ground data check`" if entry.hub or authors else entry.manual.format(
            root=root or "<root>", name=name, split=split)  # fmt: skip
        raise FileNotFoundError(f"{name}/{split}: missing {missing}; see {fix}")
    converter = load_converter(AUTHORS_CONVERTER if authors else entry.converter)
    records, rejected = converter(name, raw_dir, entry.published(split), seed)
    check_rejections(files[0], len(records) + len(rejected), rejected, max_reject_fraction)
    if not records:
        first = rejected[0]["reason"] if rejected else "no records"
        raise ValueError(f"{name}/{split} in {raw_dir}: nothing converted ({first})")
    if root is not None:
        with_media_root(records, f"{Path(root).as_posix()}/media/{entry.media}")
    summary = {
        "dataset": name,
        "split": split,
        "source": "authors" if authors else "published",
        "raw": [f.as_posix() for f in files],
        "records_out": len(records),
        "by_task": dict(sorted(Counter(r["task"] for r in records).items())),
        "rejected": rejected,
        "clipped": clipping_report(records),
        "seed": seed,
    }
    write_outputs(out, records, manifest, summary)
    return summary
