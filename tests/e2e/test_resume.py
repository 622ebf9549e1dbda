"""A killed `ground run` resumes: the next run releases Snakemake's stale locks, marks the killed
run `interrupted` in the database, rebuilds incomplete outputs and finishes. Real processes,
real SIGKILL, nothing stubbed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

TINY = ["--set", "download.demo.splits={train: 4, val: 1, test: 1}", "--set", "download.models.vocab_size=300"]
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
