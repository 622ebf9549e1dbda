"""Adapter of rule generate_instructions (rules/generate.smk) -> ground.instruct.generate."""

from pathlib import Path

from ground.instruct.generate import generate_instructions
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
cfg = smk.params.cfg
with step_job(smk) as job:
    summary = generate_instructions(
        [Path(p) for p in smk.input],
        Path(smk.output.records),
        Path(smk.output.manifest),
        backend=cfg["backend"],
        seed=cfg["seed"],
        cache_dir=Path(cfg["cache_dir"]),
        turns=cfg["turns"],
    )
    job.note("summary", summary)
