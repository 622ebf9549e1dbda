# Assemble one training stage's records: its sources by weight plus alpha x the previous stage's.
rule assemble_mixture:
    input:
        unpack(get_mixture_sources),
    output:
        records="results/mixture/stage{stage}.jsonl",
        manifest="results/mixture/stage{stage}.manifest.json",
        record="results/mixture/stage{stage}.job.json",
    log:
        "logs/mixture/stage{stage}.log",
    conda:
        "../envs/data.yaml"
    params:
        weights=config["mixture"],
        alpha=get_stage_alpha,
        seed=config["train"]["seed"],
        code=CODE["mixture"],
    script:
        "scripts/assemble_mixture.py"
