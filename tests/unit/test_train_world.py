"""Which processes a stage starts, from a SLURM allocation or the recipe, the command that
starts them, the accumulation that keeps the global batch, the SLURM job resources, and how the
launcher passes stop signals on and reports a preempted stage.

.venv/bin/pytest tests/unit/test_train_world.py -q
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ground.train.launch import RDZV_PORT_BASE, _raise_failure, launch_command
from ground.train.preempt import EXIT_PREEMPTED, Preempted, StagePreempted, write_marker
from ground.train.world import (
    Processes,
    grad_accum_for,
    read_allocation,
    slurm_resources,
    stage_processes,
)

SPEC = Path("results/train/stage2/spec.json")
ENTRY = ["-m", "ground.train", "--spec", str(SPEC)]


def stage(gpus: int, nodes: int = 1, batch: int = 16, accum: int = 2, processes: int = 1) -> dict:
    return {"batch_size": batch, "grad_accum": accum, "processes": processes,
            "resources": {"gpus": gpus, "nodes": nodes}}  # fmt: skip


class FakeScontrol:
    """`scontrol` as a function: `show hostnames` expands the two-node list, `show job -o`
    answers with the job line; records what was asked."""

    def __init__(self, job_line: str = "") -> None:
        self.calls: list[list[str]] = []
        self.job_line = job_line

    def __call__(self, args: list[str]) -> str:
        self.calls.append(args)
        if args[:2] == ["show", "hostnames"]:
            assert args[2] == "gpu[07-08]"
            return "gpu07\ngpu08\n"
        if args[:2] == ["show", "job"]:
            return self.job_line
        raise AssertionError(f"unexpected scontrol {args}")


def test_without_an_allocation_the_recipe_sets_the_processes() -> None:
    scontrol = FakeScontrol()
    assert read_allocation({"PATH": "/bin"}, scontrol) is None and scontrol.calls == []
    procs = stage_processes(stage(gpus=8, nodes=2), "torchrun", None)
    assert (procs.nodes, procs.per_node, procs.source) == (1, 8, "recipe")  # nodes need a job
    command = launch_command(SPEC, "torchrun", procs)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in command and "--nproc-per-node=8" in command
    assert command[-4:] == ENTRY and "srun" not in command
    cpu = stage_processes(stage(gpus=0, processes=2), "torchrun", None)
    assert (cpu.world, cpu.gpus) == (2, False)
    assert stage_processes(stage(gpus=0, processes=2), "python", None).world == 1
    assert launch_command(SPEC, "python", cpu) == [sys.executable, *ENTRY]


def test_one_node_four_gpus_from_the_slurm_step_environment() -> None:
    """Inside the plugin's `srun -n1` step: the step's variables, no scontrol call."""
    env = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "1", "SLURM_GPUS_ON_NODE": "4",
           "SLURM_JOB_NODELIST": "gpu07", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}  # fmt: skip
    scontrol = FakeScontrol()
    allocation = read_allocation(env, scontrol)
    assert allocation is not None and (allocation.nodes, allocation.gpus_per_node) == (1, 4)
    assert scontrol.calls == []
    procs = stage_processes(stage(gpus=8), "torchrun", allocation)  # the recipe asked for 8
    assert (procs.nodes, procs.per_node, procs.source) == (1, 4, "SLURM job 4242")
    command = launch_command(SPEC, "torchrun", procs, allocation.job_id)
    assert "--nproc-per-node=4" in command and "--standalone" in command
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1" in command
    assert any(a.startswith("--shutdown-timeout=") for a in command)
    # The recipe's global batch 16 x 2 x 8 = 256 on 4 GPUs: accumulation 4.
    assert grad_accum_for(stage(gpus=8), procs.world, stage=2) == 4
    # Only CUDA_VISIBLE_DEVICES (or SLURM_JOB_GPUS) left: counted from the device list.
    assert read_allocation({"SLURM_JOB_ID": "1", "SLURM_NNODES": "1", "SLURM_JOB_GPUS": "2,5"},
                           scontrol).gpus_per_node == 2  # fmt: skip


def test_two_nodes_eight_gpus_one_torchrun_per_node_through_srun() -> None:
    """An `mpi` job: the jobstep plugin left only SLURM_JOB_ID (and the batch step's
    CUDA_VISIBLE_DEVICES); nodes and hosts come from scontrol."""
    job = ("JobId=777 JobName=x NumNodes=2 NumCPUs=32 CPUs/Task=16 NodeList=gpu[07-08] "
           "TresPerNode=gres/gpu:8 AllocTRES=cpu=32,mem=800G,node=2,billing=32,gres/gpu=16")  # fmt: skip
    scontrol = FakeScontrol(job)
    env = {"SLURM_JOB_ID": "777", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
    allocation = read_allocation(env, scontrol)
    assert allocation is not None
    assert (allocation.nodes, allocation.gpus_per_node, allocation.hosts) == (2, 8, ("gpu07", "gpu08"))
    assert allocation.cpus_per_task == 16
    procs = stage_processes(stage(gpus=8, nodes=2), "torchrun", allocation)
    assert procs.world == 16
    command = launch_command(SPEC, "torchrun", procs, allocation.job_id)
    at = command.index(sys.executable)
    assert command[:at] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
                            "--kill-on-bad-exit=1", "--gres=gpu:8", "--cpus-per-task=16"]  # fmt: skip
    torchrun = command[at:]
    assert "--nnodes=2" in torchrun and "--nproc-per-node=8" in torchrun
    assert "--rdzv-backend=c10d" in torchrun and "--rdzv-id=777" in torchrun
    assert f"--rdzv-endpoint=gpu07:{RDZV_PORT_BASE + 777}" in torchrun
    assert "--standalone" not in torchrun and torchrun[-4:] == ENTRY
    # Without GPUs, nodes from the environment win over scontrol; the TRES total is split.
    env = {"SLURM_JOB_ID": "777", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    scontrol = FakeScontrol("JobId=777 NumNodes=2 AllocTRES=cpu=4,gres/gpu=6")
    assert read_allocation(env, scontrol).gpus_per_node == 3
    assert ["show", "hostnames", "gpu[07-08]"] in scontrol.calls


def test_several_nodes_need_torchrun() -> None:
    allocation = read_allocation({"SLURM_JOB_ID": "777"}, FakeScontrol(
        "NumNodes=2 NodeList=gpu[07-08] TresPerNode=gres:gpu:h100:4"))  # fmt: skip
    assert allocation.gpus_per_node == 4
    with pytest.raises(ValueError, match="2 nodes needs train.launcher: torchrun"):
        stage_processes(stage(gpus=4, nodes=2), "deepspeed", allocation)
    assert stage_processes(stage(gpus=4, nodes=2), "python", allocation).world == 1


@pytest.mark.parametrize(
    "hp, world, accum",
    [
        (stage(gpus=8, batch=16, accum=2), 8, 2),  # as the recipe says
        (stage(gpus=8, batch=16, accum=2), 16, 1),  # 2 nodes x 8
        (stage(gpus=8, batch=16, accum=2), 2, 8),
        (stage(gpus=0, batch=4, accum=2, processes=1), 2, 1),  # CPU: 1 x 4 x 2 = 2 x 4 x 1
        (stage(gpus=0, batch=4, accum=1, processes=2), 1, 2),
    ],
)
def test_grad_accum_keeps_the_global_batch(hp: dict, world: int, accum: int) -> None:
    assert grad_accum_for(hp, world, stage=2) == accum
    assert hp["batch_size"] * accum * world == hp["batch_size"] * hp["grad_accum"] * (
        hp["resources"]["gpus"] * hp["resources"]["nodes"] or hp["processes"]
    )


def test_grad_accum_that_does_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match=r"stage 2: the recipe's global batch 256 .* 3 processes"):
        grad_accum_for(stage(gpus=8), 3, stage=2)
    with pytest.raises(ValueError, match="global batch 32"):  # 16 x 2 x 1 on 4 processes
        grad_accum_for(stage(gpus=1), 4, stage=2)


def test_slurm_resources_of_the_training_job() -> None:
    one = slurm_resources({"gpus": 8, "nodes": 1})
    assert one == {"gpu": 8, "gres": None, "nodes": 1, "mpi": 0, "tasks": None, "tasks_per_gpu": 0}
    two = slurm_resources({"gpus": 8, "nodes": 2})
    assert two == {"gpu": None, "gres": "gpu:8", "nodes": 2, "mpi": "srun", "tasks": 2,
                   "tasks_per_gpu": 0}  # fmt: skip
    assert slurm_resources({"gpus": 0, "nodes": 1})["gpu"] is None


def test_processes_world() -> None:
    assert Processes(nodes=2, per_node=8, source="recipe").world == 16


def test_the_slurm_plugin_turns_them_into_the_intended_sbatch_options() -> None:
    """Checked against the installed plugin: one node gets `--gpus`, several get per-node
    `--gres` and one task per node; never `--ntasks-per-gpu`."""
    submit = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "",
              "partition": "", "workdir": ""}  # fmt: skip
    calls = {}
    for nodes in (1, 2):
        chosen = {k: v for k, v in slurm_resources({"gpus": 8, "nodes": nodes}).items() if v is not None}
        job = SimpleNamespace(resources=Resources(chosen | {"mem_mb": 1000, "runtime": 60}), threads=2)
        calls[nodes] = (submit.get_submit_command(job, params) + set_gres_string(job)).split()
    assert "--gpus=8" in calls[1] and "--nodes=1" in calls[1]
    assert {"--nodes=2", "--ntasks=2", "--gres=gpu:8"} <= set(calls[2])
    assert not any(a.startswith(("--gpus", "--ntasks-per-gpu")) for a in calls[2])
    assert not any(a.startswith("--ntasks-per-gpu") for a in calls[1])


# A child that stands for torchrun: it starts a worker in its own process group and exits 75
# (EXIT_PREEMPTED) once the worker is done; neither passes a signal on. Each writes which
# signal reached it, so a worker that heard SIGUSR1 got it from the launcher's killpg.
CHILD = """
import os, signal, subprocess, sys, time
from pathlib import Path
out, role = Path(sys.argv[1]), sys.argv[2]
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(signal.Signals(s).name))
if role == "torchrun":
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[3], str(out), "worker", ""])
(out / f"{role}.ready").write_text(str(os.getpid()))
deadline = time.monotonic() + 30
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
(out / f"{role}.got").write_text(",".join(got))
sys.exit(worker.wait() or 75 if role == "torchrun" else 0)
"""
LAUNCHER = """
import sys
from ground.train.launch import run_forwarding_signals
child = [sys.executable, "-c", sys.argv[2], sys.argv[1], "torchrun", sys.argv[2]]
sys.exit(run_forwarding_signals(child, sys.stdout))
"""


def start_launcher(tmp_path: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path), CHILD], env=env)
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{r}.ready").is_file() for r in ("torchrun", "worker")):
        assert launcher.poll() is None and time.monotonic() < deadline, "children did not start"
        time.sleep(0.01)
    return launcher


def test_the_launcher_passes_sigusr1_to_its_childs_whole_process_group(tmp_path: Path) -> None:
    launcher = start_launcher(tmp_path)
    child = int((tmp_path / "torchrun.ready").read_text())
    assert os.getpgid(child) == child != os.getpgid(launcher.pid)  # a group of its own
    launcher.send_signal(signal.SIGUSR1)
    assert launcher.wait(timeout=30) == EXIT_PREEMPTED  # the child's code, passed through
    assert (tmp_path / "torchrun.got").read_text() == "SIGUSR1"
    assert (tmp_path / "worker.got").read_text() == "SIGUSR1"  # reached without torchrun's help


def test_a_launcher_killed_outright_takes_its_child_along(tmp_path: Path) -> None:
    launcher = start_launcher(tmp_path)
    child = int((tmp_path / "torchrun.ready").read_text())
    launcher.kill()
    launcher.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the launcher's child outlived it"


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_the_exit_of_a_preempted_stage_reads_as_preempted_not_failed(tmp_path: Path) -> None:
    log = tmp_path / "stage2.log"
    with pytest.raises(RuntimeError, match=r"stage 2 training failed \(exit 1\)"):
        _raise_failure(2, 1, str(tmp_path), log)
    with pytest.raises(StagePreempted, match="stage 2 preempted before its first step"):
        _raise_failure(2, EXIT_PREEMPTED, str(tmp_path), log)
    write_marker(str(tmp_path), Preempted(2, 40, 120, "SIGUSR1"))
    # torchrun exits 1 whatever its workers did: the trainer's marker tells.
    with pytest.raises(StagePreempted, match=r"stage 2 preempted at step 40; will resume \(step 40 "
                       r"of 120 saved on SIGUSR1"):  # fmt: skip
        _raise_failure(2, 1, str(tmp_path), log)
