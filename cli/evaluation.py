"""`ground eval` and `ground report`: score benchmarks, compare runs, write HTML reports."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

BENCH_HELP = "Benchmark: charades, refcoco, refcoco+, refcocog, vggss, demo_rec, demo_tg, demo_sl."


def eval_command(
    bench: Annotated[str, typer.Argument(help=BENCH_HELP, show_default=False)],
    checkpoint: Annotated[Path | None, typer.Option(help="Decode with this checkpoint folder instead of the pipeline's stage-3 model.")] = None,
    predictions: Annotated[Path | None, typer.Option(help='Score this JSONL of {"id", "answer"} (any model) instead of decoding.')] = None,
    data: Annotated[list[Path], typer.Option(help="Converted evaluation JSONL (default: the benchmark's files under results/convert).")] = [],
    split: Annotated[str | None, typer.Option(help="Only this split (e.g. testA).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object: metric -> value, with counts.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Recipe file (default: config.yaml).")] = None,
    set_: Annotated[list[str], typer.Option("--set", "-s", help="Override a recipe key (repeatable).")] = [],
    exp: Annotated[str, typer.Option("--exp", help="Through the pipeline of this experiment (see `ground exp`).")] = "default",
) -> None:
    """Score a benchmark: through the pipeline (default), with --checkpoint, or from --predictions.

    Without --checkpoint/--predictions/--data this runs the pipeline up to the benchmark's scores
    (training first if needed). Every score lands in the DuckDB `metrics` table with the sha256 of
    the checkpoint (or predictions file) and of the data.
    """
    from ground_cli.main import fail, recipe
    from ground_cli.output import json_only, print_json

    from ground.common.catalog import benchmark
    from ground.eval.scoring import flatten

    cfg = recipe(config, set_)
    try:
        spec = benchmark(bench)
    except KeyError as err:
        raise fail(err.args[0]) from None
    if checkpoint is not None and predictions is not None:
        raise fail("give --checkpoint or --predictions, not both")
    files = data or [Path(p) for p in spec.data_files((split,) if split else None)]
    with json_only(json_):  # progress, Snakemake jobs, transformers' and DeepSpeed's logs
        if checkpoint is None and predictions is None and not data:
            summary = _through_pipeline(bench, cfg, exp, set_)
        else:
            summary = _direct(spec, files, cfg, checkpoint, predictions)
    scores = summary["scores"]
    if split is not None:
        if split not in scores:
            raise fail(f"no {spec.task} records of split {split!r} in {', '.join(map(str, files))}")
        scores = {split: scores[split]}
    if json_:
        print_json(flatten(scores))
        return
    show_scores(bench, scores)


def _through_pipeline(bench: str, cfg: dict[str, Any], exp: str, sets: list[str]) -> dict[str, Any]:
    from ground_cli.experiments import prepare
    from ground_cli.main import database, fail, project_root
    from ground_cli.running import RunInProgress, run_pipeline
    from ground_cli.workflow import Request

    try:
        root = prepare(project_root(), exp, "default", cfg)
    except ValueError as err:
        raise fail(str(err)) from None
    target = f"results/eval/{bench}/scores.json"
    request = Request(root=root, config=cfg, targets=[target], project=project_root())
    command_line = shlex.join(["ground", *sys.argv[1:]])
    try:
        ok = run_pipeline(request, database(cfg), command_line, Console(stderr=True), experiment=exp, overrides=sets)
    except RunInProgress as err:
        raise fail(str(err)) from None
    if not ok:
        raise typer.Exit(1)
    return json.loads((root / target).read_text())


def _direct(
    spec: Any, files: list[Path], cfg: dict[str, Any], checkpoint: Path | None, predictions: Path | None
) -> dict[str, Any]:
    """Evaluate outside the pipeline; the scores are recorded as a run of their own."""
    from ground_cli.main import database, fail, project_root

    from ground.common.formats import recipe_forms
    from ground.eval.run import evaluate, index_features, record_evaluation
    from ground.tracking import db as tracking

    root = project_root()
    missing = [str(p) for p in [*files, *([predictions] if predictions else [])] if not Path(p).is_file()]
    if missing:
        hint = "" if predictions else " (run `ground run --until convert`, or give --data)"
        raise fail(f"not found: {', '.join(missing)}{hint}")
    db = database(cfg)
    command_line = shlex.join(["ground", *sys.argv[1:]])
    run_id = tracking.start_run(db, config=cfg, targets=[f"eval {spec.name}"], command_line=command_line, workdir=root)
    out = root / "results" / "eval" / "adhoc" / spec.name / run_id
    try:
        features = None
        if checkpoint is not None:
            features = index_features(files, cfg["features"], root / "cache" / "eval" / "index")
        summary = evaluate(
            spec, files, out, cfg=cfg["eval"], checkpoint=checkpoint, predictions=predictions,
            features=features, store=root / cfg["features"]["store"], cache=root / "cache" / "eval",
            forms=recipe_forms(cfg["convert"]),
        )  # fmt: skip
    except (ValueError, KeyError, FileNotFoundError) as err:
        tracking.finish_run(db, run_id, "failed")
        raise fail(str(err).strip("'\"")) from None
    record = record_evaluation(summary, out, run_id)
    tracking.ingest_records(db, run_id, [record])
    tracking.finish_run(db, run_id, "ok")
    Console(stderr=True).print(f"run {run_id}: scores in {out.relative_to(root)}/scores.json", soft_wrap=True)
    return summary


def show_scores(bench: str, scores: dict[str, dict[str, Any]]) -> None:
    """One table: a row per metric, a column per split, the baseline beside each score."""
    from ground.eval.scoring import COUNTS

    table = Table("split", "metric", "score", "baseline", title=bench)
    for split, values in scores.items():
        for name, value in values.items():
            if name.startswith("baseline/") or name in COUNTS:
                continue
            base = values.get(f"baseline/{name}")
            table.add_row(split, name, f"{value:.2f}", "" if base is None else f"{base:.2f}")
        counts = ", ".join(f"{k} {values[k]}" for k in COUNTS)
        table.add_row(split, "[dim]answers", f"[dim]{counts}", "")
    Console().print(table)


def report_command(
    run_id: Annotated[str | None, typer.Option("--run", help="The run to report (default: the latest with scores).")] = None,
    out: Annotated[Path, typer.Option(help="Folder the HTML page is written to.")] = Path("results/report"),
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Recipe file (default: config.yaml).")] = None,
    exp: Annotated[str | None, typer.Option("--exp", help="The newest run of this experiment (see `ground exp`).")] = None,
) -> None:
    """Write one HTML page for a run: scores against the paper's, loss curves, example predictions."""
    from ground_cli.main import database, experiment_root, fail, project_root, recipe

    from ground.eval.report import write_report
    from ground.tracking.queries import latest_runs

    cfg = recipe(config, [])
    root = project_root()
    if exp is not None:
        root, newest = experiment_root(exp), latest_runs(database(cfg)).get(exp)
        if newest is None:
            raise fail(f"no recorded run of experiment {exp!r} (ground exp list shows them)")
        run_id = run_id or newest["id"]
    try:
        page = write_report(database(cfg), root, project_root() / out, run_id)
    except ValueError as err:
        raise fail(str(err)) from None
    print(page)
