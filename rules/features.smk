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
    params:
        cfg=config["features"],
        code=CODE["features"],
    script:
        "scripts/cache_features.py"
