# Answer one benchmark's questions with the stage-3 model (or the imported release) and score them.
rule evaluate_benchmark:
    input:
        model=get_eval_checkpoint(),
        data=get_eval_data,
        image="results/features/image.index.jsonl",
        video="results/features/video.index.jsonl",
        audio="results/features/audio.index.jsonl",
    output:
        scores="results/eval/{benchmark}/scores.json",
        predictions="results/eval/{benchmark}/predictions.jsonl",
        record="results/eval/{benchmark}/eval.job.json",
    log:
        "logs/eval/{benchmark}.log",
    benchmark:
        "benchmarks/eval/{benchmark}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 2
    resources:
        gpu=get_resource("eval", "gpus"),
        mem_mb=get_resource("eval", "mem_mb"),
        runtime=get_resource("eval", "runtime"),
    params:
        cfg=step_config(config, "eval"),
        code=CODE["eval"],
        store=config["features"]["store"],
    script:
        "scripts/evaluate_benchmark.py"
