"""Adapter of rule convert_dataset (rules/convert.smk) -> ground.data.convert.convert_dataset."""

from pathlib import Path

from ground.data.convert import convert_dataset
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summary = convert_dataset(
        smk.wildcards.dataset,
        smk.wildcards.split,
        Path(smk.input[0]).parents[2],  # the first raw input: <root>/raw/<dataset>/<file>
        Path(smk.output.records),
        Path(smk.output.manifest),
        seed=smk.params.cfg["seed"],
        max_reject_fraction=smk.params.cfg["max_reject_fraction"],
    )
    job.note("summary", summary)
