# Run one modality's frozen encoder over every media file the conversation data names (cached).
rule cache_features:
    input:
        get_feature_inputs,
    output:
        index="results/features/{modality}.index.jsonl",
        record="results/features/{modality}.job.json",
    log:
        "logs/features/{modality}.log",
    benchmark:
        "benchmarks/features/{modality}.tsv"
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
    script:
        "scripts/cache_features.py"
