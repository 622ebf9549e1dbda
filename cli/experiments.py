"""`ground exp list|show|diff`, and the working folder `ground run --exp` runs in
(`ground.workflow.experiments` does the work)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from ground_cli.output import json_only, print_json
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ground.workflow import experiments

exp_app = typer.Typer(
    help="Experiments side by side: `ground run --exp NAME --set k=v` keeps each one's outputs apart.",
    no_args_is_help=True,
)
err = Console(stderr=True)


def prepare(project: Path, name: str, source: str, cfg: dict[str, Any]) -> Path:
    """The experiment's working folder, sharing the project's stores (`experiments.stores`). Before
    its first run it gets the finished outputs of `source` (linked, ground.workflow.experiments)."""
    root = experiments.workdir(project, name)
    if root == project:
        return root
    origin = experiments.workdir(project, experiments.check_name(source))
    if origin != project and not (origin / ".snakemake").is_dir():
        raise ValueError(f"--from {source}: no such experiment (ground exp list shows them)")
    fresh = not (root / ".snakemake").is_dir()
    root.mkdir(parents=True, exist_ok=True)
    experiments.share_stores(project, root, experiments.stores(cfg))
    if fresh:
        linked = experiments.mirror(origin, root)
        err.print(f"experiment {name}: starts from {source} ({linked} finished outputs shared)")
    return root


def run_at_once(project: Path, variants: list[tuple[str, str]], first: str, args: list[str], cores: int) -> list[str]:
    """A sweep's later experiments, all at once: each a `ground run --exp NAME --from FIRST`
    process of its own (the cores shared out; a profile's executor submits them all), its output
    in experiments/NAME/logs/ground-run.log. Returns the names that failed."""
    share = max(1, cores // len(variants))
    running = {}
    for name, override in variants:
        log = experiments.workdir(project, name) / "logs" / "ground-run.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "ground_cli.main", "run", *args, "--set", override,
                   "--exp", name, "--from", first, "--cores", str(share)]  # fmt: skip
        with open(log, "w") as out:
            running[name] = (subprocess.Popen(command, cwd=project, stdout=out, stderr=subprocess.STDOUT,
                                              env=os.environ | {"COLUMNS": "120"}), log)  # fmt: skip
    err.print(f"running {', '.join(running)} at once, from {first} ({share} core(s) each); "
              f"their logs: {experiments.FOLDER}/NAME/logs/ground-run.log")  # fmt: skip
    failed = []
    for name, (proc, log) in running.items():
        code = proc.wait()
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        err.print(f"experiment {name}: {'done' if code == 0 else '[bold red]failed[/]'}"
                  f" ({escape(lines[-1].strip() if lines else 'no output')})", highlight=False)  # fmt: skip
        if code != 0:
            failed.append(name)
    return failed


def _rows_or_fail(project: Path, db: Path, chosen: list[str]) -> tuple[list[dict], list[str]]:
    try:
        return experiments.compare(project, db, chosen)
    except ValueError as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None


def _print(rows: list[dict], fmt: str | None) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "json":
        print_json(rows)
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: "" if row.get(c) is None else row[c] for c in columns} for row in rows)  # full precision
        print(out.getvalue(), end="")
    elif fmt == "md":
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for row in rows:
            print("| " + " | ".join(_text(row.get(c)).replace("|", "\\|") for c in columns) + " |")
    elif len(columns) <= 6:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(escape(_text(row.get(c))) for c in columns))
        Console().print(table)
    else:  # a terminal is too narrow for a column per score: a column per experiment instead
        key = columns[0]
        table = Table(key, *(escape(_text(row[key])) for row in rows))
        for column in columns[1:]:
            table.add_row(escape(column), *(escape(_text(row.get(column))) for row in rows))
        Console().print(table)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and len(value) >= 40:  # a commit
        return value[:12] + value[40:]
    return str(value)


def _format(json_: bool, csv_: bool, md: bool) -> str | None:
    chosen = [f for f, on in (("json", json_), ("csv", csv_), ("md", md)) if on]
    if len(chosen) > 1:
        err.print("[bold red]error:[/] choose one of --json, --csv, --md")
        raise typer.Exit(2)
    return chosen[0] if chosen else None


JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV with a header row.")]
MdOpt = Annotated[bool, typer.Option("--md", help="A Markdown table.")]
SortOpt = Annotated[
    str | None, typer.Option("--sort", help="Best first by this column (a score, e.g. 'demo_rec Acc@0.5').")
]


def _show(names: list[str], json_: bool, csv_: bool, md: bool, sort: str | None, every: bool) -> None:
    from ground_cli.main import database, project_root, recipe

    fmt = _format(json_, csv_, md)
    project = project_root()
    with json_only(fmt is not None):
        rows, _ = _rows_or_fail(project, database(recipe(None, [])), names)
    if not every:  # the scores and the differing keys, not the answer counts of each benchmark
        from ground.eval.scoring import COUNTS

        rows = [{k: v for k, v in row.items() if k.rpartition(" ")[2] not in COUNTS} for row in rows]
    if sort is not None:
        if not any(sort in row for row in rows):
            err.print(f"[bold red]error:[/] no column {sort!r} to sort by")
            raise typer.Exit(2)
        rows.sort(key=lambda row: (row.get(sort) is None, -(row.get(sort) or 0)))
    _print(rows, fmt)


@exp_app.command("list")
def list_command(
    json_: JsonOpt = False, csv_: CsvOpt = False, md: MdOpt = False, sort: SortOpt = None,
    every: Annotated[bool, typer.Option("--all", help="Also the question counts of each score.")] = False,
) -> None:  # fmt: skip
    """Every experiment that has run: status, the recipe keys that differ, scores and baselines, commit."""
    _show([], json_, csv_, md, sort, every)


@exp_app.command("show")
def show_command(
    names: Annotated[list[str], typer.Argument(help="Experiments to compare (default: all).")] = None,
    json_: JsonOpt = False, csv_: CsvOpt = False, md: MdOpt = False, sort: SortOpt = None,
    every: Annotated[bool, typer.Option("--all", help="Also the question counts of each score.")] = False,
) -> None:  # fmt: skip
    """The chosen experiments side by side: only the recipe keys that differ between them."""
    _show(list(names or []), json_, csv_, md, sort, every)


@exp_app.command("diff")
def diff_command(a: str, b: str, json_: JsonOpt = False) -> None:
    """The resolved recipes of two experiments' newest runs, where they differ."""
    from ground_cli.main import database, recipe

    with json_only(json_):
        try:
            rows = experiments.recipe_diff(database(recipe(None, [])), a, b)
        except ValueError as error:
            err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
            raise typer.Exit(2) from None
    _print(rows, "json" if json_ else None)
    if not rows and not json_:
        err.print(f"{a} and {b} ran the same recipe")
