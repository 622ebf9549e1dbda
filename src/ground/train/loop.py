"""One training stage on a DeepSpeed engine (ZeRO-2), reading cached features; resumable.

    python -m ground.train --spec results/train/stage2/spec.json          # one process (CPU ok)
    torchrun --nproc_per_node 8 -m ground.train --spec .../spec.json      # GPUs

The spec (written by `ground.train.launch`) names everything the stage reads and writes. Every
`save_every` optimizer steps the engine state (model, optimizer, scheduler), the data position
and the RNG states go to `resume_dir`; a killed stage started again with the same spec continues
from there and ends with the same number of steps. The final model is written once, at the end,
in the checkpoint format of `ground.model.grounding` (safetensors + config + tokenizer).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ground.train.schedule import cosine_with_warmup


@dataclass
class TrainSpec:
    """Everything one stage needs; JSON so that every rank of a launcher reads the same."""

    stage: int
    init: str  # base LLM folder (stage 1) or the previous stage's checkpoint
    out: str  # final checkpoint folder
    resume_dir: str
    records: list[str]  # the stage's mixture (JSONL, ground.mixture.run)
    feature_index: dict[str, str]  # modality -> features index JSONL
    feature_store: str
    hp: dict[str, Any]  # this stage's config section (train.stageN)
    common: dict[str, Any]  # train.* keys shared by the stages
    losses: str = ""  # JSONL of (step, loss, lr) written by rank 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> TrainSpec:
        return cls(**json.loads(Path(path).read_text()))

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))


def train_stage(spec: TrainSpec) -> dict[str, Any]:
    """Run the stage to its last step (resuming if a checkpoint exists); return a summary."""
    import deepspeed

    from ground.train.data import load_records
    from ground.train.setup import (
        build_data,
        build_model,
        deepspeed_config,
        distributed,
        feature_lookup,
    )

    started = time.perf_counter()
    rank, world, device = distributed(deepspeed)
    _seed(spec.common["seed"] + spec.stage)
    records, lookup = load_records([Path(p) for p in spec.records]), feature_lookup(spec)
    model, tokenizer, trainable = build_model(spec, device, records, lookup)
    dataset = build_data(spec, model, tokenizer, records, lookup)
    hp = spec.hp
    steps_per_epoch = epoch_steps(len(dataset), hp["batch_size"], hp["grad_accum"], world)
    total = max(1, math.ceil(hp["epochs"] * steps_per_epoch))
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(spec, device),
        lr_scheduler=lambda opt: cosine_with_warmup(opt, round(hp["warmup_ratio"] * total), total),
    )
    step = _resume(engine, spec, rank)
    losses = _run(engine, dataset, tokenizer, spec, (step, steps_per_epoch, total), rank, world, device)
    if rank == 0:
        _export(engine.module, tokenizer, spec.out)
    return {
        "stage": spec.stage,
        "steps": total,
        "resumed_from": step,
        "samples": len(dataset),
        "rejected": len(dataset.rejected),
        "trainable": len(trainable),
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def epoch_steps(samples: int, batch_size: int, accum: int, world: int) -> int:
    """Optimizer steps per epoch; a last incomplete accumulation window is dropped (drop_last)
    so that DeepSpeed's own accumulation boundaries stay aligned with ours."""
    steps = math.ceil(samples / (batch_size * world)) // accum
    if steps == 0:
        raise ValueError(
            f"{samples} samples are fewer than one optimizer step needs "
            f"(batch {batch_size} x accumulation {accum} x {world} processes)"
        )
    return steps


def _run(engine, dataset, tokenizer, spec, counters, rank, world, device) -> list[tuple]:
    """The optimizer-step loop; returns (step, loss, lr) for the steps run in this process."""
    from torch.utils.data import DataLoader

    from ground.train.data import collate
    from ground.train.sampler import ResumableSampler

    hp = spec.hp
    accum = hp["grad_accum"]
    step, steps_per_epoch, total = counters
    logged: list[tuple] = []
    while step < total:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        sampler = ResumableSampler(len(dataset), hp["batch_size"], spec.common["seed"] + epoch,
                                   world_size=world, rank=rank, start_batch=in_epoch * accum)  # fmt: skip
        loader = DataLoader(dataset, batch_size=hp["batch_size"], sampler=sampler,
                            collate_fn=lambda b: collate(b, tokenizer.pad_token_id))  # fmt: skip
        window: list[float] = []
        for batch in loader:
            loss = engine(**_to_device(batch, device)).loss
            engine.backward(loss)
            engine.step()
            window.append(loss.item())
            if len(window) < accum:
                continue
            step += 1
            entry = (step, sum(window) / len(window), engine.get_lr()[0])
            window = []
            logged.append(entry)
            if rank == 0:
                _log_loss(spec, entry, total)
            if step % hp["save_every"] == 0 or step == total:
                _save_resume(engine, spec, step)
            if step >= total or step % steps_per_epoch == 0:
                break
    return logged


def _to_device(batch: dict, device: torch.device) -> dict:
    media = {m: (f.to(device), o.to(device)) for m, (f, o) in batch["media"].items()}
    keep = ("input_ids", "attention_mask", "labels")
    return {k: batch[k].to(device) for k in keep} | {"media": media}


def _log_loss(spec: TrainSpec, entry: tuple, total: int) -> None:
    step, loss, lr = entry
    with open(spec.losses, "a") as out:
        out.write(json.dumps({"step": step, "loss": loss, "lr": lr}) + "\n")
    print(f"stage {spec.stage} step {step}/{total} loss {loss:.4f} lr {lr:.2e}", flush=True)


def _save_resume(engine, spec: TrainSpec, step: int) -> None:
    state = {"step": step, "rng": _rng_state()}
    engine.save_checkpoint(spec.resume_dir, tag=f"step{step}", client_state=state)
    if int(os.environ.get("RANK", "0")) == 0:  # keep only the newest: they are large for 7B
        for old in Path(spec.resume_dir).glob("step*"):
            if old.name != f"step{step}":
                shutil.rmtree(old, ignore_errors=True)


def _resume(engine, spec: TrainSpec, rank: int) -> int:
    """Load the newest resumable checkpoint if there is one; returns the step to continue from."""
    if not (Path(spec.resume_dir) / "latest").is_file():
        _truncate_losses(spec, 0)
        return 0
    path, state = engine.load_checkpoint(spec.resume_dir)
    if path is None:
        _truncate_losses(spec, 0)
        return 0
    _set_rng_state(state["rng"])
    if rank == 0:
        print(f"stage {spec.stage}: resuming from step {state['step']} ({path})", flush=True)
    _truncate_losses(spec, state["step"])
    return int(state["step"])


def _truncate_losses(spec: TrainSpec, step: int) -> None:
    """Steps logged after the checkpoint were lost with the killed process: drop them."""
    path = Path(spec.losses)
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _export(model, tokenizer, out: str) -> None:
    tmp = Path(out + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp / "llm")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
