"""Adapter of rule evaluate_benchmark (rules/eval.smk) -> ground.eval.run.evaluate."""

from pathlib import Path

from ground.common.catalog import benchmark
from ground.eval.run import evaluate, metric_rows
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summary = evaluate(
        benchmark(smk.wildcards.benchmark),
        [Path(p) for p in smk.input.data],
        Path(smk.output.scores).parent,
        cfg=smk.params.cfg,
        checkpoint=Path(smk.input.model),
        features={m: Path(smk.input[m]) for m in ("image", "video", "audio")},
        store=Path(smk.params.store),
    )
    for row in metric_rows(summary):
        job.metric(**row)
    job.note("summary", {k: v for k, v in summary.items() if k != "scores"})
