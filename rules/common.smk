# Config validation, shared names and input functions (no rules here).
from pathlib import Path

from ground.common.catalog import authors_files, benchmark
from ground.common.config import validate
from ground.download.layout import raw_input, recipe_raw_files
from ground.workflow.steps import STEPS, step_code, step_config

# One schema for the Snakefile and the CLI: a typo in config.yaml or --config fails here.
config.update(validate(config))

ROOT = config["download"]["root"]
MODALITIES = ["image", "video", "audio"]
# Fingerprints of the code each step runs, its adapter script and the library code it reaches:
# Snakemake only sees the adapter's mtime, so an edit to src/ground would otherwise never rerun
# anything (comments, docstrings and moves between modules don't count).
CODE = {s.name: step_code(s, Path(workflow.basedir)) for s in STEPS}
# How boxes and spans are written (convert.coords / convert.spans): generation and training need them too.
FORMS = {k: config["convert"][k] for k in ("coords", "spans")}


wildcard_constraints:
    dataset=r"[A-Za-z0-9_+\-]+",
    split=r"[A-Za-z0-9_]+",
    modality="|".join(MODALITIES),
    stage="[123]",
    benchmark=r"[A-Za-z0-9_+\-]+",
    shard=r"\d+",


# The hub download's files are not outputs of its job: Snakemake deletes a job's outputs before
# it reruns, which would throw away hand-placed datasets and terabytes of media. Its lock file
# (every fetched file with its sha256) stands for them instead.
HUB = config["download"]["source"] == "hub"
DOWNLOADED = f"{ROOT}/download.lock.json"


def get_raw_files():
    """Every raw annotation file the convert jobs read (the download step checks them)."""
    return recipe_raw_files(config)


def get_download_outputs():
    if HUB:
        # update(): kept, not deleted, when the job reruns; it records what is already there
        return {"lock": update(DOWNLOADED)}
    media, models = directory(f"{ROOT}/media"), directory(f"{ROOT}/models")
    return {"raw": get_raw_files(), "media": media, "models": models}


def get_convert_raw(wildcards):
    if HUB:
        return {"lock": DOWNLOADED}
    return {
        "raw": raw_input(ROOT, wildcards.dataset, wildcards.split),
        "media": f"{ROOT}/media",
    }


def get_base_models():
    return DOWNLOADED if HUB else f"{ROOT}/models"


def get_converted(datasets, splits):
    return expand(
        "results/convert/{dataset}/{split}.jsonl", dataset=datasets, split=splits
    )


def get_resource(section, name):
    """One of the recipe's `<section>.resources` for a step's jobs (`train`: the job's stage)."""

    def resource(wildcards):
        node = config[section]
        if section == "train":
            node = node[f"stage{wildcards.stage}"]
        return node["resources"][name]

    return resource
