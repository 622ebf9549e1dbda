"""A killed `ground run` resumes: the next run releases Snakemake's stale locks, marks the killed
run `interrupted` in the database, rebuilds incomplete outputs and finishes. Real processes,
real SIGKILL, nothing stubbed."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from ground_cli.recovery import incomplete_markers

TINY = ["--set", "download.demo.splits={train: 4, val: 1, test: 1}", "--set", "download.models.vocab_size=300",
        "--set", "download.models.pretrain={image_encoder: 4, frame_encoder: 4, audio_encoder: 4, llm: 4}"]
pytestmark = pytest.mark.e2e


def test_killed_run_resumes_and_is_recorded_as_interrupted(tmp_path, copy_project):
    copy_project(tmp_path)
    cmd = [sys.executable, "-m", "ground_cli.main", "run", "--until", "features", *TINY]
    env = os.environ | {"PYTHONPATH": str(tmp_path / "src")}
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    marker = tmp_path / "resources/demo/download.job.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the first run ended before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)  # the CLI and every job it started
    first.wait()
    assert (tmp_path / ".snakemake/ground-run.json").exists()

    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "was interrupted; resuming" in second.stderr
    assert (tmp_path / "results/features/video.index.jsonl").is_file()
    con = duckdb.connect(str(tmp_path / "results/ground.duckdb"), read_only=True)
    statuses = [s for (s,) in con.execute("select status from runs order by started").fetchall()]
    assert statuses == ["interrupted", "ok"]
    (download_jobs,) = con.execute("select count(*) from jobs where rule = 'download_data'").fetchone()
    assert download_jobs == 1  # finished before the kill: not redone


def _mark_incomplete(root, outputs: list[str], job_id: str | None = None) -> None:
    """What Snakemake writes when it starts a job (`.snakemake/incomplete/<b64 of the path>`):
    a head process killed while a cluster job ran leaves these behind although the job finished."""
    for output in outputs:
        name = base64.urlsafe_b64encode(output.encode()).decode()
        marker = root / ".snakemake" / "incomplete" / name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"external_jobid": job_id}))


def _dead_head(root, run_id: str) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    (root / ".snakemake" / "ground-run.json").write_text(json.dumps({"pid": gone.pid, "run_id": run_id}))


def test_a_job_that_finished_after_the_head_died_is_kept_not_rerun(tmp_path, copy_project):
    """The killed head's markers say `download_data` is incomplete, but its record is complete and
    its outputs match: the next run keeps it (and records it for Snakemake) instead of rerunning.
    A changed output makes the same record untrustworthy: then the job reruns."""
    copy_project(tmp_path)
    cmd = [sys.executable, "-m", "ground_cli.main", "run", "--until", "download", *TINY]
    env = os.environ | {"PYTHONPATH": str(tmp_path / "src")}
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    record = tmp_path / "resources/demo/download.job.json"
    before = record.read_bytes()
    run_id = json.loads(before)["run_id"]
    outputs = ["resources/demo/download.job.json", "resources/demo/media"]

    _mark_incomplete(tmp_path, outputs, job_id="777")
    _dead_head(tmp_path, run_id)
    kept = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert kept.returncode == 0, kept.stderr
    assert "1 job(s) finished after it stopped and are kept" in kept.stderr
    assert "0 job(s) ran" in kept.stderr and record.read_bytes() == before
    assert incomplete_markers(tmp_path) == {}  # Snakemake recorded it as finished

    raw = next((tmp_path / "resources/demo/raw/demo_image").glob("*.jsonl"))
    raw.write_text(raw.read_text() + "\n")  # no longer what the record says the job wrote
    _mark_incomplete(tmp_path, outputs)
    _dead_head(tmp_path, run_id)
    rebuilt = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "will be rebuilt" in rebuilt.stderr and "1 job(s) ran" in rebuilt.stderr
    assert json.loads(record.read_bytes())["run_id"] != run_id
