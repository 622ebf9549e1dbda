"""Where the download step puts things: light to import (the Snakefile reads it at parse time)."""

from __future__ import annotations

from typing import Any

DEMO_DATASETS = ("demo_image", "demo_video", "demo_audio")


def raw_files(cfg: dict[str, Any], splits: list[str]) -> list[str]:
    """The raw annotation files the download step promises (the convert step's inputs): one per
    dataset and split, the demo's splits for the synthetic corpus, `splits` for the hub."""
    root = cfg["root"]
    if cfg["source"] == "synthetic":
        return [f"{root}/raw/{d}/{s}.jsonl" for d in DEMO_DATASETS for s in cfg["demo"]["splits"]]
    return [f"{root}/raw/{d}/{s}.jsonl" for d in cfg["datasets"] for s in splits]
