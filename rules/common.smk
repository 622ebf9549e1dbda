# Config validation, shared names and input functions (no rules here).
from ground.config import validate
from ground.data.layout import raw_files
from ground.fingerprint import code_fingerprint
from ground.steps import STEPS

# One schema for the Snakefile and the CLI: a typo in config.yaml or --config fails here.
config.update(validate(config))

ROOT = config["download"]["root"]
MODALITIES = ["image", "video", "audio"]
# Fingerprints of the library code each step runs: Snakemake only sees the adapter scripts, so
# an edit to src/ground would otherwise never rerun anything (comments and docstrings don't count).
CODE = {s.name: code_fingerprint(*s.modules) for s in STEPS}


wildcard_constraints:
    dataset=r"[A-Za-z0-9_+\-]+",
    split=r"[A-Za-z0-9_]+",
    modality="|".join(MODALITIES),


def get_raw_files():
    return raw_files(config["download"])


def get_converted(datasets, splits):
    return expand(
        "results/convert/{dataset}/{split}.jsonl", dataset=datasets, split=splits
    )


def get_feature_inputs(wildcards):
    """Every conversation file of the recipe: the feature step encodes the media they name."""
    cfg = config["convert"]
    return get_converted(cfg["datasets"], cfg["splits"]) + [
        "results/generate/dialogues.jsonl"
    ]
