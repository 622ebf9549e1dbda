"""`ground run --until generate` with the openai backend against a local OpenAI-compatible server.

.venv/bin/pytest tests/e2e/test_generate_openai.py

The project is copied to a temporary folder and `ground` runs as a subprocess on the tiny demo
corpus, as in test_pipeline.py; the GPT service is played by tests/fixtures/openai_server.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from openai_server import FakeOpenAI  # noqa: E402

pytestmark = pytest.mark.e2e
KEY = "sk-test-SECRET123"
TINY = ["download.demo.splits={train: 4, val: 1, test: 1}", "download.models.vocab_size=400",
        "download.models.pretrain={image_encoder: 4, frame_encoder: 4, audio_encoder: 4, llm: 4}"]


def ground_run(project: Path, url: str) -> subprocess.CompletedProcess:
    sets = [*TINY, "generate.backend=openai", f"generate.base_url={url}", "generate.max_retries=2"]
    cmd = [sys.executable, "-m", "ground_cli.main", "run", "--until", "generate", "--cores", "2"]
    cmd += [x for s in sets for x in ("--set", s)]
    env = os.environ | {"PYTHONPATH": str(project / "src"), "OPENAI_API_KEY": KEY}
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    assert KEY not in proc.stdout + proc.stderr
    return proc


def generate_metrics(project: Path) -> list[dict[str, float]]:
    con = duckdb.connect(str(project / "results/ground.duckdb"), read_only=True)
    rows = con.execute(
        "select m.run_id, m.name, m.value from metrics m join runs r on r.id = m.run_id"
        " where m.benchmark = 'generate' order by r.started"
    ).fetchall()
    con.close()
    runs: dict[str, dict[str, float]] = {}
    for run_id, name, value in rows:
        runs.setdefault(run_id, {})[name] = value
    return list(runs.values())


def test_openai_backend_end_to_end(tmp_path: Path, copy_project) -> None:
    project = copy_project(tmp_path)
    with FakeOpenAI(["429", "500"]) as server:
        ground_run(project, server.url)
        first = server.completions
        manifest = json.loads((project / "results/generate/dialogues.manifest.json").read_text())
        records = (project / "results/generate/dialogues.jsonl").read_text().splitlines()
        assert manifest["backend"] == "openai" and manifest["requests"] == first - 2
        assert len(records) == manifest["records_out"] > 0
        assert {r["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
        # Same recipe, nothing changed: Snakemake runs nothing; forced, the cache answers.
        (project / "results/generate/dialogues.jsonl").unlink()
        ground_run(project, server.url)
        assert server.completions == first
    again = json.loads((project / "results/generate/dialogues.manifest.json").read_text())
    assert again["requests"] == 0 and again["cache_hits"] == manifest["requests"]
    metrics = generate_metrics(project)
    assert metrics[0]["requests"] == manifest["requests"] and metrics[0]["tokens_in"] > 0
    assert metrics[-1]["requests"] == 0 and metrics[-1]["cache_hits"] == manifest["requests"]
    for root in ("results", "logs", "cache", ".snakemake"):
        for path in (project / root).rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
