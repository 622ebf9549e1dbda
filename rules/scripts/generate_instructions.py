"""Adapter of rule generate_instructions (rules/generate.smk) -> ground.generate.run."""

from pathlib import Path

from ground.common.formats import recipe_forms
from ground.generate.run import generate_instructions
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summary = generate_instructions(
        [Path(p) for p in smk.input],
        Path(smk.output.records),
        Path(smk.output.manifest),
        dict(smk.params.cfg),
        recipe_forms(smk.params.forms),
    )
    job.note("summary", summary)
    for name in ("requests", "cache_hits", "tokens_in", "tokens_out"):
        job.metric(name, summary[name], benchmark="generate")
    job.metric("rejected", sum(summary["rejected_by_reason"].values()), benchmark="generate")
