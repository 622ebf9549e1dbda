"""Adapter of rule convert_dataset (rules/convert.smk) -> ground.convert.run.convert_dataset."""

from pathlib import Path

from ground.convert.run import convert_dataset
from ground.download.layout import raw_input
from ground.tracking.adapter import step_job

smk = snakemake  # noqa: F821 (injected by Snakemake)
with step_job(smk) as job:
    dataset, split = smk.wildcards.dataset, smk.wildcards.split
    summary = convert_dataset(
        dataset,
        split,
        Path(smk.params.root),
        Path(smk.output.records),
        Path(smk.output.manifest),
        seed=smk.params.cfg["seed"],
        max_reject_fraction=smk.params.cfg["max_reject_fraction"],
        # the authors' JSON is training data: evaluation splits always come from the published files
        authors=dataset in smk.params.cfg["authors"] and split == "train",
        coords=smk.params.cfg["coords"],
        spans=smk.params.cfg["spans"],
    )
    job.read(raw_input(smk.params.root, dataset, split, smk.params.cfg["authors"]))
    job.note("summary", summary)
