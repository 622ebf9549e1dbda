"""The DuckDB run store: runs, jobs, artifacts and metrics of every `ground` invocation.

Only the `ground` head process writes (one short read-write connection per call):

    run_id = db.start_run(path, config=cfg, targets=["all"], command_line="ground run", workdir=Path.cwd())
    ...  # Snakemake runs; every job writes a *.job.json record (ground.tracking.record)
    db.ingest_records(path, run_id, find_records(Path("results")), step_of=step_of_rule)
    db.finish_run(path, run_id, "ok")

Readers (`list_runs`, `list_jobs`, `list_metrics`, `compare_metrics`) are in
`ground.tracking.queries`.

Tables: `ground.tracking.schema`, TIMESTAMPs in UTC. Secrets (keys named like api_key, token,
secret, password) become "***" before anything reaches the file. DuckDB allows one read-write
process or many read-only ones, so a connection that meets another process's lock is retried.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ground.tracking.record import json_safe, read_job_record, redact
from ground.tracking.schema import JOB_FAILED, JOB_OK, RUN_RUNNING, ensure_schema, insert
from ground.tracking.schema import SCHEMA_VERSION as SCHEMA_VERSION  # re-exported

# rule -> step name; a callable also gets the job's wildcards (stage1..3 share one rule).
StepOf = Callable[[str, dict], str | None] | Mapping[str, str] | None

# `--config judge.api_key=sk-...` on a command line: keep the key name, hide the value.
_SECRET_ARG = re.compile(
    r"(?i)(\b[\w.-]*(?:api[_-]?key|token|secret|passw(?:or)?d)[\w.-]*\s*[=:]\s*)(\S+)"
)


class RecordError(ValueError):
    """Some job records could not be ingested; `.errors` lists (path, reason).

    Raised after the readable records were ingested (`.ingested` of them), so one corrupt file
    does not lose a whole run's tracking, yet is never silently skipped.
    """

    def __init__(self, errors: list[tuple[Path, str]], ingested: int) -> None:
        self.errors = errors
        self.ingested = ingested
        lines = "\n".join(f"  {path}: {reason}" for path, reason in errors)
        super().__init__(
            f"{len(errors)} job record(s) could not be ingested ({ingested} were):\n{lines}"
        )


class TrackingBusy(RuntimeError):
    """Another process kept the database locked for longer than we were willing to wait."""


# ---------------------------------------------------------------------------- connections


@contextmanager
def connect(
    db: Path, *, read_only: bool = False, wait_s: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection; retried while another process holds the file lock.

    The head process's writes last milliseconds and `ground runs` readers hold the file just
    as briefly, so waiting a little beats failing the whole pipeline's bookkeeping.
    """
    db = Path(db)
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(db), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise  # a missing or corrupt file will not get better by waiting
            if time.monotonic() > deadline:
                raise TrackingBusy(f"{db}: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    try:
        if not read_only:
            with _transaction(con):
                ensure_schema(con)
        yield con
    finally:
        con.close()


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()  # then re-raise: a half-ingested record must not stay behind
        raise
    con.commit()


# ---------------------------------------------------------------------------- runs


def start_run(
    db: Path, *, config: dict, targets: list[str], command_line: str, workdir: Path,
    experiment: str = "default", overrides: list[str] = (),
) -> str:
    """Insert a `running` row for this invocation and return its id (`20261124-121530-a1b2`);
    `overrides` are its `--set key=value` (secret-looking values hidden)."""
    now = datetime.now(UTC)
    run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    safe_config = redact(json_safe(config))
    with connect(db) as con, _transaction(con):
        insert(
            con, "runs", id=run_id, started=_naive_utc(now), status=RUN_RUNNING,
            config_hash=config_hash(safe_config), git_commit=git_commit(workdir),
            targets=json.dumps(list(targets)), command_line=redact_command_line(command_line),
            config=json.dumps(safe_config), experiment=experiment,
            overrides=json.dumps([redact_command_line(o) for o in overrides]),
        )  # fmt: skip
    return run_id


def finish_run(db: Path, run_id: str, status: str) -> None:
    """Stamp the run's end time and final status (e.g. "ok", "failed", "interrupted")."""
    with connect(db) as con, _transaction(con):
        updated = con.execute(
            "UPDATE runs SET finished = ?, status = ? WHERE id = ?",
            [_naive_utc(datetime.now(UTC)), status, run_id],
        ).fetchone()
        if not updated or updated[0] != 1:
            raise KeyError(f"{db}: no run {run_id!r} to finish")


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of `config` (sorted keys, no spaces)."""
    canonical = json.dumps(json_safe(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def git_commit(workdir: Path) -> str | None:
    """HEAD of the repository at `workdir`, `-dirty` if it has changes; None outside git."""
    try:
        head = _git(workdir, "rev-parse", "HEAD")
        if head is None:
            return None
        dirty = _git(workdir, "status", "--porcelain")
    except FileNotFoundError:  # no git binary: the run is still worth recording
        return None
    return f"{head}-dirty" if dirty else head


def _git(workdir: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=workdir, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def redact_command_line(command_line: str) -> str:
    """Hide values of secret-looking `key=value` arguments (`--config hf_token=...`)."""
    return _SECRET_ARG.sub(r"\1***", command_line)


# ---------------------------------------------------------------------------- jobs


def ingest_records(db: Path, run_id: str, records: list[Path], step_of: StepOf = None) -> int:
    """Insert jobs, artifacts and metrics from job records; return how many were new.

    The job id is the record file's content hash, so ingesting the same record twice is a
    no-op. A record's own `run_id` (set by the run that produced it) wins over `run_id`.
    Raises RecordError, after ingesting the rest, if any record cannot be read.
    """
    parsed: list[tuple[Path, str, dict[str, Any]]] = []
    errors: list[tuple[Path, str]] = []
    for path in records:
        try:
            job_id, record = read_job_record(Path(path))
        except (OSError, ValueError, TypeError) as exc:
            errors.append((Path(path), str(exc)))
            continue
        parsed.append((Path(path), job_id, record))
    ingested = 0
    if parsed:
        with connect(db) as con:
            for path, job_id, record in parsed:
                with _transaction(con):
                    ingested += _insert_record(con, path, job_id, record, run_id, step_of)
    if errors:
        raise RecordError(errors, ingested)
    return ingested


def _insert_record(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    job_id: str,
    record: dict[str, Any],
    run_id: str,
    step_of: StepOf,
) -> int:
    if con.execute("SELECT 1 FROM jobs WHERE id = ?", [job_id]).fetchone():
        return 0
    run = record.get("run_id") or run_id
    rule = record["rule"]
    wildcards = record.get("wildcards") or {}
    insert(
        con, "jobs", id=job_id, run_id=run, rule=rule, step=_step(step_of, rule, wildcards),
        wildcards=json.dumps(json_safe(record.get("wildcards") or {})), status=JOB_OK,
        started=_parse_time(record["started"]), finished=_parse_time(record["finished"]),
        params=json.dumps(redact(json_safe(record.get("params") or {}))),
        code_fingerprint=record.get("code"), log_path=record.get("log"), record_path=str(path),
        host=record.get("host"), scheduler_job_id=record.get("scheduler_job_id"),
    )  # fmt: skip
    artifacts = [
        [a["path"], a["size"], a["sha256"], job_id, run] for a in record.get("artifacts", [])
    ]
    if artifacts:
        con.executemany("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)", artifacts)
    metrics = [
        [run, job_id, m["name"], float(m["value"]), m.get("benchmark"), m.get("split"), m.get("step"),
         m.get("checkpoint"), m.get("data")]  # fmt: skip
        for m in record.get("metrics", [])
    ]
    if metrics:
        con.executemany(
            "INSERT INTO metrics (run_id, job_id, name, value, benchmark, split, step,"
            " checkpoint_sha256, data_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            metrics,
        )
    return 1


def record_failure(
    db: Path,
    run_id: str,
    *,
    rule: str,
    wildcards: dict,
    log_path: str | Path | None,
    started: datetime | str | None = None,
    finished: datetime | str | None = None,
    step: str | None = None,
) -> str:
    """Insert a `failed` job learned from Snakemake's log events; return its job id.

    The id hashes (run, rule, wildcards, started), so reporting the same failure twice is a
    no-op. Times may be ISO 8601 strings or datetimes (naive ones are taken as UTC).
    """
    wildcards = json_safe(wildcards)
    start = _parse_time(started) if started is not None else None
    end = _parse_time(finished) if finished is not None else None
    key = json.dumps([run_id, rule, wildcards, str(start)], sort_keys=True)
    job_id = "f" + hashlib.sha256(key.encode()).hexdigest()[:15]
    with connect(db) as con, _transaction(con):
        if con.execute("SELECT 1 FROM jobs WHERE id = ?", [job_id]).fetchone():
            return job_id
        insert(
            con, "jobs", id=job_id, run_id=run_id, rule=rule, step=step,
            wildcards=json.dumps(wildcards), status=JOB_FAILED, started=start, finished=end,
            log_path=str(log_path) if log_path is not None else None,
        )  # fmt: skip
    return job_id


def _step(step_of: StepOf, rule: str, wildcards: dict) -> str | None:
    if step_of is None:
        return None
    if isinstance(step_of, Mapping):
        return step_of.get(rule)
    return step_of(rule, wildcards)


def _parse_time(value: datetime | str) -> datetime:
    """A naive UTC datetime: DuckDB binds aware datetimes as TIMESTAMPTZ in local time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"bad ISO 8601 time {value!r}") from exc
    return _naive_utc(value)


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value  # already UTC by this module's convention
    return value.astimezone(UTC).replace(tzinfo=None)
