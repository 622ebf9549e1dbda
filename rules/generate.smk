# Compose grounded multi-turn instruction dialogues (stage-3 data) from converted annotations.
rule generate_instructions:
    input:
        get_converted(config["generate"]["sources"], [config["generate"]["split"]]),
    output:
        records="results/generate/dialogues.jsonl",
        manifest="results/generate/dialogues.manifest.json",
        record="results/generate/dialogues.job.json",
    log:
        "logs/generate/generate_instructions.log",
    conda:
        "../envs/data.yaml"
    params:
        cfg=config["generate"],
        forms=FORMS,
        code=CODE["generate"],
    script:
        "scripts/generate_instructions.py"
