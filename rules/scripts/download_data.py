"""Adapter of rule download_data (rules/download.smk) -> ground.data.download.download."""

from ground.data.download import download
from ground.tracking.adapter import step_job

with step_job(snakemake) as job:  # noqa: F821 (injected by Snakemake)
    job.note("summary", download(snakemake.params.cfg))  # noqa: F821
