"""`ground bench features|train|cli`: ratios measured side by side in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from ground_cli.options import ConfigOpt, JsonOpt, SetOpt
from ground_cli.output import json_only, print_json
from rich.console import Console
from rich.table import Table


def _cli() -> Any:
    """The main module's helpers (it imports this one)."""
    from ground_cli import main

    return main


bench_app = typer.Typer(help="Benchmarks that print ratios measured side by side in one run.", no_args_is_help=True)


@bench_app.command("features")
def bench_features(
    videos: Annotated[int, typer.Option(help="Test videos to generate (ffmpeg testsrc2, 320x240, 25 fps).")] = 4,
    seconds: Annotated[float, typer.Option(help="Length of each test video.")] = 60.0,
    gop: Annotated[int, typer.Option(help="Keyframe interval of the test videos (x264's default: 250).")] = 250,
    frames: Annotated[int, typer.Option(help="Frames sampled uniformly per video.")] = 8,
    size: Annotated[int, typer.Option(help="Frame size (px).")] = 224,
    out: Annotated[Path, typer.Option(help="Where the test videos are written (reused).")] = Path("benchmarks/out/videos"),
    json_: JsonOpt = False,
) -> None:
    """Uniform frame sampling by seeking vs decoding every frame, same videos, one run."""
    from ground.features.bench import bench_video_decoding, make_bench_videos

    with json_only(json_):
        paths = make_bench_videos(out, count=videos, seconds=seconds, fps=25, gop=gop)
        result = bench_video_decoding(paths, num_frames=frames, size=size)
    if json_:
        print_json(result)
        return
    base = result["methods"]["decode_all"]["seconds"]
    bench_table(f"{videos} videos x {seconds:g} s, GOP {gop}, {frames} frames each", result["methods"], {
        "method": None, "frames": "{frames}", "seconds": "{seconds:.2f}", "frames/s": "{frames_per_s:.1f}",
        "speed vs decode_all": lambda row: f"{base / row['seconds']:.2f}x", "max pixel diff": "{max_abs_diff}",
    })  # fmt: skip


@bench_app.command("train")
def bench_train(
    size: Annotated[str, typer.Option(help="demo (tiny random models, CPU) | 7b (the paper's shapes, random bf16 weights, a GPU).")] = "demo",
    steps: Annotated[int, typer.Option(help="Timed optimizer steps per mode.")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed optimizer steps before each mode's timed ones.")] = 2,
    batch: Annotated[int, typer.Option(help="Samples per step (cycling image REC, video, sound+image, text+image).")] = 4,
    stage: Annotated[int, typer.Option(help="Trainable set: 1 (adapters) or 2/3 (LLM + adapters).")] = 2,
    llm_layers: Annotated[int | None, typer.Option(help="LLM decoder layers (default: the size's; fewer fit a stage-2 7B step on one GPU).")] = None,
    mixture: Annotated[bool, typer.Option("--mixture", help="Instead: this finished project's real stage mixture, padded vs packed rows (--stage, --steps, --warmup; the recipe from --config/--set).")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = [],
    json_: JsonOpt = False,
) -> None:
    """Training step on cached features vs frozen encoders on the fly, same batch and engine, one run."""
    if mixture:
        return _bench_mixture(_cli().recipe(config, set_), stage, steps, warmup, json_)
    from ground.train.bench import SIZES, bench_training

    if size not in SIZES:
        raise _cli().fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    with json_only(json_):  # DeepSpeed's accelerator warning, its logs and JIT builds
        result = bench_training(size=size, steps=steps, warmup=warmup, batch=batch, stage=stage, llm_layers=llm_layers)
    if json_:
        print_json(result)
        return
    title = (f"{size} ({result['llm_layers']} LLM layers), stage {stage}, {result['device']}, batch {batch} "
             f"({result['tokens_per_step']} tokens), median of {steps} steps after {warmup}")  # fmt: skip
    bench_table(title, result["modes"], {
        "mode": None, "s/step": "{seconds_per_step:.3f}", "tokens/s": "{tokens_per_s:.0f}",
        "peak memory GiB": lambda row: "-" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f}",
        "MFU": lambda row: "-" if row["mfu"] is None else f"{row['mfu']:.1%}", "encoder calls": "{encoder_calls}",
    })  # fmt: skip
    Console().print(f"on the fly / cached step time: [bold]{result['ratio']:.2f}x[/]")


def _bench_mixture(cfg: dict[str, Any], stage: int, steps: int, warmup: int, json_: bool) -> None:
    from ground.train.throughput import bench_mixture

    with json_only(json_):
        result = bench_mixture(_cli().project_root(), cfg, stage=stage, steps=steps, warmup=warmup)
    if json_:
        print_json(result)
        return
    title = (f"stage {stage} mixture ({result['samples']} samples), batch {result['batch_size']} x accumulation "
             f"{result['grad_accum']}, max_length {result['max_length']}, {result['device']}, {steps} steps after {warmup}")  # fmt: skip
    bench_table(title, result["modes"], {
        "rows": None, "s/step": "{seconds_per_step:.3f}", "tokens/s": "{tokens_per_s:.0f}",
        "padding": "{padding_share:.1%}", "rows per micro batch": "{rows_per_micro_batch:.1f}",
        "data wait s/step": "{data_wait_per_step_s:.4f}",
    })  # fmt: skip
    Console().print(f"packed / padded tokens/s: [bold]{result['speedup']:.2f}x[/]")


@bench_app.command("cli")
def bench_cli(
    runs: Annotated[int, typer.Option(help="Timed runs of each command (after the warm-up).")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed runs of each command first.")] = 1,
    project: Annotated[Path | None, typer.Option(help="Project folder to run them in (default: this one); a finished run makes `ground run` a no-op.")] = None,
    set_: SetOpt = [],
    json_: JsonOpt = False,
) -> None:
    """Start-up: `ground --help`, `ground status` and `ground run` as whole processes, min and median.

    On a finished project `ground run` has nothing to do (each timed run still records a run).
    """
    from ground.workflow.bench import bench_commands, cli_commands

    root = (project or _cli().project_root()).resolve()
    try:
        with json_only(json_):
            result = bench_commands(cli_commands(set_), root, runs=runs, warmup=warmup)
    except RuntimeError as err:
        raise _cli().fail(str(err)) from None
    if json_:
        print_json(result)
        return
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    bench_table(f"{root}: {result['cpus']} CPUs, load {load}", result["commands"], {
        "command": None, "min s": "{min_s:.2f}", "median s": "{median_s:.2f}",
        "runs": lambda row: " ".join(f"{t:.2f}" for t in row["seconds"]),
    })  # fmt: skip


def bench_table(title: str, rows: dict[str, dict], columns: dict[str, Any]) -> None:
    """One row per named result; a column is the name (None), a format of the row's keys, or a
    function of the row."""
    table = Table(*columns, title=title)
    for name, row in rows.items():
        table.add_row(*(name if c is None else c(row) if callable(c) else c.format(**row) for c in columns.values()))
    Console().print(table)
