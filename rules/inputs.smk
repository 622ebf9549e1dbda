# Input functions of the feature, import, training and evaluation rules (no rules here).
from ground.workflow.codecache import cached_digests
from ground.mixture.run import stage_sources
from ground.train.world import rule_resource  # a stage's SLURM resources (train.smk)


def get_eval_data(wildcards):
    """The converted evaluation files one benchmark scores (ground.eval.scoring)."""
    return benchmark(wildcards.benchmark).data_files()


def get_feature_sources():
    """Every conversation file of the recipe and of its benchmarks: the feature step encodes
    the media they name."""
    cfg = config["convert"]
    evaluated = [
        f for b in config["eval"]["benchmarks"] for f in benchmark(b).data_files()
    ]
    converted = get_converted(cfg["datasets"], cfg["splits"])
    return sorted(set(converted + evaluated)) + ["results/generate/dialogues.jsonl"]


# Conversation files are ancient() inputs of the feature jobs: their mtime would rerun every
# shard; a shard's own media do (get_shard_digest). Manifests, rewritten only when a convert or
# generate job reruns, rerun the split_media checkpoint, after which the shards are planned again.
def get_feature_inputs(wildcards):
    sources = get_feature_sources()
    manifests = [str(Path(f).with_suffix(".manifest.json")) for f in sources]
    return {"records": [ancient(f) for f in sources], "manifests": manifests}


def get_shard_inputs(wildcards):
    split = checkpoints.split_media.get(modality=wildcards.modality)
    records = [ancient(f) for f in get_feature_sources()]
    return {"records": records, "listing": ancient(split.output.listing)}


# in the working folder: each experiment (ground.workflow.experiments) has its own records
DIGESTS = Path(".snakemake") / "ground" / "digests.json"


def get_shard_digest(wildcards):
    """sha256 of the shard's media paths in the conversation data as it is now; "pending"
    until converted (the job is planned again after the checkpoint)."""
    shards, sources = config["features"]["shards"], get_feature_sources()
    digests = cached_digests(sources, wildcards.modality, shards, DIGESTS)
    return digests[int(wildcards.shard)] if digests else "pending"


# The import step's output: the release as our checkpoint, with its frame and audio encoders.
IMPORTED = "results/import/release"
RELEASE = config["release"]["source"] or f"{ROOT}/models/groundinggpt-release"


def get_eval_checkpoint():
    """The model eval scores (`eval.checkpoint`): stage 3's, or the imported release."""
    imported = config["eval"]["checkpoint"] == "import"
    return IMPORTED if imported else "results/train/stage3/model"


def get_feature_encoder(wildcards):
    """The import step's output when a modality's encoder is one it writes."""
    encoder = config["features"][wildcards.modality]["encoder"]
    return [IMPORTED] if encoder.startswith(f"{IMPORTED}/") else []


def get_release_config():
    """The import step's `release` section, its source folder resolved."""
    return step_config(config, "import") | {"source": RELEASE}


def get_eval_targets():
    return expand(
        "results/eval/{benchmark}/scores.json", benchmark=config["eval"]["benchmarks"]
    )


def get_mixture_sources(wildcards):
    """Source name -> train-split file of the sources a stage's mixture selects from."""
    sources = stage_sources(config, int(wildcards.stage))
    return {name: str(path) for name, path in sources.items()}


def get_stage_alpha(wildcards):
    return config["train"][f"stage{wildcards.stage}"]["alpha"]


def get_stage_inputs(wildcards):
    stage = int(wildcards.stage)
    previous = (
        f"results/train/stage{stage - 1}/model" if stage > 1 else get_base_models()
    )
    features = {m: f"results/features/{m}.index.jsonl" for m in MODALITIES}
    records = f"results/mixture/stage{stage}.jsonl"
    return {"records": records, "init": previous} | features


def get_stage_init(wildcards):
    """Stage 1 starts from the base LLM (inside the download's models folder), later stages
    from the previous stage's checkpoint."""
    stage = int(wildcards.stage)
    return (
        config["train"]["llm"]
        if stage == 1
        else f"results/train/stage{stage - 1}/model"
    )


def get_stage_config(wildcards):
    return step_config(config, f"stage{wildcards.stage}")
