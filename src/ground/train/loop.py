"""One training stage on a DeepSpeed engine (ZeRO-2), reading cached features; resumable.

    python -m ground.train --spec results/train/stage2/spec.json          # one process (CPU ok)
    torchrun --nproc_per_node 8 -m ground.train --spec .../spec.json      # GPUs

The spec (written by `ground.train.launch`) names everything the stage reads and writes. Every
`save_every` optimizer steps the engine state (model, optimizer, scheduler), the data position
and the RNG states go to `resume_dir`; a killed stage started again with the same spec continues
from there and ends with the same number of steps. On SIGTERM / SIGUSR1 (`ground.train.preempt`)
every rank finishes the optimizer step it is in, the state is saved and `Preempted` is raised.
The global batch is the recipe's whatever the world size (`ground.train.world`): optimizer step
s sees the same records, micro batch by micro batch, on 1 process or many. The final model is
written once, at the end, in the checkpoint format of `ground.model.grounding` (safetensors +
config + tokenizer). Rank 0 prints each step (`stage 2 step 120/2382 loss 1.2345 lr 1.00e-04
812 tok/s eta 0:14:02`: the line `ground run` shows under its job counter) and, when the spec
names a `tensorboard` folder, writes loss, lr and tokens/s there as TensorBoard scalars.
"""

from __future__ import annotations

import datetime
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

from ground.train.preempt import Preempted, StopRequest, write_marker
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
    """Run the stage to its last step (resuming if a checkpoint exists); return a summary.
    Raises `Preempted` after saving its state when a stop signal arrived (see `preempt`)."""
    import deepspeed

    from ground.train.data import load_records
    from ground.train.setup import (
        build_data,
        build_model,
        deepspeed_config,
        distributed,
        feature_lookup,
        feature_shapes,
    )
    from ground.train.world import global_batch, grad_accum_for

    stop = StopRequest()
    stop.install()  # before the (long) set-up: a signal then still ends with a checkpoint
    started = time.perf_counter()
    rank, world, device = distributed(deepspeed)
    _seed(spec.common["seed"] + spec.stage)
    records, lookup = load_records([Path(p) for p in spec.records]), feature_lookup(spec)
    model, tokenizer, trainable = build_model(spec, device, records, lookup)
    dataset = build_data(spec, model, tokenizer, records, lookup)
    hp = spec.hp
    accum = grad_accum_for(hp, world, spec.stage)
    steps_per_epoch = epoch_steps(len(dataset), hp["batch_size"], accum, world)
    total = max(1, math.ceil(hp["epochs"] * steps_per_epoch))
    if rank == 0:
        print(f"stage {spec.stage}: {world} processes x batch {hp['batch_size']} x accumulation "
              f"{accum} = global batch {global_batch(hp)}; {total} optimizer steps", flush=True)  # fmt: skip
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(spec, device, accum),
        lr_scheduler=lambda opt: cosine_with_warmup(opt, round(hp["warmup_ratio"] * total), total),
    )
    step = _resume(engine, spec, rank, world, total)
    board = _board(spec, step) if rank == 0 else None
    loop = _Loop(engine, spec, rank, world, device, accum, steps_per_epoch, total, stop,
                 feature_shapes(lookup), board, _Pace(step))  # fmt: skip
    try:
        losses = loop.run(dataset, tokenizer, step)
    finally:
        if board is not None:
            board.close()
    if rank == 0:
        _export(engine.module, tokenizer, spec.out)
    return {
        "stage": spec.stage,
        "steps": total,
        "resumed_from": step,
        "world_size": world,
        "grad_accum": accum,
        "samples": len(dataset),
        "rejected": len(dataset.rejected),
        "trainable": len(trainable),
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def epoch_steps(samples: int, batch_size: int, accum: int, world: int) -> int:
    """Optimizer steps per epoch: whole global batches of `batch_size * accum * world`, the
    last one completed by wrapping around to the epoch's start (as `ResumableSampler` pads), so
    that the count, and which records each step sees, do not depend on the world size."""
    if samples < 1:
        raise ValueError("the stage has no samples to train on")
    return math.ceil(samples / (batch_size * accum * world))


@dataclass
class _Loop:
    """The optimizer-step loop of one process."""

    engine: Any
    spec: TrainSpec
    rank: int
    world: int
    device: torch.device
    accum: int
    steps_per_epoch: int
    total: int
    stop: StopRequest
    shapes: dict[str, tuple[int, ...]]  # one cached item's shape per modality
    board: Any  # rank 0's TensorBoard writer, or None
    pace: _Pace

    def run(self, dataset, tokenizer, step: int) -> list[tuple]:
        """Steps from `step` to the end; returns (step, loss, lr) of the steps run here."""
        from torch.utils.data import DataLoader

        from ground.train.packing import Collate
        from ground.train.sampler import ResumableSampler, chunk_seed

        hp, common = self.spec.hp, self.spec.common
        seed = common["seed"]
        collate = Collate(tokenizer.pad_token_id, packing=common["packing"], max_length=common["max_length"])
        lengths = dataset.lengths if common["group_by_length"] else None
        logged: list[tuple] = []
        while step < self.total:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            sampler = ResumableSampler(len(dataset), hp["batch_size"], seed + epoch, world_size=self.world,
                                       rank=self.rank, start_batch=in_epoch * self.accum, accum=self.accum,
                                       lengths=lengths)  # fmt: skip
            loader = DataLoader(dataset, batch_size=hp["batch_size"], sampler=sampler, collate_fn=collate,
                                **loader_options(common["workers"], self.device))  # fmt: skip
            window: list[float] = []
            tokens = 0
            for batch_index, batch in enumerate(loader, start=sampler.start_batch):
                # Dropout masks follow the micro batch, not the process: a micro batch gets the
                # same ones whichever rank or accumulation slot runs it, and after a resume.
                torch.manual_seed(chunk_seed(seed + epoch, sampler.chunk(batch_index)))
                window.append(micro_step(self.engine, batch, self.shapes, self.device).item())
                tokens += batch["tokens"]
                if len(window) < self.accum:
                    continue
                step += 1
                logged.append(self._end_step(step, window, tokens))
                window, tokens = [], 0
                if step >= self.total or step % self.steps_per_epoch == 0:
                    break
        return logged

    def _end_step(self, step: int, window: list[float], tokens: int) -> tuple:
        """Log the step's loss (the mean over all ranks' micro batches), checkpoint when due,
        and stop (checkpoint first) when any rank got a stop signal: ranks decide together in
        one all-reduce, so they all leave after the same step."""
        stop = float(self.stop.signal is not None)
        shared = torch.tensor([sum(window) / len(window), stop, tokens], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(shared)
        entry = (step, shared[0].item() / self.world, self.engine.get_lr()[0])
        if self.rank == 0:
            _log_loss(self.spec, entry)
            self._show(entry, shared[2].item())
        saved = step % self.spec.hp["save_every"] == 0 or step == self.total
        if saved:
            if self.board is not None:  # first: a stage resumed from here finds every step
                self.board.flush()
            _save_resume(self.engine, self.spec, step, self.world)
        if shared[1].item() > 0 and step < self.total:
            if not saved:
                _save_resume(self.engine, self.spec, step, self.world)
            error = Preempted(self.spec.stage, step, self.total, self.stop.name or "a peer's signal")
            if self.rank == 0:
                write_marker(self.spec.resume_dir, error)
            raise error
        return entry

    def _show(self, entry: tuple, tokens: float) -> None:
        step, loss, lr = entry
        speed, eta = self.pace.tick(step, tokens, self.total)
        print(step_line(self.spec.stage, entry, self.total, speed, eta), flush=True)
        if self.board is not None:
            for name, value in (("loss", loss), ("lr", lr), ("tokens_per_s", speed)):
                self.board.add_scalar(f"train/{name}", value, step)


def step_line(stage: int, entry: tuple, total: int, speed: float, eta: float) -> str:
    """What rank 0 prints after an optimizer step (and `ground run` shows while it runs)."""
    step, loss, lr = entry
    left = datetime.timedelta(seconds=round(eta))
    return f"stage {stage} step {step}/{total} loss {loss:.4f} lr {lr:.2e} {speed:.0f} tok/s eta {left}"


@dataclass
class _Pace:
    """Tokens/s and the time left, over the optimizer steps this process has run."""

    start_step: int
    started: float = field(default_factory=time.perf_counter)
    tokens: float = 0.0

    def tick(self, step: int, tokens: float, total: int) -> tuple[float, float]:
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        per_step = elapsed / max(step - self.start_step, 1)
        return self.tokens / elapsed, per_step * (total - step)


def _board(spec: TrainSpec, step: int) -> Any:
    """A TensorBoard writer on the spec's folder (None without one). A stage started over
    begins an empty folder; a resumed one hides the events logged after its checkpoint (they
    are logged again)."""
    folder = spec.extra.get("tensorboard")
    if not folder:
        return None
    from torch.utils.tensorboard import SummaryWriter

    if step == 0:
        shutil.rmtree(folder, ignore_errors=True)
    return SummaryWriter(folder, purge_step=step + 1 if step else None, flush_secs=10)


def micro_step(engine: Any, batch: dict, shapes: dict[str, tuple[int, ...]], device: torch.device) -> torch.Tensor:
    """Forward, backward and the engine's step (an optimizer step every `accum` calls) of one
    micro batch; returns its loss. Training and `ground.train.throughput` both step with it."""
    anchor = _every_adapter(engine.module, shapes)  # first: see its docstring
    loss = engine(**to_device(batch, device)).loss
    engine.backward(loss + anchor)
    engine.step()
    return loss


def _every_adapter(model, shapes: dict[str, tuple[int, ...]]) -> torch.Tensor | float:
    """0 x every adapter's output on one all-zero item, made BEFORE the forward.

    ZeRO-2 fills its gradient buckets in the order backward finishes parameters, and every rank
    must fill them in the same order: a rank whose micro batch has no audio would otherwise skip
    the audio adapter (collectives of different sizes: gloo "Received data size doesn't match",
    NCCL a hang), and one that has it finishes it at another point of backward (same sizes,
    other parameters' gradients summed: silently wrong). Autograd runs the newest nodes first,
    so these oldest uses of the adapters are backpropagated last, on every rank, in this order:
    each adapter parameter is done then. Zero gradients leave every step's maths as it was."""
    weight = next(model.adapters.parameters())
    total = weight.new_zeros(())
    for modality, adapter in model.adapters.items():
        if modality in shapes:
            item = weight.new_zeros((1, *shapes[modality]))
            total = total + adapter(item).float().sum()
    return 0.0 * total


def loader_options(workers: int, device: torch.device) -> dict[str, Any]:
    """`train.workers` processes read and collate the next batches while the model computes
    (the sampler's order is the same with any number); pinned memory for copies to a GPU."""
    if workers == 0:
        return {}
    return {"num_workers": workers, "prefetch_factor": 4, "persistent_workers": False,
            "pin_memory": device.type == "cuda"}  # fmt: skip


def to_device(batch: dict, device: torch.device) -> dict:
    media = {m: (f.to(device, non_blocking=True), o.to(device, non_blocking=True))
             for m, (f, o) in batch["media"].items()}  # fmt: skip
    keep = [k for k in ("input_ids", "attention_mask", "labels", "position_ids") if batch.get(k) is not None]
    return {k: batch[k].to(device, non_blocking=True) for k in keep} | {"media": media}


def _log_loss(spec: TrainSpec, entry: tuple) -> None:
    step, loss, lr = entry
    with open(spec.losses, "a") as out:
        out.write(json.dumps({"step": step, "loss": loss, "lr": lr}) + "\n")


def _save_resume(engine, spec: TrainSpec, step: int, world: int) -> None:
    state = {"step": step, "world": world, "rng": _rng_state()}
    engine.save_checkpoint(spec.resume_dir, tag=f"step{step}", client_state=state)
    if int(os.environ.get("RANK", "0")) == 0:  # keep only the newest: they are large for 7B
        for old in Path(spec.resume_dir).glob("step*"):
            if old.name != f"step{step}":
                shutil.rmtree(old, ignore_errors=True)


def _resume(engine, spec: TrainSpec, rank: int, world: int, total: int) -> int:
    """Load the newest resumable checkpoint if there is one; returns the step to continue from."""
    if not (Path(spec.resume_dir) / "latest").is_file():
        _truncate_losses(spec, 0)
        return 0
    path, state = engine.load_checkpoint(spec.resume_dir)
    if path is None:
        _truncate_losses(spec, 0)
        return 0
    saved_world = state.get("world", world)
    if saved_world != world:  # ZeRO partitions the optimizer state by rank
        raise RuntimeError(
            f"stage {spec.stage}: the checkpoint in {spec.resume_dir} (step {state['step']}) was "
            f"written by {saved_world} processes, this run has {world}; run it on {saved_world} "
            "again, or delete that folder to start the stage over"
        )
    _set_rng_state(state["rng"])
    if rank == 0:
        print(f"stage {spec.stage}: resumed from step {state['step']} of {total} ({path})", flush=True)
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
