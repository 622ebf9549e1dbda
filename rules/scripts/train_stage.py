"""Adapter of rule train_stage (rules/train.smk) -> ground.train.launch.run_stage."""

from pathlib import Path

from ground.common.formats import recipe_forms, save_forms
from ground.tracking.adapter import step_job
from ground.train.launch import run_stage

smk = snakemake  # noqa: F821 (injected by Snakemake)
stage = int(smk.wildcards.stage)
with step_job(smk) as job:
    if stage == 1:  # the base LLM (later stages start from the previous stage's model)
        job.read([smk.params.init])
    inputs = {
        "init": smk.params.init,
        "records": [smk.input.records],
        "features": {m: smk.input[m] for m in ("image", "video", "audio")},
        "store": Path(smk.params.store),
    }
    out = Path(smk.output.model).parent
    summary = run_stage(stage, smk.params.cfg, inputs, out, Path("cache/train"), Path(smk.log[0]))
    save_forms(smk.output.model, *recipe_forms(smk.params.forms))  # what evaluation parses answers in
    for entry in summary.pop("losses"):
        job.metric("train_loss", entry["loss"], benchmark=f"stage{stage}", step=entry["step"])
    job.note("summary", summary)
