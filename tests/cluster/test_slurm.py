"""Jobs through a real (single-node) SLURM: plain sbatch, and a workflow with profiles/slurm.

    sudo .venv/bin/pytest -q tests/cluster -m slurm
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from ground_cli.workflow import Events, Request, execute

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]

SNAKEFILE = """
localrules: all

rule all:
    input: "b.txt"

# Each job writes the SLURM job it ran in.
rule make_a:
    output: "a.txt"
    resources: mem_mb=200, runtime=5
    shell: "echo $SLURM_JOB_ID > {output}"

rule make_b:
    input: "a.txt"
    output: "b.txt"
    resources: mem_mb=200, runtime=5
    shell: "cat {input} > {output}; echo $SLURM_JOB_ID >> {output}"
"""


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout


def test_sbatch_wrap_job_finishes(slurm, tmp_path):
    out = tmp_path / "out.txt"
    job = sh("sbatch", "--parsable", "-c", "1", "--mem", "100", "-t", "2", "-o", str(out),
             "--wrap", "echo hello from $SLURM_JOB_ID").strip()  # fmt: skip
    # The node may be busy with other jobs (it is shared, 2 CPUs here): allow time to queue.
    for _ in range(300):
        state = sh("scontrol", "show", "job", job)
        if "JobState=COMPLETED" in state:
            break
        assert not re.search(r"JobState=(FAILED|CANCELLED|TIMEOUT|NODE_FAIL)", state), state
        time.sleep(1)
    else:
        pytest.fail(f"job {job} did not complete in 300 s:\n{state}")
    assert out.read_text().strip() == f"hello from {job}"


def test_workflow_runs_as_slurm_jobs_with_the_shipped_profile(slurm, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    events = Events()
    request = Request(root=tmp_path, config={}, profile=REPO / "profiles" / "slurm")
    assert execute(request, events), events.errors
    assert sorted(events.jobs[j].rule for j in events.finished) == ["all", "make_a", "make_b"]
    job_a = (tmp_path / "a.txt").read_text().split()
    job_b = (tmp_path / "b.txt").read_text().split()
    assert job_b[0] == job_a[0] and job_b[1] != job_a[0]  # two jobs, each inside SLURM
    for job, rule in ((job_a[0], "make_a"), (job_b[1], "make_b")):
        record = sh("scontrol", "show", "job", job)  # finished jobs stay listed (MinJobAge=900)
        assert "JobState=COMPLETED" in record, record
        assert f"Comment=rule_{rule}" in record and f"WorkDir={tmp_path}" in record, record
    logs = sorted(p.parent.name for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert logs == ["rule_make_a", "rule_make_b"] or not logs  # successful jobs' logs may be deleted
