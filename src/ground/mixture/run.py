"""The assemble_mixture step: the records one training stage learns from, reproducibly.

    python -m ground.mixture.run --config config.yaml --stage 2 \
        --out results/mixture/stage2.jsonl --manifest results/mixture/stage2.manifest.json

A stage's own data is chosen by the recipe's `mixture.stageN` (selector -> weight; a selector is
a converted dataset, `DATASET/TASK`, or `generated` for the generation step's dialogues); then
`train.stageN.alpha` x as many records of the previous stage's own data are replayed (the paper's
anti-forgetting mix; its ablation shows forgetting without it). The same config and seed give
the same file; the manifest and the run store get the count of every source.
"""

from __future__ import annotations

import argparse
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

from ground.common.jsonl import brief_summary, read_jsonl, write_outputs

GENERATED = "generated"  # the selector of the generation step's dialogues

Sourced = list[tuple[str, dict[str, Any]]]  # (source name, record) in file order


def take(n: int, wanted: int, rng: random.Random) -> list[int]:
    """`wanted` indices of range(n): each index as many whole times as fit, the rest drawn
    without replacement (as even a replay as sampling with replacement can be), sorted."""
    if wanted and not n:
        raise ValueError(f"{wanted} records wanted from an empty source")
    whole, rest = divmod(wanted, n) if n else (0, 0)
    return sorted(list(range(n)) * whole + rng.sample(range(n), rest))


def stage_mixture(current: list[Any], previous: list[Any], alpha: float, seed: int) -> list[Any]:
    """`current` plus round(alpha * len(current)) records of `previous` (see `take`), shuffled.

    Deterministic for a seed.
    """
    if alpha < 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    wanted = round(alpha * len(current))
    if wanted and not previous:
        raise ValueError(
            f"alpha {alpha} asks for {wanted} previous-stage records but there are none"
        )
    rng = random.Random(seed)
    mixed = list(current) + [previous[i] for i in take(len(previous), wanted, rng)]
    rng.shuffle(mixed)
    return mixed


def selector_of(source: str, record: dict[str, Any], weights: dict[str, float]) -> str | None:
    """The selector of `weights` a record falls under: `source/task` before `source`."""
    for selector in (f"{source}/{record['task']}", source):
        if selector in weights:
            return selector
    return None


def select(records: Sourced, weights: dict[str, float], seed: int) -> tuple[list[dict], Counter]:
    """round(w * n) of the n records under each selector, kept in file order; counts by selector.

    A selector that matches nothing is an error: it is a typo or a dataset that was not converted.
    """
    groups: dict[str, list[int]] = {selector: [] for selector in weights}
    for i, (source, record) in enumerate(records):
        selector = selector_of(source, record, weights)
        if selector is not None:
            groups[selector].append(i)
    empty = [s for s, members in groups.items() if not members]
    if empty:
        sources = sorted({s for s, _ in records})
        raise ValueError(f"mixture selector(s) {empty} match no record (sources: {sources})")
    rng = random.Random(seed)
    chosen: list[int] = []
    counts: Counter[str] = Counter()
    for selector, members in groups.items():
        picked = [members[j] for j in take(len(members), round(weights[selector] * len(members)), rng)]
        chosen += picked
        counts[selector] = len(picked)
    return [records[i][1] for i in sorted(chosen)], counts


def read_sources(sources: dict[str, Path]) -> Sourced:
    """(source, record) of every source file in order; each line must be a conversation record."""
    records: Sourced = []
    for source, path in sources.items():
        for number, record in read_jsonl(Path(path)):
            if not isinstance(record, dict) or not {"id", "task", "conversations"} <= set(record):
                raise ValueError(f"{path}:{number}: expected an object with id, task, conversations")
            records.append((source, record))
    return records


def assemble_mixture(
    stage: int,
    sources: dict[str, Path],
    weights: dict[str, dict[str, float]],
    alpha: float,
    seed: int,
    out: Path,
    manifest: Path,
) -> dict[str, Any]:
    """Write stage `stage`'s records to `out` and their counts to `manifest`; return the summary.

    `sources` maps a source name (dataset, or `generated`) to its train-split JSONL, `weights`
    maps `stageN` to that stage's selectors. The previous stage's own data is re-selected from
    the same sources with its own seed, so it is exactly what that stage trained on.
    """
    records = read_sources(sources)
    own, counts = select(records, weights[f"stage{stage}"], seed + stage)
    previous: list[dict[str, Any]] = []
    if stage > 1 and alpha > 0:
        previous, _ = select(records, weights[f"stage{stage - 1}"], seed + stage - 1)
    mixed = stage_mixture(own, previous, alpha, seed + stage)
    replayed = Counter(r["task"] for r in mixed) - Counter(r["task"] for r in own)
    summary = {
        "stage": stage,
        "records": len(mixed),
        "by_source": dict(counts),
        "replayed": len(mixed) - len(own),
        "replayed_by_task": dict(sorted(replayed.items())),
        "by_task": dict(sorted(Counter(r["task"] for r in mixed).items())),
        "alpha": alpha,
        "seed": seed,
        "weights": weights[f"stage{stage}"],
    }
    write_outputs(out, mixed, manifest, summary)
    return summary


def mixture_sources(cfg: dict[str, Any], converted: str = "results/convert") -> dict[str, Path]:
    """Source name -> train-split file for a recipe: every converted dataset, then `generated`."""
    sources = {d: Path(f"{converted}/{d}/train.jsonl") for d in cfg["convert"]["datasets"]}
    return sources | {GENERATED: Path("results/generate/dialogues.jsonl")}


def stage_sources(cfg: dict[str, Any], stage: int) -> dict[str, Path]:
    """The sources that stage `stage` (and, for its replay, the previous stage) select from:
    only those, so a dataset no stage uses never blocks one."""
    stages = [stage - 1, stage] if stage > 1 else [stage]
    used = {s.split("/")[0] for n in stages for s in cfg["mixture"][f"stage{n}"]}
    return {name: path for name, path in mixture_sources(cfg).items() if name in used}


def main() -> None:
    from ground.common.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--stage", type=int, choices=(1, 2, 3), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    summary = assemble_mixture(
        args.stage,
        stage_sources(cfg, args.stage),
        cfg["mixture"],
        cfg["train"][f"stage{args.stage}"]["alpha"],
        cfg["train"]["seed"],
        args.out,
        args.manifest,
    )
    print(brief_summary(summary))


if __name__ == "__main__":
    main()
