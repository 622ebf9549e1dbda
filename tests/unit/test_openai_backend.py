"""The openai backend against a local OpenAI-compatible server: retries, filter, cache, budget,
dry run and the API key's secrecy.

.venv/bin/pytest tests/unit/test_openai_backend.py
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from test_generate import write_sources

from ground.common.config import Generate
from ground.generate import openai_backend
from ground.generate.openai_backend import BackendError
from ground.generate.run import InvalidDialogue, generate_instructions, validate_dialogue

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from openai_server import FakeOpenAI  # noqa: E402

KEY = "sk-test-SECRET123"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_backend, "BACKOFF_BASE_S", 0.001)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def run(root: Path, server: FakeOpenAI, sources: list[Path], **cfg: Any) -> tuple[list, dict]:
    out, manifest = root / "gen" / "dialogues.jsonl", root / "gen" / "manifest.json"
    options = asdict(Generate()) | {
        "backend": "openai",
        "base_url": server.url,
        "cache_dir": str(root / "cache"),
        "max_retries": 2,
        "timeout_s": 10.0,
    }
    summary = generate_instructions(sources, out, manifest, options | cfg)
    assert json.loads(manifest.read_text()) == summary
    return [json.loads(line) for line in out.read_text().splitlines()], summary


def test_retries_on_429_and_500_then_succeeds(tmp_path: Path) -> None:
    sources = write_sources(tmp_path, images=1, videos=0)
    with FakeOpenAI(["429", "500"]) as server:
        records, summary = run(tmp_path, server, sources)
    assert server.completions == 3
    assert summary["requests"] == 1 and summary["records_out"] == 1
    assert summary["tokens_in"] > 0 and summary["tokens_out"] > 0
    assert [t["from"] for t in records[0]["conversations"]] == ["human", "gpt"] * 3
    assert records[0]["conversations"][0]["value"].startswith("<image>\n")


def test_gives_up_after_max_retries(tmp_path: Path) -> None:
    sources = write_sources(tmp_path, images=1, videos=0)
    with FakeOpenAI(default="503") as server, pytest.raises(BackendError, match="3 attempt"):
        run(tmp_path, server, sources)
    assert server.completions == 3


def test_a_client_error_is_not_retried_and_the_key_is_redacted(tmp_path: Path) -> None:
    sources = write_sources(tmp_path, images=1, videos=0)
    with FakeOpenAI(["401"]) as server, pytest.raises(BackendError) as err:
        run(tmp_path, server, sources)
    assert server.completions == 1 and "HTTP 401" in str(err.value)
    # The server quoted the key back; our message must not.
    assert KEY not in str(err.value) and "***" in str(err.value)


def test_a_missing_key_names_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GROUND_NO_SUCH_KEY", raising=False)
    sources = write_sources(tmp_path, images=1, videos=0)
    with FakeOpenAI() as server, pytest.raises(BackendError, match="GROUND_NO_SUCH_KEY"):
        run(tmp_path, server, sources, api_key_env="GROUND_NO_SUCH_KEY")
    assert server.completions == 0


def test_malformed_and_hallucinated_answers_are_rejected(tmp_path: Path) -> None:
    sources = write_sources(tmp_path, images=2, videos=2)
    with FakeOpenAI(["malformed", "hallucinated"]) as server:
        # One request at a time, so the script's answers go to the groups in order.
        records, summary = run(tmp_path, server, sources, max_concurrency=1)
    assert summary["rejected_by_reason"] == {"box not in annotations": 1, "malformed response": 1}
    assert summary["requests"] == 4 and summary["records_out"] == 2
    assert {"video" in r for r in records} == {True}


def test_second_run_sends_nothing(tmp_path: Path) -> None:
    sources = write_sources(tmp_path)
    with FakeOpenAI() as server:
        first, summary = run(tmp_path, server, sources)
        assert summary["requests"] == 5 and server.completions == 5
        second, again = run(tmp_path, server, sources)
    assert server.completions == 5 and again["requests"] == 0 and again["cache_hits"] == 5
    assert again["tokens_in"] == 0 and first == second


def test_request_budget(tmp_path: Path) -> None:
    sources = write_sources(tmp_path)
    with FakeOpenAI() as server:
        records, summary = run(tmp_path, server, sources, max_requests=2)
        assert server.completions == 2 and summary["requests"] == 2
        assert summary["rejected_by_reason"] == {"budget exhausted": 3}
        assert summary["budget_exhausted"] and len(records) == 2
        # The next run pays only for what is missing.
        records, summary = run(tmp_path, server, sources, max_requests=0)
    assert summary["requests"] == 3 and summary["cache_hits"] == 2 and len(records) == 5


def test_dry_run_sends_nothing_and_estimates(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")  # a dry run needs no key
    sources = write_sources(tmp_path, images=1, videos=1)
    with FakeOpenAI() as server:
        records, summary = run(tmp_path, server, sources, dry_run=True)
    assert server.completions == 0 and records == [] and summary["requests"] == 0
    estimate = summary["estimate"]
    assert estimate["requests"] == 2 and estimate["tokens_in"] > 100
    assert estimate["cost_usd_max"] > 0
    printed = capsys.readouterr().out
    assert "--- system" in printed and "--- assistant" in printed and "dry run" in printed


def test_the_key_is_nowhere(tmp_path: Path, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    sources = write_sources(tmp_path)
    with FakeOpenAI(["429", "malformed"]) as server:
        run(tmp_path, server, sources)
        run(tmp_path, server, sources)
    # Not vacuous: the key did travel, in the Authorization header only.
    assert {r["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    assert all(KEY not in json.dumps(r["body"]) for r in server.requests)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and "cache" in p.parts for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err + caplog.text


def test_filter_reasons() -> None:
    annotation = {"kind": "video", "events": [{"text": "x", "span": [0.1, 0.5]}]}

    def reason(text: str, pairs: int | None = None) -> str:
        with pytest.raises(InvalidDialogue) as err:
            validate_dialogue({"text": text}, annotation, pairs)
        return err.value.reason

    assert reason("no format at all") == "malformed response"
    assert reason("Answer: first?") == "malformed response"
    assert reason("Question: a\nQuestion: b") == "malformed response"
    assert reason("Question: when?\nAnswer: {0.10, 1.50}") == "value outside 0..1"
    assert reason("Question: when?\nAnswer: {0.50, 0.10}") == "unparsable box or span"
    assert reason("Question: when?\nAnswer: {0.60, 0.90}") == "span not in annotations"
    assert reason("Question: when?\nAnswer: {0.10, 0.50}" + " yes" * 500) == "answer too long"
    assert reason("Question: when?\nAnswer: {0.10, 0.50}", pairs=2) == "wrong number of turns"
    good = "Question: when?\nAnswer: During {0.10, 0.50},\nand after."
    assert validate_dialogue({"text": good}, annotation, 1)[1]["value"].endswith("and after.")
