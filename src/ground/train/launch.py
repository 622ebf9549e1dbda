"""Starting a training stage with the launcher the recipe chooses, and what it leaves behind.

    summary = run_stage(2, params, inputs={...}, out=Path("results/train/stage2"), cache=..., log=...)

`python` runs the stage in one process (CPU or one GPU), `torchrun`/`deepspeed` start one
process per GPU (`train.stageN.resources.gpus`). Resumable state lives outside the stage's
outputs (which Snakemake deletes before rerunning an interrupted job), under a folder named by
a hash of everything that defines the stage, so a changed learning rate or new data never
resumes from a stale checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ground.common.config import TRAIN_SHARED
from ground.train.curves import plot_losses
from ground.train.loop import TrainSpec


def write_spec(stage: int, params: dict, inputs: dict[str, Any], out: Path, cache: Path) -> TrainSpec:
    """`params` is the stage's `params.cfg` (see `ground.workflow.steps.step_config`)."""
    spec = TrainSpec(
        stage=stage,
        init=str(inputs["init"]),
        out=str(out / "model"),
        resume_dir="",
        records=[str(p) for p in inputs["records"]],
        feature_index={m: str(p) for m, p in inputs["features"].items()},
        feature_store=str(inputs["store"]),
        hp=params[f"stage{stage}"],
        common={k: params[k] for k in TRAIN_SHARED},
        losses=str(out / "losses.jsonl"),
        extra={"summary": str(out / "summary.json")},
    )
    spec.resume_dir = str(cache / f"stage{stage}-{_identity(spec)}")
    out.mkdir(parents=True, exist_ok=True)
    spec.write(out / "spec.json")
    return spec


def _identity(spec: TrainSpec) -> str:
    """Hash of the stage's settings and its inputs' names, sizes and mtimes."""
    files = [spec.init, *spec.records, *spec.feature_index.values()]
    stats = []
    for name in files:
        for path in sorted(Path(name).rglob("*")) if Path(name).is_dir() else [Path(name)]:
            if path.is_file():
                st = path.stat()
                stats.append((str(path), st.st_size, st.st_mtime_ns))
    blob = json.dumps({"hp": spec.hp, "common": spec.common, "stage": spec.stage, "files": stats})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def launch_command(spec_path: Path, launcher: str, gpus: int) -> list[str]:
    procs = max(1, gpus)
    if launcher == "torchrun":
        return ["torchrun", "--standalone", f"--nproc_per_node={procs}", "-m", "ground.train", "--spec", str(spec_path)]
    if launcher == "deepspeed":
        return ["deepspeed", f"--num_gpus={procs}", "--module", "ground.train", "--spec", str(spec_path)]
    return [sys.executable, "-m", "ground.train", "--spec", str(spec_path)]


def run_stage(stage: int, params: dict, inputs: dict[str, Any], out: Path, cache: Path, log: Path) -> dict:
    """Run the stage to completion (resuming when possible); returns the summary and losses."""
    spec = write_spec(stage, params, inputs, out, cache)
    gpus = params[f"stage{stage}"]["resources"]["gpus"]
    command = launch_command(out / "spec.json", params["launcher"], gpus)
    with open(log, "a") as sink:
        print("$ " + " ".join(command), file=sink, flush=True)
        proc = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} training failed (exit {proc.returncode}); see {log}")
    losses = [json.loads(line) for line in Path(spec.losses).read_text().splitlines()]
    plot_losses(losses, out / "loss.png", title=f"stage {stage}")
    summary = json.loads(Path(spec.extra["summary"]).read_text())
    # The stage is complete and exported: its resumable state (optimizer included: tens of GB
    # for 7B) has no further use.
    shutil.rmtree(spec.resume_dir, ignore_errors=True)
    return summary | {"losses": losses}
