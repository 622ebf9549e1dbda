"""`ground run`'s display: the job counter and, under it, each running job's newest log line.

The training lines are the trainer's own (`ground.train.loop.step_line`), in real log files; the
display is rendered by rich as `ground run` renders it, into a recorded console.
"""

from __future__ import annotations

import io
from pathlib import Path

from ground_cli.running import JobsProgress, last_line
from ground_cli.workflow import Events, Job
from rich.console import Console, Group
from rich.progress import TextColumn

from ground.train.loop import step_line


def trainer_prints(log: Path, stage: int, steps: list[tuple[int, float, float]], total: int) -> None:
    """Append what rank 0 of a trainer prints after these optimizer steps to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        for n, entry in enumerate(steps, start=1):
            print(step_line(stage, entry, total, speed=2048.0, eta=60.0 * (total - n)), file=sink)


def rendered(events: Events, root: Path) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    progress = JobsProgress(TextColumn("{task.description}"), root=root, console=console)
    progress.events = events
    progress.add_task("running: 2 jobs", total=10)
    console.print(Group(*progress.get_renderables()))
    return console.export_text()


def started(events: Events, jobid: int, rule: str, wildcards: dict, log: str) -> None:
    events.jobs[jobid] = Job(jobid, rule, wildcards, "", [], [log])
    events.running.add(jobid)


def test_a_running_stage_shows_its_step_loss_speed_and_eta(tmp_path: Path) -> None:
    trainer_prints(tmp_path / "logs/train/stage2.log", 2, [(1, 6.25, 1e-4), (2, 5.5, 2e-4)], total=40)
    bar = "answer demo_tg:  10%|#         | 4/40 [00:02<00:18]\ranswer demo_tg:  20%|##        | 8/40"
    (tmp_path / "logs/eval").mkdir(parents=True)
    (tmp_path / "logs/eval/demo_tg.log").write_text("loading the checkpoint\n" + bar)
    events = Events()
    started(events, 7, "train_stage", {"stage": "2"}, "logs/train/stage2.log")
    started(events, 9, "evaluate_benchmark", {"benchmark": "demo_tg"}, "logs/eval/demo_tg.log")
    text = rendered(events, tmp_path)

    lines = text.splitlines()
    assert lines[0].startswith("running: 2 jobs")
    stage = next(line for line in lines if line.startswith("  train_stage[stage=2]: "))
    assert "stage 2 step 2/40 loss 5.5000 lr 2.00e-04" in stage and " tok/s eta " in stage
    assert "step 1/40" not in text  # only the newest line
    assert "  evaluate_benchmark[benchmark=demo_tg]: answer demo_tg:  20%|##        | 8/40" in lines
    assert "10%" not in text  # the bar's older state, overwritten after its carriage return


def test_finished_and_silent_jobs_show_no_line(tmp_path: Path) -> None:
    trainer_prints(tmp_path / "logs/train/stage1.log", 1, [(3, 4.0, 1e-3)], total=3)
    events = Events()
    started(events, 1, "train_stage", {"stage": "1"}, "logs/train/stage1.log")
    started(events, 2, "cache_features", {"modality": "video", "shard": "0"}, "logs/features/video/shard0.log")
    assert "train_stage[stage=1]: stage 1 step 3/3" in rendered(events, tmp_path)
    events.running.discard(1)  # finished; the feature job has not written its log yet
    assert rendered(events, tmp_path).strip() == "running: 2 jobs"


def test_last_line_reads_only_the_end_of_a_long_log(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("x" * 100_000 + "\nfirst\nnewest  \n\n")
    assert last_line(log) == "newest"
    assert last_line(tmp_path / "missing.log") == ""
