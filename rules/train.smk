# Train one stage (1: adapters, 2: LLM + adapters, 3: instruction tuning) on cached features.
# On SLURM the job is never wrapped in the plugin's `srun -n1` (that step dies at once on a
# preemption's SIGTERM): on one node it runs in the batch step, on several it starts one torchrun
# per node through its own srun (ground.train.world.slurm_resources).
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
        gpu=rule_resource(config, "gpu"),
        gres=rule_resource(config, "gres"),
        nodes=rule_resource(config, "nodes"),
        mpi=rule_resource(config, "mpi"),
        tasks=rule_resource(config, "tasks"),
        tasks_per_gpu=rule_resource(config, "tasks_per_gpu"),
        mem_mb=get_resource("train", "mem_mb"),
        runtime=get_resource("train", "runtime"),
    params:
        cfg=get_stage_config,
        code=CODE["stage1"],
        init=get_stage_init,
        store=config["features"]["store"],
        forms=FORMS,
    script:
        "scripts/train_stage.py"
