"""Adapter of rule cache_features (rules/features.smk) -> ground.features.extract.cache_features."""

from pathlib import Path

from ground.features.extract import cache_features
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summary = cache_features(
        smk.wildcards.modality, [Path(p) for p in smk.input], Path(smk.output.index), smk.params.cfg
    )
    job.note("summary", summary)
    counts = {"encoded": summary["encoded"], "cached": summary["cached"], "failed": len(summary["failed"])}
    for name, value in counts.items():
        job.metric(f"media_{name}", value, benchmark="features", split=smk.wildcards.modality)
