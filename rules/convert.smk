# Convert one (dataset, split) of raw annotations into LLaVA-style conversation records.
rule convert_dataset:
    input:
        unpack(get_convert_raw),
    output:
        records="results/convert/{dataset}/{split}.jsonl",
        manifest="results/convert/{dataset}/{split}.manifest.json",
        record="results/convert/{dataset}/{split}.job.json",
    log:
        "logs/convert/{dataset}/{split}.log",
    conda:
        "../envs/data.yaml"
    params:
        cfg=config["convert"],
        root=ROOT,
        code=CODE["convert"],
    script:
        "scripts/convert_dataset.py"
