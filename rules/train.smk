# Train one stage (1: adapters, 2: LLM + adapters, 3: instruction tuning) on cached features.
rule train_stage:
    input:
        unpack(get_stage_inputs),
    output:
        model=directory("results/train/stage{stage}/model"),
        plot="results/train/stage{stage}/loss.png",
        record="results/train/stage{stage}/train.job.json",
    log:
        "logs/train/stage{stage}.log",
    benchmark:
        "benchmarks/train/stage{stage}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=get_resource("train", "gpus"),
        nodes=get_resource("train", "nodes"),
        mem_mb=get_resource("train", "mem_mb"),
        runtime=get_resource("train", "runtime"),
    params:
        cfg=get_stage_config,
        code=CODE["stage1"],
        init=get_stage_init,
        store=config["features"]["store"],
    script:
        "scripts/train_stage.py"
