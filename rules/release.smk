# Import the authors' released checkpoint: our checkpoint layout plus its frozen encoders.
rule import_release:
    input:
        DOWNLOADED if HUB else RELEASE,
    output:
        model=directory(IMPORTED),
        record="results/import/release.job.json",
    log:
        "logs/import/import_release.log",
    benchmark:
        "benchmarks/import/import_release.tsv"
    conda:
        "../envs/train.yaml"
    threads: 2
    params:
        cfg=get_release_config(),
        code=CODE["import"],
    script:
        "scripts/import_release.py"
