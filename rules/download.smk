# Fetch (hub) or generate (demo) the raw annotations, media and base models under download.root.
rule download_data:
    output:
        **get_download_outputs(),
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
        promised=get_raw_files(),
        authors_files=authors_files(config["convert"]["authors"]),
        code=CODE["download"],
    script:
        "scripts/download_data.py"
