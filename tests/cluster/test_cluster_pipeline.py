"""The demo pipeline on a live SLURM (tests/cluster/slurm.sh), driven by `ground run --profile`.

    sudo .venv/bin/pytest -q tests/cluster/test_cluster_pipeline.py

Real slurmctld + slurmd, real sbatch/squeue/scancel, the shipped `profiles/slurm`, nothing
stubbed. One small corpus runs through evaluation with 2 feature shards per modality and stage 2
as 2 processes; then a rerun, a stage-2 change, a SIGTERM to stage 2's SLURM job, a SIGKILL of
the head process and 3 added videos are each checked by the SLURM jobs they submit (`squeue -t all` keeps finished
jobs for MinJobAge = 900 s, longer than this module runs).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slurm
SETS = [
    "download.demo.splits={train: 6, val: 2, test: 2}",
    "download.models.vocab_size=400",
    "download.models.pretrain={image_encoder: 4, frame_encoder: 4, audio_encoder: 4, llm: 4}",
    "features.shards=2",
    "train.launcher=torchrun",
    "train.stage2.processes=2",
    "eval.limit=8",
]
STAGE2, STAGE3 = "rule_train_stage_wildcards_2", "rule_train_stage_wildcards_3"
# A longer stage 2 without periodic checkpoints: the only one it can resume from is written on
# the signal.
LONG_STAGE2 = ["--set", "train.stage2.lr=4.0e-4", "--set", "train.stage2.epochs=12",
               "--set", "train.stage2.save_every=1000"]  # fmt: skip
EVALS = {f"rule_evaluate_benchmark_wildcards_{b}" for b in ("demo_rec", "demo_tg", "demo_sl")}


def command(*extra: str) -> list[str]:
    sets = [x for s in SETS for x in ("--set", s)]
    return [sys.executable, "-m", "ground_cli.main", "run", "--profile", "profiles/slurm", *sets, *extra]


def ground_run(project: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(*extra), cwd=project, env=_env(project), capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, f"ground run failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _env(project: Path) -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(project / "src"), "COLUMNS": "200"}


def slurm_jobs(project: Path) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (comment, state) of every job, queued or finished, run in `project`."""
    out = subprocess.run(["squeue", "-a", "-t", "all", "-h", "-o", "%i|%k|%T|%Z"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    jobs = {}
    for line in out.splitlines():
        job, comment, state, workdir = line.split("|")
        if Path(workdir) == project:
            jobs[job] = (comment, state)
    return jobs


def wait_for(what: str, ready, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


@pytest.fixture(scope="module")
def project(slurm, tmp_path_factory, copy_project) -> Path:
    # a folder no earlier session used: jobs are told apart by their work dir, and squeue keeps
    # finished ones for 15 minutes
    root = tmp_path_factory.mktemp("cluster") / uuid.uuid4().hex[:8]
    root.mkdir()
    copy_project(root)
    ground_run(root)
    return root


def test_every_job_is_one_slurm_job_and_the_run_store_knows_its_id(project):
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    rows = con.execute("select rule, wildcards, scheduler_job_id from jobs").fetchall()
    local = {"split_media", "gather_features"}  # localrules: they run in the head process
    submitted = [r for r in rows if r[0] not in local]
    assert {r[0] for r in submitted} >= {"download_data", "convert_dataset", "cache_features",
                                         "train_stage", "evaluate_benchmark"}  # fmt: skip
    ids = [r[2] for r in submitted]
    assert all(ids) and len(set(ids)) == len(ids)
    assert set(ids) == set(slurm_jobs(project))  # one SLURM job per Snakemake job, no more
    shards = [json.loads(w) for rule, w, _ in rows if rule == "cache_features"]
    for modality in ("image", "video", "audio"):
        assert len([w for w in shards if w["modality"] == modality]) >= 2
    assert "--nproc-per-node=2" in (project / "logs/train/stage2.log").read_text()


def test_a_second_run_submits_nothing(project):
    before = set(slurm_jobs(project))
    proc = ground_run(project)
    assert "0 job(s) ran" in proc.stderr
    assert set(slurm_jobs(project)) == before


def test_a_stage2_change_submits_stage2_stage3_and_evaluation_only(project):
    before = set(slurm_jobs(project))
    ground_run(project, "--set", "train.stage2.lr=5.0e-4")
    new = {comment for job, (comment, _) in slurm_jobs(project).items() if job not in before}
    assert new == {STAGE2, STAGE3} | EVALS


def test_sigterm_to_stage2_checkpoints_retries_and_resumes(project):
    """`scancel --signal=TERM --full` as SLURM does before a time limit or on preemption."""
    before = set(slurm_jobs(project))
    extra = LONG_STAGE2
    log = project / "logs/train/stage2.log"
    log.unlink()  # the last run's: only this run's first attempt may satisfy `training`
    head = subprocess.Popen(command(*extra), cwd=project, env=_env(project), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def running_stage2() -> str | None:
        jobs = slurm_jobs(project).items()
        return next((j for j, (c, s) in jobs if j not in before and c == STAGE2 and s == "RUNNING"), None)

    def training() -> bool:  # a few optimizer steps done by the first attempt
        text = log.read_text() if log.exists() else ""
        return bool(running_stage2()) and "stage 2 step 3/" in text

    wait_for("stage 2 training on SLURM", training)
    subprocess.run(["scancel", "--signal=TERM", "--full", running_stage2()], check=True)
    output, _ = head.communicate(timeout=1800)
    assert head.returncode == 0, output
    # Snakemake empties the log before the retry: what remains is the resumed attempt's
    resumed = re.search(r"resumed from step (\d+) of (\d+)", log.read_text())
    assert resumed, log.read_text()
    attempts = {j: s for j, (c, s) in slurm_jobs(project).items() if j not in before and c == STAGE2}
    assert len(attempts) == 2 and list(attempts.values()).count("COMPLETED") == 1  # preempted, retried
    summary = json.loads((project / "results/train/stage2/train.job.json").read_text())["notes"]["summary"]
    losses = [json.loads(x) for x in (project / "results/train/stage2/losses.jsonl").read_text().splitlines()]
    assert summary["resumed_from"] >= 3  # the checkpoint written on SIGTERM, after step 3
    assert (int(resumed[1]), int(resumed[2])) == (summary["resumed_from"], summary["steps"])
    assert [e["step"] for e in losses] == list(range(1, summary["steps"] + 1))


def test_a_killed_head_process_is_resumed_without_running_a_finished_job_twice(project):
    before = set(slurm_jobs(project))
    extra = [*LONG_STAGE2, "--set", "train.stage3.lr=2.0e-4"]  # stage 2 as the last test left it
    head = subprocess.Popen(command(*extra), cwd=project, env=_env(project),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def stage3(state: str | None = None) -> list[str]:
        jobs = slurm_jobs(project).items()
        return [j for j, (c, s) in jobs if j not in before and c == STAGE3 and state in (None, s)]

    wait_for("stage 3 running on SLURM", lambda: bool(stage3("RUNNING")))
    head.send_signal(signal.SIGKILL)  # the head only: its SLURM job goes on
    head.wait()
    wait_for("stage 3's SLURM job to end", lambda: not stage3("RUNNING") and not stage3("PENDING"))
    assert [slurm_jobs(project)[j][1] for j in stage3()] == ["COMPLETED"]
    record = (project / "results/train/stage3/train.job.json").read_bytes()

    proc = ground_run(project, *extra)
    assert "finished after it stopped and are kept" in proc.stderr
    assert len(stage3()) == 1  # not submitted again
    assert (project / "results/train/stage3/train.job.json").read_bytes() == record
    new = {c for j, (c, _) in slurm_jobs(project).items() if j not in before}
    assert new == {STAGE3} | EVALS


def test_three_added_videos_resubmit_only_the_shard_that_holds_them(project):
    """Three new videos (other frames, so the content-addressed store has none of them) added to
    the converted data, all in shard 1: of the feature step, only that shard's job is submitted
    and it encodes exactly those 3 (split and gather run in the head process)."""
    from added_media import add_to_shard

    from ground.common.media import ffmpeg_exe

    def reencode(source: Path, target: Path, i: int) -> None:
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), "-vf",
                        f"hue=h={60 * (i + 1)}", str(target)], check=True)  # fmt: skip

    before = set(slurm_jobs(project))
    add_to_shard(project, project / "results/convert/demo_video/test.jsonl", "video", 1, 3, reencode)
    ground_run(project, "--until", "features")
    new = {comment for job, (comment, _) in slurm_jobs(project).items() if job not in before}
    assert new == {"rule_cache_features_wildcards_video_1"}
    record = json.loads((project / "results/features/video/shard1.job.json").read_text())
    assert record["notes"]["summary"]["encoded"] == 3
