"""How many training processes a stage runs, where, and with what accumulation.

    alloc = read_allocation(os.environ)        # None outside a SLURM job
    procs = stage_processes(hp, "torchrun", alloc)      # Processes(nodes=2, per_node=8, ...)
    accum = grad_accum_for(hp, procs.world, stage=2)    # keeps the recipe's global batch

Inside a SLURM job the processes come from what the scheduler granted, not from the recipe: a
job may be given fewer GPUs than asked for (a profile's `set-resources`, a partition limit) or
land on a node of a different shape. The recipe's GPUs still define the global batch
(`batch_size * grad_accum * gpus * nodes`, or `* processes` on CPU); when the allocation has a
different world size, gradient accumulation absorbs the difference.

The Snakemake SLURM jobstep plugin passes a job only SLURM_JOB_ID (it strips the other SLURM_*
variables before running a rule), so what the environment lacks is read from
`scontrol show job`; node lists are expanded with `scontrol show hostnames`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Scontrol = Callable[[list[str]], str]  # scontrol's arguments -> its stdout


@dataclass(frozen=True)
class Allocation:
    """What a SLURM job was granted (per node GPUs; hosts in SLURM's order)."""

    job_id: str
    nodes: int
    gpus_per_node: int
    hosts: tuple[str, ...]
    cpus_per_task: int = 0  # 0: unknown (only read for several nodes, where srun needs it)


@dataclass(frozen=True)
class Processes:
    """The processes a stage starts: `per_node` on each of `nodes` hosts."""

    nodes: int
    per_node: int
    source: str  # where the numbers came from, for the log: "SLURM job 123" | "recipe"
    gpus: bool = False  # one process per GPU (else CPU processes)
    hosts: tuple[str, ...] = ()
    cpus_per_task: int = 0  # CPUs of each node's torchrun (srun's step gets 1 unless told)

    @property
    def world(self) -> int:
        return self.nodes * self.per_node


def run_scontrol(args: list[str]) -> str:
    try:
        return subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError(f"`scontrol {' '.join(args)}` failed inside a SLURM job: {err}") from err


def read_allocation(env: Mapping[str, str], scontrol: Scontrol = run_scontrol) -> Allocation | None:
    """The SLURM job's nodes, GPUs per node and hosts; None outside a SLURM job."""
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        return None
    job: dict[str, str] = {}

    def job_field(name: str) -> str:
        if not job:
            job.update(_job_fields(scontrol(["show", "job", "-o", job_id])))
        return job.get(name, "")

    nodes = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or job_field("NumNodes") or 1)
    gpus = _gpus_from_env(env)
    if gpus is None:
        gpus = _gpus_from_job(job_field("TresPerNode"), job_field("AllocTRES") or job_field("TRES"), nodes)
    if nodes == 1:  # one host needs no rendezvous address and no srun of its own
        return Allocation(job_id=job_id, nodes=1, gpus_per_node=gpus, hosts=())
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or job_field("NodeList")
    hosts = tuple(scontrol(["show", "hostnames", nodelist]).split())
    if len(hosts) != nodes:
        raise RuntimeError(f"SLURM job {job_id}: {nodes} nodes but node list {nodelist!r} names {hosts}")
    cpus = int(env.get("SLURM_CPUS_PER_TASK") or job_field("CPUs/Task") or 0)
    return Allocation(job_id=job_id, nodes=nodes, gpus_per_node=gpus, hosts=hosts, cpus_per_task=cpus)


def _job_fields(text: str) -> dict[str, str]:
    """`scontrol show job -o` prints one line of Key=Value pairs."""
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


def _gpus_from_env(env: Mapping[str, str]) -> int | None:
    if env.get("SLURM_GPUS_ON_NODE"):
        return int(env["SLURM_GPUS_ON_NODE"])
    for name in ("SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"):  # comma-separated device ids
        if name in env:
            return len([d for d in env[name].split(",") if d.strip()])
    return None


def _gpus_from_job(per_node: str, tres: str, nodes: int) -> int:
    """GPUs per node from `TresPerNode=gres/gpu:8` (or `gres:gpu:h100:8`), else the job's
    total `gres/gpu=16` in its TRES spread over its nodes; 0 for a job without GPUs."""
    match = re.search(r"gpu(?::[^:,]+)?:(\d+)", per_node)
    if match:
        return int(match.group(1))
    match = re.search(r"gres/gpu=(\d+)", tres)
    return int(match.group(1)) // nodes if match else 0


def recipe_world(hp: Mapping[str, Any]) -> int:
    """Processes the recipe's global batch is defined for: one per GPU of `resources`, or
    `processes` on CPU (`resources.gpus: 0`)."""
    gpus, nodes = hp["resources"]["gpus"], hp["resources"]["nodes"]
    return gpus * nodes if gpus > 0 else int(hp.get("processes", 1))


def stage_processes(hp: Mapping[str, Any], launcher: str, allocation: Allocation | None) -> Processes:
    """The processes to start: one per allocated GPU (per node, on every allocated node); on a
    job or machine without GPUs, the recipe's `processes`; `python` always runs one process."""
    cpu = int(hp.get("processes", 1))
    if allocation is None:
        nodes, gpus, source = 1, hp["resources"]["gpus"], "recipe"
    else:
        nodes, gpus, source = allocation.nodes, allocation.gpus_per_node, f"SLURM job {allocation.job_id}"
    per_node = gpus or cpu
    if launcher == "python":
        if nodes > 1 or per_node > 1:
            source += f" (launcher python: 1 process instead of {nodes} x {per_node})"
        return Processes(nodes=1, per_node=1, source=source, gpus=gpus > 0)
    if nodes > 1 and launcher != "torchrun":
        raise ValueError(f"a stage on {nodes} nodes needs train.launcher: torchrun, not {launcher}")
    if allocation is None or nodes == 1:
        return Processes(nodes=1, per_node=per_node, source=source, gpus=gpus > 0)
    return Processes(nodes=nodes, per_node=per_node, source=source, gpus=gpus > 0,
                     hosts=allocation.hosts, cpus_per_task=allocation.cpus_per_task)  # fmt: skip


def global_batch(hp: Mapping[str, Any]) -> int:
    return hp["batch_size"] * hp["grad_accum"] * recipe_world(hp)


def grad_accum_for(hp: Mapping[str, Any], world: int, stage: int) -> int:
    """Per-process accumulation that keeps the recipe's global batch on `world` processes
    (the micro batch `batch_size` never changes: it is what fits a GPU)."""
    total, per_step = global_batch(hp), hp["batch_size"] * world
    if total % per_step:
        raise ValueError(
            f"stage {stage}: the recipe's global batch {total} (batch_size {hp['batch_size']} x "
            f"grad_accum {hp['grad_accum']} x {recipe_world(hp)} processes) is not a multiple of "
            f"batch_size x the {world} processes started here; change train.stage{stage}."
            "batch_size / grad_accum / resources, or the allocation"
        )
    return total // per_step


def slurm_resources(resources: Mapping[str, int]) -> dict[str, int | str | None]:
    """Snakemake resources of a training job for the SLURM executor plugin (None: not set).

    One node: `gpu` (sbatch --gpus, the whole job's) and `mpi` 0. The jobstep plugin runs a
    job that has an `mpi` resource as it is instead of in an `srun -n1` step, and its submit side
    reads 0 as no MPI (`--ntasks=1`). That srun would end the trainers: an `srun` that gets the
    SIGTERM of a time limit or a preemption kills its step at once, before they can checkpoint
    (snakemake/snakemake#3241). More nodes: `gres` per node (`--gpus` would be the job's total,
    spread at will), `mpi` "srun" (the launcher runs one `srun` with one torchrun per node) and
    `tasks` = nodes (the plugin requires tasks > 1 for mpi jobs).
    `tasks_per_gpu` 0: never `--ntasks-per-gpu` (which starts one job copy per GPU).
    """
    gpus, nodes = resources["gpus"], resources["nodes"]
    multi = nodes > 1
    return {
        "gpu": gpus if gpus and not multi else None,
        "gres": f"gpu:{gpus}" if gpus and multi else None,
        "nodes": nodes,
        "mpi": "srun" if multi else 0,
        "tasks": nodes if multi else None,
        "tasks_per_gpu": 0,
    }


def rule_resource(config: Mapping[str, Any], name: str) -> Callable[[Any], int | str | None]:
    """A resource function of the `train_stage` rule (its `{stage}` wildcard)."""

    def resource(wildcards: Any) -> int | str | None:
        return slurm_resources(config["train"][f"stage{wildcards.stage}"]["resources"])[name]

    return resource

