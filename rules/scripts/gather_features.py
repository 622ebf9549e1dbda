"""Adapter of rule gather_features (rules/features.smk) -> ground.features.shards.gather_indexes."""

from pathlib import Path

from ground.features.shards import gather_indexes
from ground.tracking.adapter import step_job
from ground.tracking.record import read_job_record

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    summaries = [read_job_record(Path(p))[1]["notes"]["summary"] for p in smk.input.records]
    indexes = [Path(p) for p in smk.input.indexes]
    job.note("summary", gather_indexes(indexes, summaries, Path(smk.output.index)))
