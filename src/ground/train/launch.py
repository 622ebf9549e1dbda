"""Starting a training stage with the launcher the recipe chooses, and what it leaves behind.

    summary = run_stage(2, params, inputs={...}, out=Path("results/train/stage2"), cache=..., log=...)

`python` runs the stage in one process (CPU or one GPU), `torchrun`/`deepspeed` start one
process per GPU: those of the SLURM allocation inside a job, else `train.stageN.resources.gpus`
(`train.stageN.processes` on CPU); on several nodes one torchrun per node through `srun`
(`ground.train.world`). SIGTERM / SIGUSR1 are passed on to the trainers' process group; they
finish the optimizer step, save their state and exit 75, and `run_stage` raises `StagePreempted`
("preempted at step N; will resume", `ground.train.preempt`). Resumable state lives outside the stage's
outputs (which Snakemake deletes before rerunning an interrupted job), under a folder named by
a hash of everything that defines the stage, so a changed learning rate or new data never
resumes from a stale checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ground.common.config import TRAIN_SHARED
from ground.train.curves import plot_losses
from ground.train.loop import TrainSpec
from ground.train.preempt import (
    EXIT_PREEMPTED,
    FORWARDED_SIGNALS,
    StagePreempted,
    clear_marker,
    die_with_parent,
    read_marker,
)
from ground.train.world import (
    Processes,
    Scontrol,
    global_batch,
    grad_accum_for,
    read_allocation,
    run_scontrol,
    stage_processes,
)


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
        extra={"summary": str(out / "summary.json"), "tensorboard": str(out / "tensorboard")},
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


# The torchrun of this interpreter (`torchrun` on PATH may be another environment's). Its
# workers must be sent SIGUSR1 too (it only forwards the signals it handles), and given time to
# finish a step and write a checkpoint before it kills them (its default is 30 s).
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TORCHRUN_SIGNALS = "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"
SHUTDOWN_GRACE_S = 1800  # longer than a 7B step plus its ZeRO checkpoint; SLURM's limit still rules
RDZV_PORT_BASE = 20000  # + job id % 10000: jobs sharing a first node do not collide


def launch_command(spec_path: Path, launcher: str, procs: Processes, job_id: str = "") -> list[str]:
    """The command that starts `procs` trainers; on several nodes one torchrun per node through
    `srun` (the rule runs outside any job step: see `world.slurm_resources`)."""
    entry = ["-m", "ground.train", "--spec", str(spec_path)]
    if launcher == "python":
        return [sys.executable, *entry]
    if launcher == "deepspeed":
        return ["deepspeed", f"--num_gpus={procs.per_node}", "--module", *entry[1:]]
    torchrun = [*TORCHRUN, TORCHRUN_SIGNALS, f"--shutdown-timeout={SHUTDOWN_GRACE_S}",
                f"--nproc-per-node={procs.per_node}"]  # fmt: skip
    if procs.nodes == 1:
        return [*torchrun, "--standalone", *entry]
    port = RDZV_PORT_BASE + int(job_id) % 10000
    srun = ["srun", f"--nodes={procs.nodes}", f"--ntasks={procs.nodes}", "--ntasks-per-node=1",
            "--kill-on-bad-exit=1", *([f"--gres=gpu:{procs.per_node}"] if procs.gpus else []),
            *([f"--cpus-per-task={procs.cpus_per_task}"] if procs.cpus_per_task else [])]  # fmt: skip
    return [*srun, *torchrun, f"--nnodes={procs.nodes}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={procs.hosts[0]}:{port}", f"--rdzv-id={job_id}", *entry]  # fmt: skip


def run_stage(
    stage: int, params: dict, inputs: dict[str, Any], out: Path, cache: Path, log: Path,
    env: Mapping[str, str] | None = None, scontrol: Scontrol = run_scontrol,
) -> dict:  # fmt: skip
    """Run the stage to completion (resuming when possible); returns the summary and losses.
    Processes come from the SLURM allocation in `env` (default os.environ) when there is one.
    Raises `StagePreempted` when a stop signal ended it early with a checkpoint."""
    spec = write_spec(stage, params, inputs, out, cache)
    hp, launcher = params[f"stage{stage}"], params["launcher"]
    allocation = read_allocation(os.environ if env is None else env, scontrol)
    procs = stage_processes(hp, launcher, allocation)
    accum = grad_accum_for(hp, procs.world, stage)  # fails here, before anything starts
    command = launch_command(out / "spec.json", launcher, procs, allocation.job_id if allocation else "")
    clear_marker(spec.resume_dir)
    with open(log, "a") as sink:
        print(f"stage {stage}: {procs.nodes} node(s) x {procs.per_node} processes from the "
              f"{procs.source}, accumulation {accum}, global batch {global_batch(hp)}", file=sink)  # fmt: skip
        print("$ " + " ".join(command), file=sink, flush=True)
        code = run_forwarding_signals(command, sink)
    if code != 0:
        _raise_failure(stage, code, spec.resume_dir, log)
    losses = [json.loads(line) for line in Path(spec.losses).read_text().splitlines()]
    plot_losses(losses, out / "loss.png", title=f"stage {stage}")
    summary = json.loads(Path(spec.extra["summary"]).read_text())
    # The stage is complete and exported: its resumable state (optimizer included: tens of GB
    # for 7B) has no further use.
    shutil.rmtree(spec.resume_dir, ignore_errors=True)
    return summary | {"losses": losses}


def run_forwarding_signals(command: list[str], sink: IO[str]) -> int:
    """Run `command` in a process group of its own and pass SIGTERM / SIGUSR1 (and SIGINT,
    SIGHUP) on to that whole group: the trainers (or torchrun and its workers, or srun) get
    them at once, and Snakemake, which may share our group, never gets a signal back from us.
    The child is SIGKILLed if we die first (`preempt.die_with_parent`); returns its exit code."""
    if threading.current_thread() is not threading.main_thread():  # handlers need the main thread
        return subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode
    group: list[int] = []  # the child's process group, once it exists
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if not group:  # arrived before the child existed: deliver it once it does
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):  # the group already exited
            os.killpg(group[0], signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    parent = os.getpid()
    child = None
    try:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, process_group=0,
                                 preexec_fn=lambda: die_with_parent(parent))  # fmt: skip
        group.append(child.pid)
        for signum in pending:
            forward(signum, None)
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None and child.poll() is None:  # we are leaving on an exception
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _raise_failure(stage: int, code: int, resume_dir: str, log: Path) -> None:
    """torchrun and srun exit 1 whatever their trainers did: the marker the trainer leaves
    tells a preemption from a failure."""
    marker = read_marker(resume_dir)
    if marker is None and code != EXIT_PREEMPTED:
        raise RuntimeError(f"stage {stage} training failed (exit {code}); see {log}")
    if marker is None:  # exit 75 without a marker: a trainer stopped before its first step
        raise StagePreempted(f"stage {stage} preempted before its first step; will start over; see {log}")
    raise StagePreempted(
        f"stage {stage} preempted at step {marker['step']}; will resume (step {marker['step']} of "
        f"{marker['total']} saved on {marker['signal']} in {resume_dir}; Snakemake's retries or "
        f"SLURM's requeue run it again); see {log}"
    )
