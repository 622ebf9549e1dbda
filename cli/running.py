"""`ground run` and `ground status`: Snakemake executions wrapped with tracking and progress."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ground_cli.workflow import Events, Job, Request, execute
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ground.tracking.record import find_records
from ground.workflow import inputs
from ground.workflow.plan import explain
from ground.workflow.steps import STEPS, step, step_code, step_config, step_of_rule


def run_pipeline(
    request: Request, db: Path, command_line: str, console: Console,
    experiment: str = "default", overrides: Sequence[str] = (),
) -> bool:  # fmt: skip
    """Execute with a progress bar; record the run in the database unless it is a dry run."""
    if request.dryrun:
        return dry_run(_with_changed_inputs(request, console), console)
    # DuckDB (here and in recovery) loads for runs only: `ground status` never opens the store.
    from ground.tracking import db as tracking

    run_id = tracking.start_run(
        db, config=request.config, targets=request.until or ["all"],
        command_line=command_line, workdir=request.project or request.root,
        experiment=experiment, overrides=list(overrides),
    )  # fmt: skip
    os.environ["GROUND_RUN_ID"] = run_id
    console.print(f"run [bold]{run_id}[/] -> {db}", soft_wrap=True)
    with exclusive(request, db, run_id, console):
        try:
            events, ok = _execute_with_progress(_with_changed_inputs(request, console), console)
        except KeyboardInterrupt:
            tracking.finish_run(db, run_id, "interrupted")
            raise
        ingested = _ingest(db, run_id, request, events)
        tracking.finish_run(db, run_id, "ok" if ok else "failed")
    _report(events, ok, ingested, console)
    return ok


class RunInProgress(RuntimeError):
    """Another live `ground run` holds this project folder."""


@contextlib.contextmanager
def exclusive(request: Request, db: Path, run_id: str, console: Console) -> Iterator[None]:
    """One `ground run` per project folder; a run that was killed is cleaned up so this resumes.

    A killed Snakemake leaves its locks behind (and our run row says `running`); they are
    released only when the process that wrote our marker is gone. Its cluster jobs may still be
    running, or have finished since: `recovery.recover` waits for the ones and keeps the others.
    """
    from ground_cli.recovery import recover

    from ground.tracking import db as tracking

    root = request.root
    marker = root / ".snakemake" / "ground-run.json"
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if previous["pid"] != os.getpid() and _alive(previous["pid"]):
            tracking.finish_run(db, run_id, "refused")
            raise RunInProgress(f"run {previous['run_id']} (pid {previous['pid']}) is still running in {root}")
        shutil.rmtree(root / ".snakemake" / "locks", ignore_errors=True)
        with contextlib.suppress(KeyError):
            tracking.finish_run(db, previous["run_id"], "interrupted")
        found = recover(request, previous["run_id"], console)
        if not (found.waited or found.adopted or found.rebuilt):
            console.print(f"run {previous['run_id']} was interrupted; resuming")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"pid": os.getpid(), "run_id": run_id}))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobsProgress(Progress):
    """The job counter and, under it, each running job's newest log line: a training stage's
    step / total, loss, tokens/s and ETA, an evaluation's or a feature job's progress bar."""

    def __init__(self, *columns: Any, root: Path, **options: Any) -> None:
        self.root, self.events = root, Events()  # first: rich renders while it starts
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterator[Any]:
        yield self.make_tasks_table(self.tasks)
        lines = running_lines(self.events, self.root)
        if lines:
            yield Text("\n".join(lines), no_wrap=True, overflow="ellipsis")


def running_lines(events: Events, root: Path) -> list[str]:
    """`  rule[wildcards]: newest log line` for each running job that has written one."""
    jobs = [events.jobs[j] for j in list(events.running) if j in events.jobs]
    lines = []
    for job in sorted(jobs, key=_label):
        newest = last_line(root / job.log[0]) if job.log else ""
        if newest:
            lines.append(f"  {_label(job)}: {newest}")
    return lines


def last_line(path: Path, size: int = 4096) -> str:
    """The newest non-blank line of a log; progress bars rewrite theirs after a carriage return."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - size))
            tail = log.read().decode(errors="replace")
    except OSError:
        return ""
    parts = [part.strip() for part in tail.replace("\r", "\n").splitlines()]
    return next((part for part in reversed(parts) if part), "")


def _execute_with_progress(request: Request, console: Console) -> tuple[Events, bool]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with JobsProgress(*columns, root=request.root, console=console, transient=False,
                      refresh_per_second=4) as progress:  # fmt: skip
        task = progress.add_task("starting", total=None)

        def update(events: Events) -> None:
            running = sorted({_label(events.jobs[j]) for j in events.running if j in events.jobs})
            text = escape(", ".join(running)) if running else "waiting"
            progress.update(task, total=events.total or None, completed=len(events.finished),
                            description=f"running: {text}" if running else text)  # fmt: skip

        events = progress.events = Events(on_change=update)
        ok = execute(request, events)
        done = len(events.finished)
        if ok:  # `all` is counted in the total but never runs under --until
            text = "done" if done else "nothing to do: every requested output is up to date"
            progress.update(task, total=done, completed=done, description=text)
        else:
            progress.update(task, description="[red]failed")
    return events, ok


def _record_roots(request: Request) -> list[Path]:
    """Where the jobs of a run leave their records."""
    return [request.root / "results", request.root / request.config["download"]["root"]]


def changed_inputs(request: Request, every: list[Job] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Output (a job record) -> changed input files, of the planned jobs whose inputs changed
    since they ran (`ground.workflow.inputs`); `every` is every job of the plan, if known."""
    moved = inputs.changed_jobs(_record_roots(request))
    if not moved:  # the usual case: no second DAG build
        return {}
    if every is None:
        every = _plan(request).every
    # a record of a job outside this plan (beyond --until, or of a dataset no longer in the
    # recipe) is not forced: Snakemake would make it a target
    planned = {str(request.root / out): out for job in every for out in job.output}
    return {planned[record]: moved[record] for record in moved if record in planned}


def _with_changed_inputs(request: Request, console: Console) -> Request:
    """The request, with the jobs whose inputs changed since they ran forced (and named)."""
    changed = changed_inputs(request)
    if not changed:
        return request
    console.print(f"inputs changed since their jobs ran ({len(changed)} job(s)):")
    for record, moved in sorted(changed.items()):
        for reason in inputs.reasons(moved):
            console.print(f"  {escape(record)}: {escape(reason['detail'])}", highlight=False)
    return dataclasses.replace(request, forcerun=[*request.forcerun, *changed])


def _plan(request: Request, forcerun: Sequence[str] = ()) -> Events:
    """A dry run: `jobs` are those that would run, `every` every job of the DAG."""
    events = Events()
    plan = dataclasses.replace(request, dryrun=True, forcerun=[*request.forcerun, *forcerun])
    if not execute(plan, events):
        raise RuntimeError("; ".join(events.errors) or "snakemake could not plan the DAG")
    return events


def _ingest(db: Path, run_id: str, request: Request, events: Events) -> int:
    from ground.tracking import db as tracking

    records = [r for root in _record_roots(request) for r in find_records(root)]
    try:
        count = tracking.ingest_records(db, run_id, records, step_of=step_of_rule)
    except tracking.RecordError as err:  # the readable ones are in; name the others, go on
        count = err.ingested
        events.errors += [f"job record {path} not ingested: {reason}" for path, reason in err.errors]
    for jobid in events.failed:
        job = events.jobs.get(jobid)
        if job:
            tracking.record_failure(
                db, run_id, rule=job.rule, wildcards=job.wildcards,
                log_path=job.log[0] if job.log else None, step=step_of_rule(job.rule, job.wildcards),
            )  # fmt: skip
    return count


def _report(events: Events, ok: bool, ingested: int, console: Console) -> None:
    for jobid in sorted(events.failed):
        job = events.jobs.get(jobid)
        if job is None:
            continue
        console.print(f"[bold red]failed:[/] {escape(_label(job))}  log: {escape(', '.join(job.log) or '-')}")
        for log in job.log:
            if Path(log).is_file():
                for line in deque(Path(log).read_text(errors="replace").splitlines(), maxlen=12):
                    console.print(f"  {line}", highlight=False, markup=False)
    for error in events.errors:
        console.print(f"[red]{escape(error.strip())}[/]", highlight=False, soft_wrap=True)
    done = len(events.finished)
    verdict = "[green]done[/]" if ok else "[bold red]failed[/]"
    console.print(f"{verdict}: {done} job(s) ran, {ingested} job record(s) added to the database")


def dry_run(request: Request, console: Console) -> bool:
    events = Events()
    ok = execute(request, events)
    for job in sorted(events.jobs.values(), key=lambda j: j.jobid):
        console.print(f"would run {_label(job)}: {job.reason}", highlight=False, markup=False)
    if not events.jobs and ok:
        console.print("nothing to do: every requested output is up to date")
    for error in events.errors:
        console.print(f"[red]{escape(error.strip())}[/]", highlight=False, soft_wrap=True)
    return ok


def plan_status(
    root: Path, config: dict[str, Any], until: list[str] = (), project: Path | None = None
) -> list[dict[str, Any]]:
    """One entry per job of the DAG (up to `until`) in the working folder `root` (an experiment's;
    `project` holds the code): up to date, or will run with the reasons."""
    request = Request(root=root, config=config, until=list(until), project=project)
    plan = _plan(request)  # one DAG build, unless files changed in place
    changed = changed_inputs(request, plan.every)
    if changed:
        plan = _plan(request, forcerun=list(changed))
    will_run = {_label(j): j for j in plan.jobs.values()}
    order = {s.name: i for i, s in enumerate(STEPS)}
    params: dict[str, dict[str, Any]] = {}  # per step, not per job: a step's jobs share them
    entries = []
    for job in plan.every:
        name = step_of_rule(job.rule, job.wildcards)
        if name is None:  # the `all` target
            continue
        label = _label(job)
        entry = {"step": name, "job": label, "rule": job.rule, "wildcards": job.wildcards}
        if label in will_run:
            if name not in params:
                params[name] = _current_params(project or root, config, name)
            reasons = explain(will_run[label].reason, will_run[label].output, params[name], step(name).section)
            moved = [m for out in job.output for m in changed.get(out, [])]
            if moved:  # forced by us: the files say why, not "Forced execution"
                reasons = inputs.reasons(moved) + [r for r in reasons if r["kind"] != "forced"]
            entries.append(entry | {"state": "will-run", "reasons": reasons})
        else:
            entries.append(entry | {"state": "up-to-date", "reasons": []})
    return sorted(entries, key=lambda e: (order[e["step"]], e["job"]))


def _current_params(root: Path, config: dict[str, Any], name: str) -> dict[str, Any]:
    return {"cfg": step_config(config, name), "code": step_code(step(name), root)}


def _label(job: Any) -> str:
    wildcards = ",".join(f"{k}={v}" for k, v in sorted(job.wildcards.items()))
    return f"{job.rule}[{wildcards}]" if wildcards else job.rule
