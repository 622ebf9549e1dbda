"""Job records and the DuckDB run store, without Snakemake: a fake job object stands in.

pytest tests/unit/test_tracking.py
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from ground.tracking import db, queries
from ground.tracking.record import find_records, is_secret_key, redact, tracked, write_job_record

API_KEY = "sk-test-DO-NOT-STORE-4f1c2a9e"


class Named(list):
    """Just enough of Snakemake's Namedlist: a list whose entries also have names."""

    def __init__(self, **named):
        super().__init__(named.values())
        self._named = named
        for key, value in named.items():
            setattr(self, key, value)

    def items(self):
        return self._named.items()


def fake_job(tmp_path: Path, *, rule: str = "convert_dataset", code: str = "abcd" * 4):
    out = tmp_path / "results" / "convert"
    return SimpleNamespace(
        rule=rule,
        wildcards=Named(dataset="refcoco", split="val"),
        params=Named(code=code, root=tmp_path / "resources", cfg={"seed": 1, "hf_token": API_KEY}),
        output=Named(
            records=str(out / "val.jsonl"),
            shards=str(out / "val.shards"),
            record=str(out / "val.job.json"),
        ),
        log=Named(log=str(tmp_path / "logs" / "val.log")),
    )


def run_job(job, *, fail: bool = False) -> Path:
    records, shards = Path(job.output.records), Path(job.output.shards)
    with tracked(job) as rec:
        records.parent.mkdir(parents=True, exist_ok=True)
        records.write_text('{"id": 1}\n')
        (shards / "sub").mkdir(parents=True, exist_ok=True)
        (shards / "a.bin").write_bytes(b"\x00" * 3000)
        (shards / "sub" / "b.bin").write_bytes(b"b")
        rec.metric("acc@0.5", 0.5, benchmark="refcoco", split="val")
        rec.note("records", 1)
        if fail:
            raise RuntimeError("step failed")
    return Path(job.output.record)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- records


def test_tracked_writes_record(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUND_RUN_ID", "20260101-000000-beef")
    job = fake_job(tmp_path)
    record = json.loads(run_job(job).read_text())

    assert record["schema"] == 1
    assert record["run_id"] == "20260101-000000-beef"
    assert record["rule"] == "convert_dataset"
    assert record["wildcards"] == {"dataset": "refcoco", "split": "val"}
    assert record["params"]["root"] == str(tmp_path / "resources")  # Path made JSON-safe
    assert record["params"]["cfg"] == {"seed": 1, "hf_token": "***"}
    assert record["code"] == "abcd" * 4
    assert record["log"] == job.log[0]
    started = datetime.fromisoformat(record["started"])
    finished = datetime.fromisoformat(record["finished"])
    assert started.utcoffset().total_seconds() == 0 and started <= finished

    shards = Path(job.output.shards)
    expected = [Path(job.output.records), shards / "a.bin", shards / "sub" / "b.bin"]
    assert record["artifacts"] == [
        {"path": str(p), "size": p.stat().st_size, "sha256": sha(p)} for p in expected
    ]
    assert record["metrics"] == [
        {"name": "acc@0.5", "value": 0.5, "benchmark": "refcoco", "split": "val"}
    ]
    assert record["notes"] == {"records": 1}
    assert API_KEY not in Path(job.output.record).read_text()


def test_exception_writes_no_record(tmp_path):
    job = fake_job(tmp_path)
    with pytest.raises(RuntimeError, match="step failed"):
        run_job(job, fail=True)
    assert not Path(job.output.record).exists()
    assert not list(Path(job.output.record).parent.glob("*.tmp-*"))


def test_rule_without_record_output_fails_before_the_work(tmp_path):
    job = fake_job(tmp_path)
    job.output = Named(records=str(tmp_path / "x.jsonl"))
    with pytest.raises(ValueError, match=r"\.job\.json"), tracked(job):
        pytest.fail("the body must not run")


def test_missing_output_is_reported(tmp_path):
    job = fake_job(tmp_path)
    with pytest.raises(FileNotFoundError, match="val.jsonl"), tracked(job):
        pass


def test_metric_rejects_non_numbers(tmp_path):
    with pytest.raises(TypeError, match="not a number"), tracked(fake_job(tmp_path)) as rec:
        rec.metric("acc", "high")


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("OPENAI_API_KEY", True),
        ("apiKey", True),
        ("hf_token", True),
        ("client-secret", True),
        ("db_password", True),
        ("tokenizer", False),
        ("max_tokens", False),
        ("secretary", False),
    ],
)
def test_secret_key_names(key, secret):
    assert is_secret_key(key) is secret


def test_redact_is_recursive():
    cfg = {"judge": {"api_key": API_KEY, "model": "m"}, "runs": [{"token": API_KEY}]}
    assert redact(cfg) == {"judge": {"api_key": "***", "model": "m"}, "runs": [{"token": "***"}]}


# ---------------------------------------------------------------------------- store


def start(tmp_path: Path, config: dict | None = None) -> tuple[Path, str]:
    store = tmp_path / "ground.duckdb"
    run_id = db.start_run(
        store,
        config=config or {"seed": 1},
        targets=["all"],
        command_line="ground run all",
        workdir=tmp_path,
    )
    return store, run_id


def test_start_ingest_finish(tmp_path, monkeypatch):
    store, run_id = start(tmp_path)
    assert len(run_id.split("-")) == 3 and len(run_id) == len("20261124-121530-a1b2")
    monkeypatch.setenv("GROUND_RUN_ID", run_id)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # as in a SLURM batch job
    record = run_job(fake_job(tmp_path))

    assert find_records(tmp_path / "results") == [record]
    n = db.ingest_records(store, run_id, [record], step_of={"convert_dataset": "convert"})
    db.finish_run(store, run_id, "ok")
    assert n == 1

    [run] = queries.list_runs(store)
    assert run["id"] == run_id and run["status"] == "ok" and run["jobs"] == {"ok": 1}
    assert run["targets"] == ["all"] and run["git_commit"] is None  # tmp_path is not a repo
    assert run["finished"] >= run["started"]
    [job] = queries.list_jobs(store, run_id)
    assert job["step"] == "convert" and job["code_fingerprint"] == "abcd" * 4
    assert job["scheduler_job_id"] == "4242" and job["host"] == socket.gethostname()
    assert job["wildcards"] == {"dataset": "refcoco", "split": "val"}
    assert job["record_path"] == str(record)
    assert job["id"] == sha(record)[:16]

    files = json.loads(record.read_text())["artifacts"]
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.execute("SELECT path, size, sha256 FROM artifacts ORDER BY path").fetchall()
    assert rows == sorted((a["path"], a["size"], sha(Path(a["path"]))) for a in files)

    [metric] = queries.list_metrics(store, run_id)
    assert (metric["name"], metric["value"], metric["benchmark"]) == ("acc@0.5", 0.5, "refcoco")
    assert metric["rule"] == "convert_dataset" and queries.list_metrics(store) == [metric]


def test_ingest_is_idempotent(tmp_path):
    store, run_id = start(tmp_path)
    record = run_job(fake_job(tmp_path))
    assert db.ingest_records(store, run_id, [record]) == 1
    assert db.ingest_records(store, run_id, [record, record]) == 0
    with duckdb.connect(str(store), read_only=True) as con:
        counts = [
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("jobs", "artifacts", "metrics")
        ]
    assert counts == [1, 3, 1]


def test_record_run_id_wins(tmp_path):
    store, run_id = start(tmp_path)
    record = run_job(fake_job(tmp_path))  # GROUND_RUN_ID unset: record has run_id null
    data = json.loads(record.read_text())
    data.pop("schema")
    write_job_record(record, **{**data, "run_id": "older-run"})
    db.ingest_records(store, run_id, [record])
    assert queries.list_jobs(store, run_id) == []
    assert len(queries.list_jobs(store, "older-run")) == 1


def test_bad_records_are_reported_not_skipped(tmp_path):
    store, run_id = start(tmp_path)
    good = run_job(fake_job(tmp_path))
    broken = tmp_path / "broken.job.json"
    broken.write_text("{ not json")
    wrong = write_job_record(tmp_path / "wrong.job.json", rule="r", started="x", finished="y")
    with pytest.raises(db.RecordError) as info:
        db.ingest_records(store, run_id, [broken, good, wrong])
    assert info.value.ingested == 1
    assert [p for p, _ in info.value.errors] == [broken, wrong]
    assert "broken.job.json" in str(info.value) and "ISO 8601" in str(info.value)
    assert len(queries.list_jobs(store, run_id)) == 1


def test_record_failure(tmp_path):
    store, run_id = start(tmp_path)
    kwargs = {
        "rule": "train_stage",
        "wildcards": {"stage": "1"},
        "log_path": Path("logs/train/1.log"),
        "started": "2026-01-01T10:00:00+02:00",
        "finished": None,
    }
    job_id = db.record_failure(store, run_id, **kwargs, step="train")
    assert db.record_failure(store, run_id, **kwargs) == job_id  # reported twice: one row
    [job] = queries.list_jobs(store, run_id)
    assert (job["status"], job["step"], job["log_path"]) == ("failed", "train", "logs/train/1.log")
    assert job["started"] == datetime(2026, 1, 1, 8, 0)  # stored as UTC
    [run] = queries.list_runs(store)
    assert (run["jobs"], run["jobs_ok"], run["jobs_failed"]) == ({"failed": 1}, 0, 1)


def test_readers_on_missing_store(tmp_path):
    missing = tmp_path / "none.duckdb"
    assert queries.list_runs(missing) == [] and queries.list_jobs(missing, "x") == []
    assert queries.list_metrics(missing) == [] and not missing.exists()


def test_readers_open_read_only_from_another_process(tmp_path):
    store, run_id = start(tmp_path)
    code = "import sys; from ground.tracking import queries; print(queries.list_runs(sys.argv[1])[0]['id'])"
    with duckdb.connect(str(store), read_only=True):  # a reader here does not block readers
        out = subprocess.run(
            [sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True
        )
    assert out.stdout.strip() == run_id


def test_readers_wait_for_a_brief_writer(tmp_path):
    store, run_id = start(tmp_path)
    hold = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True);"
        " time.sleep(1.0); con.close()"
    )
    writer = subprocess.Popen([sys.executable, "-c", hold, str(store)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == b"held"
        assert [r["id"] for r in queries.list_runs(store)] == [run_id]  # retried until released
    finally:
        writer.wait(timeout=30)


def test_git_commit_marks_dirty_trees(tmp_path):
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)
    head = db.git_commit(tmp_path)
    assert head and len(head) == 40
    (tmp_path / "f.txt").write_text("2")
    assert db.git_commit(tmp_path) == f"{head}-dirty"


def test_secrets_never_reach_the_database_file(tmp_path, monkeypatch):
    marker = "VISIBLE-MARKER-7d1e"  # proves plain strings are findable in the raw bytes
    config = {"judge": {"api_key": API_KEY, "model": marker}, "hf_token": API_KEY}
    store = tmp_path / "ground.duckdb"
    run_id = db.start_run(
        store,
        config=config,
        targets=["all"],
        command_line=f"ground run --config judge.api_key={API_KEY}",
        workdir=tmp_path,
    )
    monkeypatch.setenv("GROUND_RUN_ID", run_id)
    db.ingest_records(store, run_id, [run_job(fake_job(tmp_path))])
    db.finish_run(store, run_id, "ok")
    [run] = queries.list_runs(store)
    assert run["command_line"] == "ground run --config judge.api_key=***"

    with duckdb.connect(str(store)) as con:
        con.execute("CHECKPOINT")
        stored = con.execute("SELECT config FROM runs").fetchone()[0]
    assert json.loads(stored)["judge"] == {"api_key": "***", "model": marker}
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("ground.duckdb*"))
    assert marker.encode() in raw
    assert API_KEY.encode() not in raw
