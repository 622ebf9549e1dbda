"""The three training stages through the real DAG: DeepSpeed engines on CPU, real transformers
models, cached features, resumable checkpoints. Nothing is stubbed; sizes are tiny.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.e2e
STAGE = "lr: 2.0e-3, batch_size: 4, grad_accum: 2, epochs: 1.0, save_every: 2"
TINY = [
    "download.demo.splits={train: 16, val: 2, test: 2}",
    "download.models.vocab_size=400",
    "download.models.pretrain={image_encoder: 4, frame_encoder: 4, audio_encoder: 4, llm: 4}",
    "train.max_length=512",
    *(f"train.stage{n}={{{STAGE}, alpha: {0.0 if n == 1 else 0.2}}}" for n in (1, 2, 3)),
]


def ground(project: Path, command: str, *args: str, check: bool = True, popen: bool = False):
    sets = [x for s in TINY for x in ("--set", s)] if command in ("run", "status") else []
    cmd = [sys.executable, "-m", "ground_cli.main", command, *sets, *args]
    env = os.environ | {"PYTHONPATH": str(project / "src"), "COLUMNS": "200"}
    if popen:
        return subprocess.Popen(cmd, cwd=project, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project) -> Path:
    root = tmp_path_factory.mktemp("train")
    copy_project(root)
    ground(root, "run", "--until", "features")
    return root


def stage_summary(project: Path, stage: int) -> dict:
    record = json.loads((project / f"results/train/stage{stage}/train.job.json").read_text())
    return record["notes"]["summary"]


def test_killed_stage2_resumes_from_its_last_checkpoint(project):
    """Kill `ground run` (and the trainer) while stage 2 runs; the same command resumes it."""
    first = ground(project, "run", "--until", "stage3", popen=True)
    deadline = time.monotonic() + 900
    checkpoints = project / "cache/train"
    while time.monotonic() < deadline and first.poll() is None:
        if any(p.name.startswith("stage2-") and (p / "latest").is_file() for p in checkpoints.glob("*")):
            break
        time.sleep(0.2)
    assert first.poll() is None, "the run ended before stage 2 saved a checkpoint"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (project / "results/train/stage2/train.job.json").exists()

    ground(project, "run", "--until", "stage3")
    log = (project / "logs/train/stage2.log").read_text()
    assert "stage 2: resumed from step" in log
    summary = stage_summary(project, 2)
    assert summary["resumed_from"] > 0 and summary["steps"] > summary["resumed_from"]
    losses = [json.loads(x) for x in (project / "results/train/stage2/losses.jsonl").read_text().splitlines()]
    assert [e["step"] for e in losses] == list(range(1, summary["steps"] + 1))


def test_every_stage_leaves_a_loadable_checkpoint_a_plot_and_a_loss_curve(project):
    for stage in (1, 2, 3):
        model = project / f"results/train/stage{stage}/model"
        assert (model / "grounding.json").is_file() and (model / "adapters.safetensors").is_file()
        assert (model / "llm" / "tokenizer.json").is_file()
        assert (project / f"results/train/stage{stage}/loss.png").stat().st_size > 1000
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    points = con.execute(
        "select benchmark, count(*) from metrics where name = 'train_loss' group by benchmark"
    ).fetchall()
    assert {b for b, n in points if n > 0} == {"stage1", "stage2", "stage3"}


def test_tensorboard_and_the_log_show_every_step_of_every_stage(project):
    """`tensorboard --logdir results/` finds one run per stage, each step once with the loss of
    losses.jsonl (stage 2 too, killed and resumed above); the log has the lines `ground run`
    shows (cli/test_progress.py renders them)."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    boards = EventMultiplexer()
    boards.AddRunsFromDirectory(str(project / "results"))
    boards.Reload()
    assert {f"train/stage{n}/tensorboard" for n in (1, 2, 3)} <= set(boards.Runs())
    for stage in (1, 2, 3):
        out = project / f"results/train/stage{stage}"
        losses = [json.loads(x) for x in (out / "losses.jsonl").read_text().splitlines()]
        events = boards.Scalars(f"train/stage{stage}/tensorboard", "train/loss")
        assert [e.step for e in events] == [e["step"] for e in losses]
        assert all(abs(e.value - x["loss"]) <= 1e-5 * abs(x["loss"]) for e, x in zip(events, losses))
        speeds = boards.Scalars(f"train/stage{stage}/tensorboard", "train/tokens_per_s")
        assert len(speeds) == len(losses) and min(e.value for e in speeds) > 0
        last = len(losses)
        line = rf"stage {stage} step {last}/{last} loss \d+\.\d{{4}} lr \S+ \d+ tok/s eta 0:00:00"
        assert re.search(line, (project / f"logs/train/stage{stage}.log").read_text())


def test_stage2_lr_change_invalidates_stages_2_and_3_only(project):
    proc = ground(project, "status", "--json", "--until", "stage3", "--set", "train.stage2.lr=5e-4")
    states = {job["step"]: job["state"] for job in json.loads(proc.stdout)["steps"]}
    assert states["stage1"] == "up-to-date" and states["features"] == "up-to-date"
    assert states["stage2"] == "will-run" and states["stage3"] == "will-run"
    stage2 = next(j for j in json.loads(proc.stdout)["steps"] if j["step"] == "stage2")
    assert any(r["detail"].startswith("train.stage2.lr: 0.002 -> 0.0005") for r in stage2["reasons"])


def test_eval_step_scores_the_demo_benchmarks_next_to_baselines(project):
    proc = ground(project, "run", "--set", "eval.limit=2")  # the tiny test split has 2 media per modality
    for bench in ("demo_rec", "demo_tg", "demo_sl"):
        summary = json.loads((project / f"results/eval/{bench}/scores.json").read_text())
        scores = summary["scores"]["test"]
        assert scores["total"] == 2 and scores["parsed"] + scores["unparsable"] == 2
        assert f"baseline/{summary['headline']}" in scores and len(summary["checkpoint_sha256"]) == 64
        answers = (project / f"results/eval/{bench}/predictions.jsonl").read_text().splitlines()
        assert len(answers) == 2 and all("answer" in json.loads(a) for a in answers)
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    rows = con.execute(
        "select benchmark, name, checkpoint_sha256, data_sha256 from metrics where benchmark like 'demo_%'"
    ).fetchall()
    con.close()
    names = {(b, n) for b, n, _, _ in rows}
    assert {("demo_tg", "R1@0.5"), ("demo_tg", "baseline/R1@0.5"), ("demo_rec", "Acc@0.5"),
            ("demo_sl", "cIoU@0.5")} <= names  # fmt: skip
    assert all(c and d for _, _, c, d in rows)
    shown = ground(project, "metrics").stdout
    assert "demo_rec" in shown and "baseline/Acc@0.5" in shown, proc.stderr


def test_a_stage2_experiment_trains_from_the_shared_stage1_and_compares_side_by_side(project):
    """`--exp s2 --set train.stage2.lr=...` after the default experiment's full run: stage 1 is
    the default's checkpoint (the same files, hard-linked), stages 2 and 3 and the evaluation
    run in experiments/s2/, and `ground exp show` puts both experiments' scores side by side."""
    ground(project, "run", "--exp", "s2", "--set", "train.stage2.lr=5e-4", "--set", "eval.limit=2")
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    (run,) = con.execute("select id from runs where experiment = 's2'").fetchone()
    trained = con.execute(
        "select wildcards ->> 'stage', rule from jobs where run_id = ? and rule like 'train%' order by 1", [run]
    ).fetchall()
    ran = {r for (r,) in con.execute("select distinct rule from jobs where run_id = ?", [run]).fetchall()}
    con.close()
    assert trained == [("2", "train_stage"), ("3", "train_stage")]
    assert "cache_features" not in ran and "download_data" not in ran and "evaluate_benchmark" in ran
    ours, theirs = project / "experiments/s2/results/train", project / "results/train"
    weights = sorted(p.relative_to(theirs) for p in (theirs / "stage1/model").rglob("*") if p.is_file())
    assert weights and all((ours / w).read_bytes() == (theirs / w).read_bytes() for w in weights)
    assert all((ours / w).stat().st_ino == (theirs / w).stat().st_ino for w in weights)
    assert (ours / "stage2/model").stat().st_ino != (theirs / "stage2/model").stat().st_ino
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    boards = EventMultiplexer().AddRunsFromDirectory(str(project)).Reload()  # `--logdir .`
    # one run per experiment and stage it trained (s2's stage 1 is the default's, and its curve)
    runs = [f"results/train/stage{n}" for n in (1, 2, 3)] + [f"experiments/s2/results/train/stage{n}" for n in (2, 3)]
    assert all(boards.Scalars(f"{run}/tensorboard", "train/loss") for run in runs)
    assert "experiments/s2/results/train/stage1/tensorboard" not in boards.Runs()
    shown = json.loads(ground(project, "exp", "show", "default", "s2", "--json").stdout)
    assert [row["experiment"] for row in shown] == ["default", "s2"]
    assert [row["train.stage2.lr"] for row in shown] == [2e-3, 5e-4]
    assert not [k for k in shown[0] if k.startswith(("download.", "convert.", "eval."))]
    for row in shown:
        assert {"demo_rec Acc@0.5", "demo_rec baseline/Acc@0.5", "demo_tg R1@0.5", "demo_sl cIoU@0.5"} <= set(row)
    assert shown[0]["commit"] == shown[1]["commit"]
    compared = json.loads(ground(project, "metrics", "--compare", "default", "s2", "--json").stdout)
    assert {"demo_rec", "demo_tg", "demo_sl"} <= {row["benchmark"] for row in compared}
    table = ground(project, "exp", "show", "--md", "--sort", "demo_tg R1@0.5").stdout.splitlines()
    assert table[0].startswith("| experiment | status |") and len(table) == 4


def test_decoding_is_batch_invariant_and_resumes_from_its_partial_file(project, monkeypatch, tmp_path):
    """Left-padded batched greedy decoding with a KV cache gives each question the same answer
    as decoding it alone; answers already in the partial file are not decoded again."""
    from ground.eval.infer import answer_batch, load_model, predict
    from ground.train.data import FeatureLookup, load_records

    monkeypatch.chdir(project)
    checkpoint = Path("results/train/stage3/model")
    records = load_records([Path("results/convert/demo_image/test.jsonl"), Path("results/convert/demo_video/test.jsonl")])
    lookup = FeatureLookup({m: Path(f"results/features/{m}.index.jsonl") for m in ("image", "video", "audio")},
                           Path("cache/features"))  # fmt: skip
    model, tokenizer = load_model(checkpoint, "cpu", "auto")
    batch = records[:5]
    together = answer_batch(model, tokenizer, batch, lookup, 12)
    alone = [answer_batch(model, tokenizer, [r], lookup, 12)[0] for r in batch]
    assert together == alone
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps({"id": batch[0]["id"], "answer": "KEPT"}) + "\n")
    answers = predict(checkpoint, batch, lookup, partial, batch_size=2, max_new_tokens=12)
    assert answers[batch[0]["id"]] == "KEPT"
    assert [answers[r["id"]] for r in batch[1:]] == alone[1:]
    assert len(partial.read_text().splitlines()) == 5
