"""Adapter of rule assemble_mixture (rules/mixture.smk) -> ground.mixture.run.assemble_mixture."""

from pathlib import Path

from ground.mixture.run import assemble_mixture
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
stage = int(smk.wildcards.stage)
with step_job(smk) as job:
    sources = {name: Path(path) for name, path in smk.input.items()}
    summary = assemble_mixture(
        stage, sources, smk.params.weights, smk.params.alpha, smk.params.seed,
        Path(smk.output.records), Path(smk.output.manifest),
    )  # fmt: skip
    # Counts per source in the run store: metrics named mixture_records, benchmark stageN,
    # split = the selector (`ground metrics` lists them).
    for selector, count in summary["by_source"].items():
        job.metric("mixture_records", count, benchmark=f"stage{stage}", split=selector)
    job.metric("mixture_replayed", summary["replayed"], benchmark=f"stage{stage}")
    job.note("summary", summary)
