"""Where the download step puts things: light to import (the Snakefile reads it at parse time)."""

from __future__ import annotations

from typing import Any

DEMO_DATASETS = ("demo_image", "demo_video", "demo_audio")


def raw_files(
    cfg: dict[str, Any], splits: list[str], evaluated: list[tuple[str, str]] = ()
) -> list[str]:
    """The raw annotation files the download step promises (the convert step's inputs): one per
    dataset and split, the demo's splits for the synthetic corpus, `splits` for the hub; plus the
    published files of every evaluated (dataset, split) that is an evaluation set."""
    root = cfg["root"]
    if cfg["source"] == "synthetic":
        files = [f"{root}/raw/{d}/{s}.jsonl" for d in DEMO_DATASETS for s in cfg["demo"]["splits"]]
    else:
        files = [raw_input(root, d, s) for d in cfg["datasets"] for s in splits]
        files = [f for group in files for f in group]
    extra = [f for d, s in evaluated if d not in DEMO_DATASETS for f in raw_input(root, d, s)]
    return list(dict.fromkeys(files + extra))


def raw_input(root: str, dataset: str, split: str) -> list[str]:
    """What the convert step reads for one (dataset, split): the published files of an
    evaluation set (`ground.data.evalsets`), else `raw/<dataset>/<split>.jsonl`."""
    from ground.data.evalsets import EVALSETS, published_files

    if dataset in EVALSETS:
        return [f"{root}/raw/{dataset}/{name}" for name in published_files(dataset, split)]
    return [f"{root}/raw/{dataset}/{split}.jsonl"]
