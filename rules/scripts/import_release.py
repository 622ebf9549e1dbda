"""Adapter of rule import_release (rules/release.smk) -> ground.release.run.import_release."""

from pathlib import Path

from ground.release.run import import_release
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    cfg = smk.params.cfg
    compare = cfg["compare_frame_encoder"]
    report = import_release(
        Path(cfg["source"]),
        Path(smk.output.model),
        compare_frame_encoder=Path(compare) if compare else None,
    )
    job.note("summary", {k: v for k, v in report.items() if k != "keys"})
