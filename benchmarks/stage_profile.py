"""Where a training stage's time goes: data loading, forward, backward, optimizer, checkpoints.

Runs the real stage (`ground.train.loop.train_stage`, the DeepSpeed engine the pipeline uses) from
a finished run's spec for `--steps` optimizer steps into a scratch folder, under cProfile, and
prints each phase's share of the wall time:

    # in a folder where `ground run` (or `ground run --until stage2`) has run
    python benchmarks/stage_profile.py --workdir DIR --stage 2 --steps 200

| phase      | what it times (cumulative, callees included)                          |
|------------|-----------------------------------------------------------------------|
| set-up     | loading the model, building the engine, the dataset, the first batch  |
| data       | the DataLoader's `__next__` (features read, tokenised rows collated)  |
| forward    | `DeepSpeedEngine.forward` (adapters + LLM + loss)                     |
| backward   | `DeepSpeedEngine.backward`                                            |
| optimizer  | `DeepSpeedEngine.step` (ZeRO's gradient reduction, AdamW, zero_grad)  |
| checkpoint | the resumable checkpoints every `save_every` steps                    |
| export     | saving the stage's model at the end                                   |

cProfile adds a few percent to Python-heavy phases; the shares, not the absolute seconds, are the
figures to read. The run's own files are not touched.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

PHASES = {
    "data": ("dataloader.py", "__next__"),
    "forward": ("engine.py", "forward"),
    "backward": ("engine.py", "backward"),
    "optimizer": ("engine.py", "step"),
    "checkpoint": ("loop.py", "_save_resume"),
    "export": ("loop.py", "_export"),
    "loop": ("loop.py", "run"),
}


def cumulative(stats: pstats.Stats, file_end: str, name: str) -> float:
    """Cumulative seconds of the outermost calls of functions `name` defined in files `file_end`."""
    return sum(
        row[3]
        for (path, _, func), row in stats.stats.items()  # type: ignore[attr-defined]
        if func == name and path.endswith(file_end)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a run's folder")
    parser.add_argument("--stage", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps to profile")
    parser.add_argument(
        "--save-every", type=int, default=0, help="override save_every (0: the spec's)"
    )
    parser.add_argument(
        "--top", type=int, default=0, help="also print cProfile's top N by cumulative time"
    )
    args = parser.parse_args()
    os.chdir(args.workdir)
    from ground.train.loop import TrainSpec, epoch_steps, train_stage

    spec = TrainSpec.read(Path(f"results/train/stage{args.stage}/spec.json"))
    scratch = Path(tempfile.mkdtemp(prefix="stage-profile-"))
    samples = sum(1 for path in spec.records for _ in open(path))
    hp = spec.hp
    per_epoch = epoch_steps(samples, hp["batch_size"], hp["grad_accum"], 1)
    hp["epochs"] = args.steps / per_epoch
    if args.save_every:
        hp["save_every"] = args.save_every
    spec.out, spec.resume_dir = str(scratch / "model"), str(scratch / "resume")
    spec.losses = str(scratch / "losses.jsonl")
    spec.extra = {key: str(scratch / Path(value).name) for key, value in spec.extra.items()}
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    summary = train_stage(spec)
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    seconds = {phase: cumulative(stats, *where) for phase, where in PHASES.items()}
    loop = seconds.pop("loop")
    seconds["set-up"] = wall - loop - seconds["export"]
    seconds["other (logging, step bookkeeping)"] = loop - sum(
        seconds[p] for p in ("data", "forward", "backward", "optimizer", "checkpoint")
    )
    print(f"stage {args.stage}: {summary['steps']} optimizer steps, "
          f"{hp['batch_size']} x {hp['grad_accum']} samples each, save_every {hp['save_every']}, "
          f"{wall:.1f} s under cProfile ({summary['steps'] / loop:.2f} steps/s in the loop)")  # fmt: skip
    print("| phase | seconds | share |\n|---|---|---|")
    for phase, value in seconds.items():
        print(f"| {phase} | {value:.1f} | {100 * value / wall:.0f}% |")
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)  # e.g. --top 40
    print(json.dumps({"wall_s": round(wall, 2), **{k: round(v, 2) for k, v in seconds.items()}}))


if __name__ == "__main__":
    main()
