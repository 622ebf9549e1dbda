# The GroundingGPT pipeline: download -> convert -> generate -> features -> training (3 stages) -> eval.
# Run it through the CLI (`ground run`), which tracks every run in DuckDB; plain
# `snakemake --cores 2` works too. Step code lives in src/ground/, one rules/<phase>.smk per phase.
import os

from snakemake.utils import min_version

min_version("9.0")


# `ground run` names its validated recipe (GROUND_RECIPE), the same file on every cluster node.
configfile: os.environ.get("GROUND_RECIPE", "config.yaml")


include: "rules/common.smk"
include: "rules/inputs.smk"
include: "rules/download.smk"
include: "rules/release.smk"
include: "rules/convert.smk"
include: "rules/generate.smk"
include: "rules/mixture.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/eval.smk"


onstart:
    shell("mkdir -p logs")


# Everything the pipeline produces: the stage-3 model (or the imported release) and the scores.
rule all:
    default_target: True
    input:
        get_eval_checkpoint(),
        get_eval_targets(),
