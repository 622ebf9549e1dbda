"""What a killed `ground run` left behind, and how the next one picks it up.

    found = recover(request, previous_run_id, console)   # in `running.exclusive`, head was dead

Snakemake marks a job's outputs incomplete when it starts the job (with the cluster's job id)
and writes the job's metadata (params, code, inputs), which later runs compare against, when the
head process sees the job finish. When the head dies while cluster jobs run, those jobs go on:
they write their outputs and clear their own marks, but nobody writes their metadata, so a later
change of their params would go unnoticed. The next run first waits for the jobs still in the
scheduler's queue, then adopts those that finished unobserved: a job record (written only once
its outputs are complete) of the interrupted run, whose outputs still have the recorded sha256,
and whose metadata is missing or older than it (or that is still marked incomplete). Adopting
is Snakemake's own `touch` mode on exactly those jobs, which records them as a normal finish
would. Every other incomplete job is rebuilt as before.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ground_cli.workflow import Events, Request, execute
from rich.console import Console
from rich.markup import escape

from ground.tracking.record import find_records, read_job_record, sha256_file
from ground.workflow.persistence import record_path, records

POLL_S = 10.0


@dataclass
class Found:
    """What the interrupted run left: jobs waited for, adopted, and to be rebuilt."""

    waited: list[str] = field(default_factory=list)  # cluster job ids that were still queued
    adopted: list[str] = field(default_factory=list)  # job records taken as finished
    rebuilt: list[str] = field(default_factory=list)  # incomplete outputs that will rerun


def recover(request: Request, previous_run: str, console: Console) -> Found:
    found = Found()
    found.waited = wait_for_cluster_jobs(request.root, console)
    markers = incomplete_markers(request.root)  # after the wait: finished jobs cleared their own
    roots = [request.root / "results", request.root / request.config["download"]["root"]]
    records = [str(p.relative_to(request.root)) for r in roots for p in find_records(r)]
    unrecorded = [p for p in records if p in markers or not _observed(request.root, p)]
    finished = [p for p in unrecorded if finished_record(request.root / p, previous_run)]
    if finished and adopt(request, finished):
        found.adopted = finished
    adopted_dirs = {str(Path(p).parent) for p in found.adopted}
    found.rebuilt = sorted(p for p in markers if str(Path(p).parent) not in adopted_dirs)
    if found.waited or found.adopted or found.rebuilt:
        _say(found, previous_run, console)
    return found


def _observed(root: Path, output: str) -> bool:
    """Whether Snakemake recorded the job that wrote `output` after it wrote it: its metadata
    record (`ground.workflow.persistence`) is newer than the file. A job that
    reran unobserved leaves the previous execution's record, with its params, behind."""
    meta = record_path(root / ".snakemake" / "metadata", output)
    return meta.is_file() and meta.stat().st_mtime >= (root / output).stat().st_mtime


def incomplete_markers(root: Path) -> dict[str, Path]:
    """Output path -> its marker file, of every output Snakemake marked incomplete under `root`."""
    return records(root / ".snakemake" / "incomplete")


def wait_for_cluster_jobs(root: Path, console: Console) -> list[str]:
    """Block while SLURM still has queued or running jobs working in `root` (the plugin submits
    each job with `-D <workflow root>`); returns their ids. No `squeue`: nothing to wait for."""
    if shutil.which("squeue") is None:
        return []
    queued = _queued(root)
    if queued:
        console.print(f"waiting for {len(queued)} cluster job(s) of the interrupted run: {', '.join(queued)}")
    waited = list(queued)
    while queued:
        time.sleep(POLL_S)
        queued = _queued(root)
    return waited


def _queued(root: Path) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--format=%i %Z"], capture_output=True, text=True)
    rows = (line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    return sorted(job for job, workdir in rows if Path(workdir).resolve() == root.resolve())


def finished_record(path: Path, run_id: str) -> bool:
    """The job record at `path` was written by run `run_id` and its outputs are as recorded."""
    if not path.is_file():
        return False
    try:
        _, record = read_job_record(path)
    except (ValueError, TypeError):
        return False
    if record.get("run_id") != run_id:
        return False
    return all(
        Path(a["path"]).is_file() and sha256_file(Path(a["path"])) == a["sha256"]
        for a in record.get("artifacts", [])
    )


def adopt(request: Request, records: list[str]) -> bool:
    """Mark the jobs owning `records` finished (Snakemake's touch mode), only if a dry run shows
    that nothing else would be touched; False leaves them to be rebuilt."""
    plan = Events()
    # forced: a job that finished unobserved looks up to date, but has no metadata yet
    targeted = replace(request, targets=records, until=[], forcerun=records, dryrun=True)
    if not execute(targeted, plan) or not plan.jobs:
        return False
    wanted = set(records)
    if any(not wanted & {str(o) for o in job.output} for job in plan.jobs.values()):
        return False  # another job would be marked done without running: rebuild instead
    return execute(replace(targeted, dryrun=False, touch=True), Events())


def _say(found: Found, previous_run: str, console: Console) -> None:
    lines = [f"run {previous_run} was interrupted; resuming:"]
    if found.waited:
        lines.append(f"  {len(found.waited)} cluster job(s) were still running; waited for them")
    if found.adopted:
        more = len(found.adopted) - 5
        names = ", ".join(found.adopted[:5]) + (f" and {more} more" if more > 0 else "")
        lines.append(f"  {len(found.adopted)} job(s) finished after it stopped and are kept: {names}")
    if found.rebuilt:
        lines.append(f"  {len(found.rebuilt)} incomplete output(s) will be rebuilt")
    console.print(escape("\n".join(lines)), highlight=False)
