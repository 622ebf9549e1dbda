"""Adapter of rule download_data (rules/download.smk) -> ground.download.run.download."""

from ground.download.run import download
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summary = download(
        smk.params.cfg, promised=smk.params.promised, authors_files=smk.params.authors_files
    )
    job.note("summary", summary)
