"""`ground`: run, inspect and track the GroundingGPT pipeline.

    ground run                          # the demo recipe, end to end
    ground run --until convert --set convert.seed=3
    ground status --json                # what would run and why
    ground runs / ground metrics        # what the DuckDB tracking file holds

This module only parses options, calls the library or Snakemake, and prints.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from ground_cli import evaluation
from ground_cli.bench import bench_app
from ground_cli.data import data_app
from ground_cli.experiments import exp_app
from ground_cli.options import ConfigOpt, ExpOpt, JsonOpt, SetOpt
from ground_cli.output import json_only, print_json
from ground_cli.release import import_app
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ground.common.config import ConfigError, load_config
from ground.workflow.steps import step, until_targets

app = typer.Typer(
    name="ground",
    help="Reproduce GroundingGPT end to end: data, features, training, evaluation, tracked in DuckDB.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

def project_root() -> Path:
    """The folder holding the Snakefile: the current one if it has one, else this checkout."""
    here = Path.cwd()
    if (here / "Snakefile").is_file():
        return here
    return Path(__file__).resolve().parents[1]


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def recipe(config: Path | None, sets: list[str]) -> dict[str, Any]:
    path = config or project_root() / "config.yaml"
    try:
        return load_config(path, sets)
    except ConfigError as err:
        raise fail(str(err)) from None


def rules_of(steps: list[str]) -> list[str]:
    try:
        return [target for name in steps for target in step(name).targets]
    except KeyError as err:
        raise fail(err.args[0]) from None


def until_of(name: str | None, cfg: dict[str, Any]) -> list[str]:
    try:
        return until_targets(name, cfg) if name else []
    except KeyError as err:
        raise fail(err.args[0]) from None


def experiment_root(name: str) -> Path:
    """An experiment's working folder, which must have run (a new one is planned by `run -n`)."""
    from ground.workflow.experiments import workdir

    try:
        root = workdir(project_root(), name)
    except ValueError as err:
        raise fail(str(err)) from None
    if not (root / ".snakemake").is_dir() and root != project_root():
        raise fail(f"experiment {name!r} has not run yet (`ground run --exp {name} -n` plans it)")
    return root


def database(cfg: dict[str, Any]) -> Path:
    return project_root() / cfg["tracking"]["database"]


@app.command()
def run(
    until: Annotated[str | None, typer.Option(help="Stop after this step (download, convert, generate, features, ...).")] = None,
    forcerun: Annotated[list[str], typer.Option(help="Rerun this step and what follows, even if up to date (repeatable).")] = [],
    config: ConfigOpt = None,
    set_: SetOpt = [],
    exp: ExpOpt = "default",
    from_: Annotated[str, typer.Option("--from", help="A new experiment starts from this one's finished outputs.")] = "default",
    sweep: Annotated[str | None, typer.Option(help="key=v1,v2,...: one experiment per value, NAME-value (needs --exp); the first runs, then the others at once, starting from it.")] = None,
    cores: Annotated[int, typer.Option(help="CPU cores Snakemake may use at once.")] = max(1, os.cpu_count() or 1),
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Plan only: list the jobs that would run.")] = False,
    profile: Annotated[Path | None, typer.Option(help="Snakemake profile folder (config.v8+.yaml): profiles/local, profiles/slurm or your own; its keys override --cores. See README, Running on a cluster.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Snakemake's own output.")] = False,
) -> None:
    """Run the pipeline (up to --until), recording the run, its jobs, artifacts and metrics in DuckDB."""
    from ground_cli.experiments import prepare
    from ground_cli.running import RunInProgress, run_pipeline
    from ground_cli.workflow import Request, load_profile

    from ground.workflow.experiments import DEFAULT
    from ground.workflow.experiments import sweep as variants_of

    try:
        load_profile(profile)
        if sweep and exp == DEFAULT:
            raise ValueError("--sweep needs --exp NAME: its experiments are named NAME-value")
        variants = variants_of(exp, sweep) if sweep else [(exp, None)]
    except ValueError as err:
        raise fail(str(err)) from None
    command_line = shlex.join(["ground", *sys.argv[1:]])
    project, failed = project_root(), []
    # A sweep's first experiment runs here; the others then start from it, all at once (below).
    for i, (name, extra) in enumerate(variants if dry_run else variants[:1]):
        sets = [*set_, *([extra] if extra else [])]
        cfg = recipe(config, sets)
        try:
            root = prepare(project, name, from_ if i == 0 else variants[0][0], cfg)
        except ValueError as err:
            raise fail(str(err)) from None
        request = Request(
            root=root, config=cfg, until=until_of(until, cfg), forcerun=rules_of(forcerun), cores=cores,
            dryrun=dry_run, profile=profile, verbose=verbose, project=project,
        )  # fmt: skip
        if len(variants) > 1:
            console.print(f"[bold]experiment {name}[/] ({extra})")
        try:
            if not run_pipeline(request, database(cfg), command_line, console, experiment=name, overrides=sets):
                failed.append(name)
        except RunInProgress as err:
            raise fail(str(err)) from None
    if len(variants) > 1 and not dry_run:
        if failed:
            console.print(f"[bold red]{variants[0][0]} failed[/]: not starting {', '.join(n for n, _ in variants[1:])}")
        else:
            from ground_cli.experiments import run_at_once

            args = [*(["--until", until] if until else []), *(["--config", str(config)] if config else []),
                    *(a for f in forcerun for a in ("--forcerun", f)), *(a for s in set_ for a in ("--set", s)),
                    *(["--profile", str(profile)] if profile else []), *(["-v"] if verbose else [])]  # fmt: skip
            failed = run_at_once(project, variants[1:], variants[0][0], args, cores)
    if failed and len(variants) > 1:
        console.print(f"[bold red]failed experiments:[/] {', '.join(failed)}")
    raise typer.Exit(1 if failed else 0)


@app.command()
def status(
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = [],
    exp: ExpOpt = "default",
    until: Annotated[str | None, typer.Option(help="Only the steps up to this one.")] = None,
) -> None:
    """For every job of every step: up to date, or the reasons it would run."""
    from ground_cli.running import plan_status

    cfg = recipe(config, set_)
    with json_only(json_):
        jobs = plan_status(experiment_root(exp), cfg, until=until_of(until, cfg), project=project_root())
    if json_:
        print_json({"steps": jobs})
        return
    table = Table("step", "job", "state", "reasons")
    for job in jobs:
        state = "[green]up-to-date" if job["state"] == "up-to-date" else "[yellow]will-run"
        reasons = "\n".join(escape(r["detail"]) for r in job["reasons"])
        table.add_row(job["step"], escape(job["job"]), state, reasons)
    Console().print(table)


@app.command()
def runs(
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    limit: int = 20,
    run_id: Annotated[str | None, typer.Option("--run", help="List this run's jobs: where each ran (host, cluster job id).")] = None,
) -> None:
    """List recorded runs, newest first: job counts and the GPT requests/tokens they used."""
    from ground.tracking.queries import list_jobs, list_runs

    if run_id is not None:
        with json_only(json_):
            jobs = list_jobs(database(recipe(config, [])), run_id)
        if not jobs:
            raise fail(f"no jobs recorded for run {run_id!r} (ground runs lists the runs)")
        show(jobs, json_, ["rule", "wildcards", "step", "status", "host", "scheduler_job_id", "started", "finished"])
        return
    with json_only(json_):
        rows = list_runs(database(recipe(config, [])), limit=limit)
    columns = ["id", "status", "started", "finished", "targets", "git_commit", "jobs_ok", "jobs_failed",
               "requests", "tokens_in", "tokens_out"]  # fmt: skip
    show(rows, json_, columns)


@app.command()
def metrics(
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's metrics.")] = None,
    compare: Annotated[tuple[str, str] | None, typer.Option(help="Two runs' (or experiments') scores side by side, with B - A.", metavar="RUN_A RUN_B")] = None,
) -> None:
    """List recorded metrics (benchmark scores next to their baselines, training-loss curves)."""
    from ground.tracking.queries import list_metrics

    db = database(recipe(config, []))
    if compare is not None:
        try:
            with json_only(json_):
                rows = _compare(db, *compare)
        except ValueError as err:
            raise fail(str(err)) from None
        show(rows, json_, ["benchmark", "split", "name", "a", "b", "b - a"])
        return
    with json_only(json_):
        rows = list_metrics(db, run_id=run_id)
    if not json_:
        rows = collapse_curves(rows)
    show(rows, json_, ["run_id", "step", "benchmark", "split", "name", "value"])


def _compare(db: Path, a: str, b: str) -> list[dict]:
    """Two runs' scores, or two experiments' (by name)."""
    from ground.tracking.queries import compare_metrics
    from ground.workflow.experiments import compare_scores, names

    known = names(project_root())
    if a in known and b in known:
        return compare_scores(project_root(), db, a, b)
    return compare_metrics(db, a, b)


def collapse_curves(rows: list[dict]) -> list[dict]:
    """One table row per curve (e.g. a stage's training loss): its last value and its length."""
    out: list[dict] = []
    curves: dict[tuple, dict] = {}
    for row in rows:
        if row.get("at_step") is None:
            out.append(row)
            continue
        key = (row["run_id"], row["job_id"], row["name"], row["benchmark"], row["split"])
        if key not in curves:
            curves[key] = dict(row, first=row["value"], points=0)
            out.append(curves[key])
        curve = curves[key]
        curve["points"] += 1
        curve["value"] = row["value"]
        curve["name"] = f"{row['name']} (last of {curve['points']} steps, first {curve['first']:.4g})"
    return out


app.command("eval")(evaluation.eval_command)
app.command("report")(evaluation.report_command)
app.add_typer(data_app, name="data")
app.add_typer(import_app, name="import")
app.add_typer(exp_app, name="exp")
app.add_typer(bench_app, name="bench")

def show(rows: list[dict], as_json: bool, columns: list[str]) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(escape(cell(row.get(c))) for c in columns))
    Console().print(table)


def cell(value: Any) -> str:
    """Table text for a database value: seconds-precision times, short commits, no None."""
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str) and value.startswith("["):
        try:
            return ", ".join(map(str, json.loads(value)))
        except json.JSONDecodeError:
            return value
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return value[:12] if isinstance(value, str) and len(value) == 40 else str(value)


if __name__ == "__main__":
    app()
