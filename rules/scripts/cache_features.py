"""Adapter of rule cache_features (rules/features.smk) -> ground.features.extract.cache_shard."""

from pathlib import Path

from ground.features.extract import cache_shard
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    modality, shard = smk.wildcards.modality, int(smk.wildcards.shard)
    records = [Path(p) for p in smk.input.records]
    cfg = smk.params.cfg
    job.read([cfg[modality]["encoder"]])
    summary = cache_shard(modality, records, Path(smk.output.index), cfg, shard, cfg["shards"])
    job.read(stamps=summary.pop("read"))  # the media, as hashed for their feature keys
    job.note("summary", summary)
    counts = {"encoded": summary["encoded"], "cached": summary["cached"], "failed": len(summary["failed"])}
    for name, value in counts.items():
        job.metric(f"media_{name}", value, benchmark="features", split=modality)
