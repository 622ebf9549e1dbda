"""The convert step: raw annotations of one (dataset, split) -> LLaVA-style conversation records.

    python -m ground.convert.run --dataset demo_image --split train --root resources/demo \
        --out results/convert/demo_image/train.jsonl \
        --manifest results/convert/demo_image/train.manifest.json --seed 0

Reads `ROOT/raw/DATASET/SPLIT.jsonl`, writes one JSON record per line to `--out` and a manifest
(counts per task, every rejected raw line with its number, id and reason). Questions are drawn
from the Table 11 template pools with a generator seeded per output record, so adding a raw record
never changes another record's question. A malformed raw record is rejected and reported; more
than `max_reject_fraction` rejected records fails the step. The demo's datasets are converted by
`sources/demo.py`; a real dataset by the converter its catalog entry names (`published.py`).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from ground.common.formats import Coords, writing
from ground.common.jsonl import brief_summary, write_outputs
from ground.convert.context import Context, Converter, check_rejections, convert_lines
from ground.convert.sources.demo import CONVERTERS
from ground.convert.templates import TEMPLATE_VERSION


def converter_for(dataset: str) -> Converter:
    try:
        return CONVERTERS[dataset]
    except KeyError:
        known = sorted(CONVERTERS)
        raise ValueError(f"no converter for dataset {dataset!r}; known: {known}") from None


def convert_dataset(
    dataset: str,
    split: str,
    root: Path,
    out: Path,
    manifest: Path,
    *,
    seed: int,
    media_root_prefix: Path | None = None,
    max_reject_fraction: float = 0.05,
    authors: bool = False,
    coords: str = "float3",
    spans: str = "float2",
) -> dict[str, Any]:
    """Convert `root/raw/dataset/split.jsonl`; media paths are written as `prefix/relative`.

    Real datasets (`ground.common.catalog`) are read from their published files in
    `root/raw/dataset/` (or, with `authors`, from the authors' converted JSON): see
    `ground.convert.published`.

    `media_root_prefix` defaults to `root` (the media must exist under `root` either way); give
    another prefix when the records will be read where the media live elsewhere.

    Boxes are written in the form `coords`, spans in `spans` (`ground.common.formats.Coords`).
    """
    with writing(Coords.parse(coords), Coords.parse(spans)):
        return _convert(dataset, split, root, out, manifest, seed, media_root_prefix, max_reject_fraction, authors)


def _convert(dataset: str, split: str, root: Path, out: Path, manifest: Path, seed: int,
             media_root_prefix: Path | None, max_reject_fraction: float, authors: bool) -> dict[str, Any]:  # fmt: skip
    if dataset not in CONVERTERS:
        # Imported here: only real datasets need the catalog and the published-format converters.
        from ground.common.catalog import DATASETS
        from ground.convert.published import convert_published

        if dataset not in DATASETS:
            known = sorted(CONVERTERS) + sorted(DATASETS)
            raise ValueError(f"no converter for dataset {dataset!r}; known: {known}")
        return convert_published(dataset, split, root, out, manifest, seed=seed,
                                 max_reject_fraction=max_reject_fraction, authors=authors)  # fmt: skip
    converter = converter_for(dataset)
    root = Path(root)
    raw_path = root / "raw" / dataset / f"{split}.jsonl"
    if not raw_path.is_file():
        raise FileNotFoundError(f"{raw_path}: raw annotations of {dataset}/{split} not found")
    prefix = Path(media_root_prefix) if media_root_prefix is not None else root
    ctx = Context(dataset, split, root, prefix, seed)
    lines = raw_path.read_text(encoding="utf-8").splitlines()
    records, rejected = convert_lines(lines, converter, ctx)
    check_rejections(raw_path, len(lines), rejected, max_reject_fraction)
    summary = {
        "dataset": dataset,
        "split": split,
        "raw": raw_path.as_posix(),
        "records_in": len(lines),
        "records_out": len(records),
        "by_task": dict(sorted(Counter(r["task"] for r in records).items())),
        "rejected": rejected,
        "template_version": TEMPLATE_VERSION,
        "seed": seed,
    }
    write_outputs(out, records, manifest, summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--media-root-prefix", type=Path, default=None)
    parser.add_argument("--max-reject-fraction", type=float, default=0.05)
    parser.add_argument("--authors", action="store_true", help="read zwli/GroundingGPT's JSON")
    parser.add_argument("--coords", default="float3", help="how boxes are written: float3 | float4 | bins:N")
    parser.add_argument("--spans", default="float2", help="how time spans are written: float2 | float3 | bins:N")
    # Option names match convert_dataset's parameters, so the namespace passes straight through.
    summary = convert_dataset(**vars(parser.parse_args()))
    print(brief_summary(summary))
    print(f"rejected: {len(summary['rejected'])}")


if __name__ == "__main__":
    main()
