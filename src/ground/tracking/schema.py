"""Tables of the DuckDB run store (`ground.tracking.db`), and how rows go into them.

    ensure_schema(con)  # inside the caller's transaction
    insert(con, "runs", id=run_id, status=RUN_RUNNING)  # columns by name

All TIMESTAMP columns hold naive UTC datetimes.
"""

from __future__ import annotations

from typing import Any

import duckdb

SCHEMA_VERSION = 1
# Values of the `status` columns that ground itself writes.
JOB_OK = "ok"
JOB_FAILED = "failed"
RUN_RUNNING = "running"

DDL = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        id VARCHAR PRIMARY KEY, started TIMESTAMP, finished TIMESTAMP, status VARCHAR,
        config_hash VARCHAR, git_commit VARCHAR, targets VARCHAR, command_line VARCHAR,
        config JSON)""",
    """CREATE TABLE IF NOT EXISTS jobs (
        id VARCHAR PRIMARY KEY, run_id VARCHAR, rule VARCHAR, step VARCHAR, wildcards JSON,
        status VARCHAR, started TIMESTAMP, finished TIMESTAMP, params JSON,
        code_fingerprint VARCHAR, log_path VARCHAR, record_path VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS artifacts (
        path VARCHAR, size BIGINT, sha256 VARCHAR, job_id VARCHAR, run_id VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id VARCHAR, job_id VARCHAR, name VARCHAR, value DOUBLE, benchmark VARCHAR,
        split VARCHAR, step BIGINT)""",
    # `step` orders the points of a curve (training loss); stores made before it get it added.
    "ALTER TABLE metrics ADD COLUMN IF NOT EXISTS step BIGINT",
    # sha256 of the checkpoint (or predictions file) and of the data an evaluation score is of.
    "ALTER TABLE metrics ADD COLUMN IF NOT EXISTS checkpoint_sha256 VARCHAR",
    "ALTER TABLE metrics ADD COLUMN IF NOT EXISTS data_sha256 VARCHAR",
    # where a job ran: the node's name and, on a cluster, the scheduler's job id (SLURM_JOB_ID)
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS host VARCHAR",
    "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS scheduler_job_id VARCHAR",
    # the named experiment a run belongs to (`ground run --exp`; "default" without) and its --set list
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS experiment VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS overrides JSON",
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and stamp the version; the caller holds the transaction."""
    for ddl in DDL:
        con.execute(ddl)
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    version = row[0] if row else None
    if version is None:
        con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
    elif version > SCHEMA_VERSION:
        raise RuntimeError(
            f"run store schema {version} is newer than this ground ({SCHEMA_VERSION})"
        )


def insert(con: duckdb.DuckDBPyConnection, table: str, **values: Any) -> None:
    """INSERT naming its columns, so a schema change cannot shift values into wrong ones."""
    columns = ", ".join(values)  # keyword names from ground's code, never from input
    marks = ", ".join("?" * len(values))
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values()))
