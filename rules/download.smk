# Generate (demo recipe) the raw annotations, media and base models under download.root.
rule download_data:
    output:
        raw=get_raw_files(),
        media=directory(f"{ROOT}/media"),
        models=directory(f"{ROOT}/models"),
        record=f"{ROOT}/download.job.json",
    log:
        "logs/download/download_data.log",
    benchmark:
        "benchmarks/download/download_data.tsv"
    conda:
        "../envs/data.yaml"
    threads: 2
    params:
        cfg=config["download"],
        code=CODE["download"],
    script:
        "scripts/download_data.py"
