"""Where the download step puts things: light to import (the Snakefile reads it at parse time)."""

from __future__ import annotations

from typing import Any

DEMO_DATASETS = ("demo_image", "demo_video", "demo_audio")


def raw_files(
    cfg: dict[str, Any],
    splits: list[str],
    evaluated: list[tuple[str, str]] = (),
    authors: list[str] = (),
) -> list[str]:
    """The raw annotation files the convert step reads: one per dataset and split, the demo's
    splits for the synthetic corpus, `splits` for the hub; plus the published files of every
    evaluated (dataset, split). `authors` are read from the authors' converted JSON."""
    root = cfg["root"]
    if cfg["source"] == "synthetic":
        pairs = [(d, s) for d in DEMO_DATASETS for s in cfg["demo"]["splits"]]
    else:
        from ground.common.catalog import dataset

        # a split the dataset does not publish (e.g. `val` of LLaVA-Pretrain) is not asked for
        pairs = [(d, s) for d in cfg["datasets"] for s in splits if dataset(d).has(s)]
    pairs += [(d, s) for d, s in evaluated if d not in DEMO_DATASETS]
    files = [f for d, s in pairs for f in raw_input(root, d, s, authors)]
    return list(dict.fromkeys(files))


def recipe_raw_files(config: dict[str, Any]) -> list[str]:
    """`raw_files` of a whole recipe: its converted splits and its benchmarks' splits."""
    from ground.common.catalog import benchmark

    evaluated = [(benchmark(b).dataset, s) for b in config["eval"]["benchmarks"]
                 for s in benchmark(b).splits]  # fmt: skip
    convert = config["convert"]
    return raw_files(config["download"], convert["splits"], evaluated, convert["authors"])


def raw_input(root: str, dataset: str, split: str, authors: list[str] = ()) -> list[str]:
    """What the convert step reads for one (dataset, split): `raw/<dataset>/<split>.jsonl` for
    the demo, the published files of a real dataset (`ground.common.catalog`), or the authors'
    converted JSON in `raw/authors/`."""
    if dataset in DEMO_DATASETS:
        return [f"{root}/raw/{dataset}/{split}.jsonl"]
    from ground.common.catalog import AUTHORS_DIR
    from ground.common.catalog import dataset as entry

    if dataset in authors and split == "train":
        return [f"{root}/raw/{AUTHORS_DIR}/{entry(dataset).authors}"]
    return [f"{root}/raw/{dataset}/{name}" for name in entry(dataset).files(split)]
