"""`ground report`: one self-contained HTML page per run (scores, loss curves, example answers).

    >>> write_report(Path("results/ground.duckdb"), Path("."), Path("results/report"), run_id=None)
    PosixPath('results/report/20261124-153411-6b49.html')

The page holds: the run (command, commit, status); every score of the run next to its trivial
baseline and the paper's number where the paper gives one; the training-loss curves the run
recorded; and for every benchmark a few example questions with the model's answer drawn on the
image (ground truth green, answer red) or on a timeline, then its typical failures: how many
answers miss (overlap with the truth under 0.5, or nothing parsable), how many distinct answers
the model gave, the answer it gives most often, and misses spread evenly over the test split. Images are embedded (base64), so the
page can be mailed or attached to an issue as one file. Examples come from the predictions file
next to each score's job record, as it is on disk now.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from ground.common.catalog import BENCHMARKS, PAPER
from ground.common.formats import recipe_forms, writing
from ground.eval.metrics import box_iou, temporal_iou
from ground.eval.run import read_predictions
from ground.eval.scoring import COUNTS, prediction, truth
from ground.tracking import queries
from ground.train.data import load_records

EXAMPLES = 4


def write_report(db: Path, root: Path, out_dir: Path, run_id: str | None = None) -> Path:
    """Write `out_dir/<run>.html` for `run_id` (default: the latest run with benchmark scores)."""
    metrics = queries.list_metrics(db, run_id=run_id)
    if run_id is None:
        scored = [m for m in metrics if m["benchmark"] in BENCHMARKS]
        if not scored:
            raise ValueError(f"{db}: no run has benchmark scores yet (run `ground run` or `ground eval`)")
        run_id = scored[-1]["run_id"]
        metrics = [m for m in metrics if m["run_id"] == run_id]
    runs = {r["id"]: r for r in queries.list_runs(db, limit=10_000)}
    if run_id not in runs:
        raise ValueError(f"{db}: no run {run_id!r} (see `ground runs`)")
    sections = [
        _run_section(runs[run_id]),
        _scores_section(metrics),
        _curves_section(metrics),
        _examples_section(db, run_id, metrics, root),
    ]
    page = _PAGE.format(title=html.escape(f"ground run {run_id}"), body="\n".join(sections))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{run_id}.html"
    path.write_text(page, encoding="utf-8")
    return path


def _run_section(run: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{k}</th><td>{html.escape(str(run.get(k) or ''))}</td></tr>"
        for k in ("id", "status", "started", "finished", "command_line", "git_commit", "config_hash")
    )
    return f"<h1>Run {html.escape(run['id'])}</h1><table>{rows}</table>"


def _scores_section(metrics: list[dict[str, Any]]) -> str:
    values = {(m["benchmark"], m["split"], m["name"]): m["value"] for m in metrics if m["at_step"] is None}
    rows = []
    for (bench, split, name), value in sorted(values.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if bench not in BENCHMARKS or name.startswith("baseline/") or name in COUNTS:
            continue
        base = values.get((bench, split, f"baseline/{name}"))
        paper = PAPER.get((bench, split), {}).get(name)
        counts = "/".join(str(int(values.get((bench, split, c), 0))) for c in ("parsed", "total"))
        rows.append(
            f"<tr><td>{html.escape(bench)}</td><td>{html.escape(split or '')}</td><td>{name}</td>"
            f"<td><b>{value:.2f}</b></td><td>{_num(base)}</td><td>{_num(paper)}</td><td>{counts}</td></tr>"
        )
    if not rows:
        return "<h2>Scores</h2><p>This run recorded no benchmark scores.</p>"
    head = "<tr><th>benchmark</th><th>split</th><th>metric</th><th>score</th><th>baseline</th>" \
           "<th>paper (GroundingGPT-7B)</th><th>parsed/total</th></tr>"  # fmt: skip
    return f"<h2>Scores</h2><table>{head}{''.join(rows)}</table>"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _curves_section(metrics: list[dict[str, Any]]) -> str:
    curves: dict[str, list[tuple[int, float]]] = {}
    for m in metrics:
        if m["at_step"] is not None:
            curves.setdefault(f"{m['benchmark']} {m['name']}", []).append((m["at_step"], m["value"]))
    if not curves:
        return "<h2>Training</h2><p>This run trained nothing (its stages were up to date).</p>"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.2), squeeze=False)
    for ax, (name, points) in zip(axes[0], sorted(curves.items())):
        steps, values = zip(*sorted(points))
        ax.plot(steps, values, linewidth=1)
        ax.set_title(name)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return f"<h2>Training</h2>{_img(fig)}"


def _img(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _examples_section(db: Path, run_id: str, metrics: list[dict[str, Any]], root: Path) -> str:
    records = {j["id"]: j["record_path"] for j in queries.list_jobs(db, run_id)}
    folders = {}
    for m in metrics:
        if m["benchmark"] in BENCHMARKS and m["at_step"] is None and records.get(m["job_id"]):
            folders[m["benchmark"]] = (root / records[m["job_id"]]).parent
    parts = [
        _examples(BENCHMARKS[name], folders[name] / "scores.json", root)
        for name in sorted(folders)
        if (folders[name] / "scores.json").is_file()
    ]
    return "<h2>Examples</h2>" + ("".join(parts) or "<p>No predictions on disk.</p>")


def _examples(bench: Any, scores_file: Path, root: Path) -> str:
    summary = json.loads(scores_file.read_text())
    predictions = scores_file.parent / "predictions.jsonl"
    answers = read_predictions(predictions) if predictions.is_file() else {}
    records = [r for r in load_records([root / p for p in summary["data"]]) if r["task"] == bench.task]
    answered = [r for r in records if str(r["id"]) in answers]
    with writing(*recipe_forms(summary.get("forms", {}))):  # as the evaluation read the answers
        misses = [r for r in answered if overlap(bench, r, answers[str(r["id"])]) < 0.5]
        shown = _figures(bench, answered[:EXAMPLES], answers, root)
        failed = _figures(bench, misses[:: max(1, len(misses) // EXAMPLES)][:EXAMPLES], answers, root)
        unparsable = sum(prediction(bench, r, answers[str(r["id"])]) is None for r in answered)
    given = [answers[str(r["id"])] for r in answered]
    common = max(sorted(set(given)), key=given.count) if given else ""
    tally = (f"<p>Misses (overlap &lt; 0.5 or unparsable): <b>{len(misses)}</b> of {len(answered)} "
             f"({unparsable} unparsable); {len(set(given))} distinct answers, the commonest given "
             f"{given.count(common)} times: <code>{html.escape(common)}</code></p>")  # fmt: skip
    return (f"<h3>{html.escape(bench.name)}</h3><div class=row>{shown}</div>"
            f"<h4>{html.escape(bench.name)}: typical failures</h4>{tally}<div class=row>{failed}</div>")  # fmt: skip


def overlap(bench: Any, record: dict[str, Any], answer: str) -> float:
    """IoU of the parsed answer with the record's truth (the best one when several); 0 if unparsable."""
    pred, gt = prediction(bench, record, answer), truth(bench, record)
    if pred is None:
        return 0.0
    if bench.kind == "span":
        return temporal_iou(pred, gt)
    return max(box_iou(pred, b) for b in ([gt] if bench.kind == "box" else gt))


def _figures(bench: Any, records: list[dict[str, Any]], answers: dict[str, str], root: Path) -> str:
    cells = []
    for record in records:
        answer = answers[str(record["id"])]
        question = record["conversations"][0]["value"].split("\n")[-1]
        cells.append(
            f"<figure>{_draw(bench, record, answer, root)}<figcaption><b>Q:</b> {html.escape(question)}"
            f"<br><b>A:</b> {html.escape(answer)}<br><b>truth:</b> "
            f"{html.escape(record['conversations'][1]['value'])}</figcaption></figure>"
        )
    return "".join(cells)


def _draw(bench: Any, record: dict[str, Any], answer: str, root: Path) -> str:
    if bench.kind == "span":
        return _timeline(truth(bench, record), prediction(bench, record, answer), float(record["meta"]["duration"]))
    image_path = root / str(record.get("image", ""))
    if not image_path.is_file():
        return "<p>(image not on disk)</p>"
    from PIL import Image, ImageDraw

    image = Image.open(image_path).convert("RGB")
    width, height = image.size
    scale = max(1, 192 // max(width, height))
    image = image.resize((width * scale, height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    gt = truth(bench, record)
    pred = prediction(bench, record, answer)
    if bench.kind == "box":
        boxes = [(gt, "lime")] + ([(pred, "red")] if pred is not None else [])
        pixel = [(tuple(v * scale for v in b), c) for b, c in boxes]
    else:
        boxes = [(b, "lime") for b in gt] + ([(pred, "red")] if pred is not None else [])
        pixel = [((b[0] * width * scale, b[1] * height * scale, b[2] * width * scale, b[3] * height * scale), c)
                 for b, c in boxes]  # fmt: skip
    for box, colour in pixel:
        draw.rectangle(box, outline=colour, width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _timeline(gt: tuple[float, float], pred: tuple[float, float] | None, duration: float) -> str:
    def bar(span: tuple[float, float], y: int, colour: str) -> str:
        x = 10 + 280 * span[0] / duration
        w = max(1.0, 280 * (span[1] - span[0]) / duration)
        return f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="14" fill="{colour}"/>'

    bars = bar(gt, 10, "green") + (bar(pred, 30, "red") if pred is not None else "")
    return (f'<svg width="300" height="60"><line x1="10" y1="52" x2="290" y2="52" stroke="#888"/>{bars}'
            f'<text x="10" y="60" font-size="8">0 s</text><text x="270" y="60" font-size="8">{duration:g} s</text></svg>')  # fmt: skip


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1em; }} figure {{ width: 320px; margin: 0; }}
figcaption {{ font-size: 0.8em; }}
</style></head><body>
{body}
</body></html>
"""
