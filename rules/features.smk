# The split and the gather are small: they run in the head process, not as cluster jobs.
localrules:
    split_media,
    gather_features,


# Count each modality's media per shard once conversion is done; Snakemake then plans the shard
# jobs again, so that only shards whose media changed rerun.
checkpoint split_media:
    input:
        unpack(get_feature_inputs),
    output:
        listing="results/features/{modality}/split.json",
        record="results/features/{modality}/split.job.json",
    log:
        "logs/features/{modality}/split_media.log",
    conda:
        "../envs/features.yaml"
    params:
        cfg=step_config(config, "features"),
        code=CODE["features"],
    script:
        "scripts/split_media.py"


# Run one modality's frozen encoder over one shard of the media the conversation data names (cached).
rule cache_features:
    input:
        unpack(get_shard_inputs),
        encoder=get_feature_encoder,
    output:
        index="results/features/{modality}/shard{shard}.index.jsonl",
        record="results/features/{modality}/shard{shard}.job.json",
    log:
        "logs/features/{modality}/shard{shard}.log",
    benchmark:
        "benchmarks/features/{modality}/shard{shard}.tsv"
    conda:
        "../envs/features.yaml"
    threads: 2
    resources:
        gpu=get_resource("features", "gpus"),
        mem_mb=get_resource("features", "mem_mb"),
        runtime=get_resource("features", "runtime"),
    params:
        cfg=step_config(config, "features"),
        code=CODE["features"],
        media=get_shard_digest,
    script:
        "scripts/cache_features.py"


# Merge a modality's shard indexes into the one index training and evaluation read.
rule gather_features:
    input:
        indexes=expand(
            "results/features/{{modality}}/shard{shard}.index.jsonl",
            shard=range(config["features"]["shards"]),
        ),
        records=expand(
            "results/features/{{modality}}/shard{shard}.job.json",
            shard=range(config["features"]["shards"]),
        ),
    output:
        index="results/features/{modality}.index.jsonl",
        record="results/features/{modality}.job.json",
    log:
        "logs/features/{modality}.log",
    conda:
        "../envs/features.yaml"
    params:
        cfg=step_config(config, "features"),
        code=CODE["features"],
    script:
        "scripts/gather_features.py"
