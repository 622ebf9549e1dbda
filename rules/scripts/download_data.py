"""Adapter of rule download_data (rules/download.smk) -> ground.data.download.download."""

from ground.data.download import download
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summary = download(
        smk.params.cfg, promised=smk.params.promised, authors_files=smk.params.authors_files
    )
    job.note("summary", summary)
