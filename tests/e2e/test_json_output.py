"""Every `--json` output parses: stdout holds one JSON document, everything else goes to stderr.

.venv/bin/pytest tests/e2e/test_json_output.py -q      # a tiny finished project, then every command

Each command runs in a process that imported DeepSpeed and transformers first, as a notebook or
a script would: their loggers then hold the real stdout (DeepSpeed's handler keeps the
`sys.stdout` of its import), so whatever they log while the command runs must still go
elsewhere. `ground bench train` also runs as a plain `ground`, where DeepSpeed's accelerator
warning and the JIT build lines come from inside the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from release_fixture import write_release

pytestmark = pytest.mark.e2e
STAGE = "lr: 2.0e-3, batch_size: 4, grad_accum: 1, epochs: 1.0, save_every: 100"
TINY = [
    "download.demo.splits={train: 8, val: 2, test: 2}",
    "download.models.vocab_size=400",
    "download.models.pretrain={image_encoder: 4, frame_encoder: 4, audio_encoder: 4, llm: 4}",
    "features.shard_size=8",
    "train.max_length=512",
    "eval.limit=2",
    *(f"train.stage{n}={{{STAGE}, alpha: 0.0}}" for n in (1, 2, 3)),
]
SETS = [x for s in TINY for x in ("--set", s)]
# The imports' own banners are the caller's output, not the command's: they go to stderr here.
PRELOADED = """
import os, sys
saved = os.dup(1)
os.dup2(2, 1)
import deepspeed, transformers
sys.stdout.flush()
os.dup2(saved, 1)
transformers.logging.set_verbosity_info()
from ground_cli.main import app
app(sys.argv[1:], prog_name="ground")
"""


def ground(project: Path, *args: str, preloaded: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *(["-c", PRELOADED] if preloaded else ["-m", "ground_cli.main"]), *args]
    env = os.environ | {"PYTHONPATH": str(project / "src"), "COLUMNS": "200"}
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=1200)


def parsed(proc: subprocess.CompletedProcess, codes: tuple[int, ...] = (0,)) -> object:
    assert proc.returncode in codes, f"{proc.args[3:]} exited {proc.returncode}:\n{proc.stderr}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"{proc.args[3:]}: stdout is not one JSON document ({err}):\n{proc.stdout[:2000]}") from None


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project) -> Path:
    """The tiny demo pipeline run to its end: trained stages, benchmark scores, a run store."""
    root = copy_project(tmp_path_factory.mktemp("json"))
    proc = ground(root, "run", *SETS, "--cores", "2", preloaded=False)
    assert proc.returncode == 0, proc.stderr
    return root


def test_run_store_and_plan_commands_print_only_json(project):
    plan = parsed(ground(project, "status", "--json", *SETS))
    assert plan["steps"] and all(job["state"] == "up-to-date" for job in plan["steps"])
    runs = parsed(ground(project, "runs", "--json"))
    pipeline = runs[0]["id"]
    assert parsed(ground(project, "runs", "--json", "--run", pipeline))
    assert parsed(ground(project, "metrics", "--json"))
    report = parsed(ground(project, "data", "check", "--json", *SETS), codes=(0, 1))
    assert report and all(row["status"] == "present" for row in report), report
    (default,) = parsed(ground(project, "exp", "list", "--json"))
    assert default["experiment"] == "default" and "demo_rec Acc@0.5" in default, default
    assert parsed(ground(project, "exp", "show", "default", "--json"))[0]["status"] == "ok"
    assert parsed(ground(project, "exp", "diff", "default", "default", "--json")) == []


def test_eval_prints_only_json_through_the_pipeline_and_from_a_checkpoint(project):
    through = parsed(ground(project, "eval", "demo_rec", "--json", *SETS))
    assert "Acc@0.5" in through, through
    # decodes with transformers in this process, and records a run of its own
    direct = parsed(ground(project, "eval", "demo_rec", "--json", *SETS, "--checkpoint",
                           "results/train/stage3/model"))  # fmt: skip
    assert "Acc@0.5" in direct, direct
    runs = parsed(ground(project, "runs", "--json"))  # newest first: the fixture's run scored too
    pipeline, adhoc = runs[-1]["id"], runs[0]["id"]
    compared = parsed(ground(project, "metrics", "--json", "--compare", pipeline, adhoc))
    assert any(row.get("b - a") is not None for row in compared)


def test_bench_commands_print_only_json(project, tmp_path):
    videos = parsed(ground(project, "bench", "features", "--json", "--videos", "1", "--seconds", "2",
                           "--frames", "2", "--out", str(tmp_path / "videos")))  # fmt: skip
    assert set(videos["methods"]) >= {"decode_all"}
    startup = parsed(ground(project, "bench", "cli", "--json", "--runs", "1", "--warmup", "0", *SETS))
    assert set(startup["commands"]) == {"ground --help", "ground status", "ground run"}
    for preloaded in (True, False):
        proc = ground(project, "bench", "train", "--json", "--steps", "1", "--warmup", "0",
                      "--batch", "2", preloaded=preloaded)  # fmt: skip
        assert parsed(proc)["ratio"] > 0


def test_import_prints_only_its_json_summary(project, tmp_path):
    src = write_release(tmp_path / "release", fmt="safetensors")
    summary = parsed(ground(project, "import", "groundinggpt", str(src), "--out", str(tmp_path / "out")))
    assert summary["tensors"] == summary["mapped"] + summary["dropped"]
