"""A stage's real mixture, padded rows against packed ones: tokens/s, padding, data-loader wait.

    ground bench train --mixture                     # stage 2 of this (finished) demo project
    ground bench train --mixture --stage 3 --steps 40 --json

Built as `ground.train.loop` builds a stage (the recipe's `train` section, the stage's mixture
and cached features, the previous stage's checkpoint, one DeepSpeed engine), then run in one
process for `warmup + steps` optimizer steps per mode, the modes one after the other on the same
micro batches (the sampler's first ones, at the recipe's batch size and accumulation): `padded`
(one sample per row, padded to the longest) and `packed` (`ground.train.packing`, rows of up to
`train.max_length` tokens). Tokens are the samples' own tokens; padding is the share of the rows'
tokens that are padding; data wait is the time an optimizer step spent waiting for its batches
(reading features and collating, `train.workers` processes ahead or none).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from ground.common.config import TRAIN_SHARED
from ground.train.loop import TrainSpec, loader_options, micro_step
from ground.train.packing import Collate
from ground.train.sampler import ResumableSampler

MODES = ("padded", "packed")


def bench_mixture(root: Path, config: dict[str, Any], stage: int = 2, steps: int = 30,
                  warmup: int = 3) -> dict[str, Any]:  # fmt: skip
    """Seconds, tokens/s, padding share and data wait per optimizer step of each mode."""
    import deepspeed
    from torch.utils.data import DataLoader

    from ground.train.data import load_records
    from ground.train.setup import (
        build_data,
        build_model,
        deepspeed_config,
        distributed,
        feature_lookup,
        feature_shapes,
    )

    root = Path(root)
    train, features = config["train"], config["features"]
    spec = TrainSpec(
        stage=stage, out="", resume_dir="",
        init=str(root / (train["llm"] if stage == 1 else f"results/train/stage{stage - 1}/model")),
        records=[str(root / f"results/mixture/stage{stage}.jsonl")],
        feature_index={m: str(root / f"results/features/{m}.index.jsonl") for m in ("image", "video", "audio")},
        feature_store=str(root / features["store"]), hp=train[f"stage{stage}"],
        common={k: train[k] for k in TRAIN_SHARED},
    )  # fmt: skip
    _, _, device = distributed(deepspeed)
    torch.manual_seed(spec.common["seed"])
    records, lookup = load_records([Path(p) for p in spec.records]), feature_lookup(spec)
    model, tokenizer, _ = build_model(spec, device, records, lookup)
    dataset = build_data(spec, model, tokenizer, records, lookup)
    hp, accum = spec.hp, spec.hp["grad_accum"]
    engine, *_ = deepspeed.initialize(model=model, config=deepspeed_config(spec, device, accum),
                                      model_parameters=[p for p in model.parameters() if p.requires_grad])  # fmt: skip
    shapes = feature_shapes(lookup)
    modes = {}
    for mode in MODES:
        collate = Collate(tokenizer.pad_token_id, packing=mode == "packed", max_length=spec.common["max_length"])
        sampler = ResumableSampler(len(dataset), hp["batch_size"], spec.common["seed"], accum=accum)
        loader = DataLoader(dataset, batch_size=hp["batch_size"], sampler=sampler, collate_fn=collate,
                            **loader_options(spec.common["workers"], device))  # fmt: skip
        modes[mode] = _time_steps(engine, iter(loader), accum, steps, warmup, shapes, device)
    padded, packed = modes["padded"], modes["packed"]
    return {
        "stage": stage, "samples": len(dataset), "batch_size": hp["batch_size"], "grad_accum": accum,
        "max_length": spec.common["max_length"], "workers": spec.common["workers"], "steps": steps,
        "warmup": warmup, "device": str(device), "threads": torch.get_num_threads(), "modes": modes,
        "speedup": packed["tokens_per_s"] / padded["tokens_per_s"],
    }  # fmt: skip


def _time_steps(engine: Any, batches: Any, accum: int, steps: int, warmup: int,
                shapes: dict, device: torch.device) -> dict[str, Any]:  # fmt: skip
    seconds, waits, tokens, rows_tokens, rows = [], [], 0, 0, 0
    for step in range(warmup + steps):
        started, wait, step_tokens = time.perf_counter(), 0.0, 0
        for _ in range(accum):
            asked = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - asked
            micro_step(engine, batch, shapes, device)
            step_tokens += batch["tokens"]
            if step >= warmup:
                rows_tokens += batch["input_ids"].numel()
                rows += batch["input_ids"].shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            seconds.append(time.perf_counter() - started)
            waits.append(wait)
            tokens += step_tokens
    total = sum(seconds)
    return {
        "seconds_per_step": statistics.median(seconds),
        "tokens_per_s": tokens / total,
        "padding_share": 1 - tokens / rows_tokens,
        "rows_per_micro_batch": rows / (steps * accum),
        "data_wait_per_step_s": statistics.median(waits),
    }
