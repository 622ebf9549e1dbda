"""Adapter of checkpoint split_media (rules/features.smk) -> ground.features.shards.write_listing."""

from pathlib import Path

from ground.features.shards import write_listing
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    records = [Path(p) for p in smk.input.records]
    listing = write_listing(records, smk.wildcards.modality, smk.params.cfg["shards"], Path(smk.output.listing))
    job.note("media_per_shard", listing["media"])
