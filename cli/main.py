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
from ground_cli.data import data_app
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

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Recipe file (default: the demo recipe, config.yaml).")
]
SetOpt = Annotated[
    list[str],
    typer.Option("--set", "-s", help="Override a recipe key: dotted.key=value (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


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


def database(cfg: dict[str, Any]) -> Path:
    return project_root() / cfg["tracking"]["database"]


@app.command()
def run(
    until: Annotated[str | None, typer.Option(help="Stop after this step (download, convert, generate, features, ...).")] = None,
    forcerun: Annotated[list[str], typer.Option(help="Rerun this step and what follows, even if up to date (repeatable).")] = [],
    config: ConfigOpt = None,
    set_: SetOpt = [],
    cores: Annotated[int, typer.Option(help="CPU cores Snakemake may use at once.")] = max(1, os.cpu_count() or 1),
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Plan only: list the jobs that would run.")] = False,
    profile: Annotated[Path | None, typer.Option(help="Snakemake profile folder (config.v8+.yaml): profiles/local, profiles/slurm or your own; its keys override --cores. See README, Running on a cluster.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Snakemake's own output.")] = False,
) -> None:
    """Run the pipeline (up to --until), recording the run, its jobs, artifacts and metrics in DuckDB."""
    from ground_cli.running import RunInProgress, run_pipeline
    from ground_cli.workflow import Request, load_profile

    cfg = recipe(config, set_)
    try:
        load_profile(profile)
    except ValueError as err:
        raise fail(str(err)) from None
    request = Request(
        root=project_root(), config=cfg, until=until_of(until, cfg),
        forcerun=rules_of(forcerun), cores=cores, dryrun=dry_run, profile=profile, verbose=verbose,
    )  # fmt: skip
    command_line = shlex.join(["ground", *sys.argv[1:]])
    try:
        ok = run_pipeline(request, database(cfg), command_line, console)
    except RunInProgress as err:
        raise fail(str(err)) from None
    raise typer.Exit(0 if ok else 1)


@app.command()
def status(
    json_: JsonOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = [],
    until: Annotated[str | None, typer.Option(help="Only the steps up to this one.")] = None,
) -> None:
    """For every job of every step: up to date, or the reasons it would run."""
    from ground_cli.running import plan_status

    cfg = recipe(config, set_)
    with json_only(json_):
        jobs = plan_status(project_root(), cfg, until=until_of(until, cfg))
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
    compare: Annotated[tuple[str, str] | None, typer.Option(help="Two runs' scores side by side, with B - A.", metavar="RUN_A RUN_B")] = None,
) -> None:
    """List recorded metrics (benchmark scores next to their baselines, training-loss curves)."""
    from ground.tracking.queries import list_metrics

    db = database(recipe(config, []))
    if compare is not None:
        from ground.tracking.queries import compare_metrics

        try:
            with json_only(json_):
                rows = compare_metrics(db, *compare)
        except ValueError as err:
            raise fail(str(err)) from None
        show(rows, json_, ["benchmark", "split", "name", "a", "b", "b - a"])
        return
    with json_only(json_):
        rows = list_metrics(db, run_id=run_id)
    if not json_:
        rows = collapse_curves(rows)
    show(rows, json_, ["run_id", "step", "benchmark", "split", "name", "value"])


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

bench_app = typer.Typer(help="Benchmarks that print ratios measured side by side in one run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("features")
def bench_features(
    videos: Annotated[int, typer.Option(help="Test videos to generate (ffmpeg testsrc2, 320x240, 25 fps).")] = 4,
    seconds: Annotated[float, typer.Option(help="Length of each test video.")] = 60.0,
    gop: Annotated[int, typer.Option(help="Keyframe interval of the test videos (x264's default: 250).")] = 250,
    frames: Annotated[int, typer.Option(help="Frames sampled uniformly per video.")] = 8,
    size: Annotated[int, typer.Option(help="Frame size (px).")] = 224,
    out: Annotated[Path, typer.Option(help="Where the test videos are written (reused).")] = Path("benchmarks/out/videos"),
    json_: JsonOpt = False,
) -> None:
    """Uniform frame sampling by seeking vs decoding every frame, same videos, one run."""
    from ground.features.bench import bench_video_decoding, make_bench_videos

    with json_only(json_):
        paths = make_bench_videos(out, count=videos, seconds=seconds, fps=25, gop=gop)
        result = bench_video_decoding(paths, num_frames=frames, size=size)
    if json_:
        print_json(result)
        return
    base = result["methods"]["decode_all"]["seconds"]
    bench_table(f"{videos} videos x {seconds:g} s, GOP {gop}, {frames} frames each", result["methods"], {
        "method": None, "frames": "{frames}", "seconds": "{seconds:.2f}", "frames/s": "{frames_per_s:.1f}",
        "speed vs decode_all": lambda row: f"{base / row['seconds']:.2f}x", "max pixel diff": "{max_abs_diff}",
    })  # fmt: skip


@bench_app.command("train")
def bench_train(
    size: Annotated[str, typer.Option(help="demo (tiny random models, CPU) | 7b (the paper's shapes, random bf16 weights, a GPU).")] = "demo",
    steps: Annotated[int, typer.Option(help="Timed optimizer steps per mode.")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed optimizer steps before each mode's timed ones.")] = 2,
    batch: Annotated[int, typer.Option(help="Samples per step (cycling image REC, video, sound+image, text+image).")] = 4,
    stage: Annotated[int, typer.Option(help="Trainable set: 1 (adapters) or 2/3 (LLM + adapters).")] = 2,
    llm_layers: Annotated[int | None, typer.Option(help="LLM decoder layers (default: the size's; fewer fit a stage-2 7B step on one GPU).")] = None,
    mixture: Annotated[bool, typer.Option("--mixture", help="Instead: this finished project's real stage mixture, padded vs packed rows (--stage, --steps, --warmup; the recipe from --config/--set).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = [],
    json_: JsonOpt = False,
) -> None:
    """Training step on cached features vs frozen encoders on the fly, same batch and engine, one run."""
    if mixture:
        return _bench_mixture(recipe(config, set_), stage, steps, warmup, json_)
    from ground.train.bench import SIZES, bench_training

    if size not in SIZES:
        raise fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    with json_only(json_):  # DeepSpeed's accelerator warning, its logs and JIT builds
        result = bench_training(size=size, steps=steps, warmup=warmup, batch=batch, stage=stage, llm_layers=llm_layers)
    if json_:
        print_json(result)
        return
    title = (f"{size} ({result['llm_layers']} LLM layers), stage {stage}, {result['device']}, batch {batch} "
             f"({result['tokens_per_step']} tokens), median of {steps} steps after {warmup}")  # fmt: skip
    bench_table(title, result["modes"], {
        "mode": None, "s/step": "{seconds_per_step:.3f}", "tokens/s": "{tokens_per_s:.0f}",
        "peak memory GiB": lambda row: "-" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f}",
        "MFU": lambda row: "-" if row["mfu"] is None else f"{row['mfu']:.1%}", "encoder calls": "{encoder_calls}",
    })  # fmt: skip
    Console().print(f"on the fly / cached step time: [bold]{result['ratio']:.2f}x[/]")


def _bench_mixture(cfg: dict[str, Any], stage: int, steps: int, warmup: int, json_: bool) -> None:
    from ground.train.throughput import bench_mixture

    with json_only(json_):
        result = bench_mixture(project_root(), cfg, stage=stage, steps=steps, warmup=warmup)
    if json_:
        print_json(result)
        return
    title = (f"stage {stage} mixture ({result['samples']} samples), batch {result['batch_size']} x accumulation "
             f"{result['grad_accum']}, max_length {result['max_length']}, {result['device']}, {steps} steps after {warmup}")  # fmt: skip
    bench_table(title, result["modes"], {
        "rows": None, "s/step": "{seconds_per_step:.3f}", "tokens/s": "{tokens_per_s:.0f}",
        "padding": "{padding_share:.1%}", "rows per micro batch": "{rows_per_micro_batch:.1f}",
        "data wait s/step": "{data_wait_per_step_s:.4f}",
    })  # fmt: skip
    Console().print(f"packed / padded tokens/s: [bold]{result['speedup']:.2f}x[/]")


@bench_app.command("cli")
def bench_cli(
    runs: Annotated[int, typer.Option(help="Timed runs of each command (after the warm-up).")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed runs of each command first.")] = 1,
    project: Annotated[Path | None, typer.Option(help="Project folder to run them in (default: this one); a finished run makes `ground run` a no-op.")] = None,
    set_: SetOpt = [],
    json_: JsonOpt = False,
) -> None:
    """Start-up: `ground --help`, `ground status` and `ground run` as whole processes, min and median.

    On a finished project `ground run` has nothing to do (each timed run still records a run).
    """
    from ground.workflow.bench import bench_commands, cli_commands

    root = (project or project_root()).resolve()
    try:
        with json_only(json_):
            result = bench_commands(cli_commands(set_), root, runs=runs, warmup=warmup)
    except RuntimeError as err:
        raise fail(str(err)) from None
    if json_:
        print_json(result)
        return
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    bench_table(f"{root}: {result['cpus']} CPUs, load {load}", result["commands"], {
        "command": None, "min s": "{min_s:.2f}", "median s": "{median_s:.2f}",
        "runs": lambda row: " ".join(f"{t:.2f}" for t in row["seconds"]),
    })  # fmt: skip


def bench_table(title: str, rows: dict[str, dict], columns: dict[str, Any]) -> None:
    """One row per named result; a column is the name (None), a format of the row's keys, or a
    function of the row."""
    table = Table(*columns, title=title)
    for name, row in rows.items():
        table.add_row(*(name if c is None else c(row) if callable(c) else c.format(**row) for c in columns.values()))
    Console().print(table)


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
