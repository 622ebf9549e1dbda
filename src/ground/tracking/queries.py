"""Reading the DuckDB run store (`ground.tracking.db` writes it): runs, jobs, metrics.

    >>> from ground.tracking.queries import list_metrics
    >>> list_metrics(Path("results/ground.duckdb"), run_id="20261124-191044-7dba")

Every reader opens the file read-only and returns [] when there is no store (or no schema) yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ground.tracking.db import connect
from ground.tracking.schema import JOB_FAILED, JOB_OK


@contextmanager
def _reader(db: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """Read-only connection, or None when there is no store (or no schema) yet."""
    if not Path(db).is_file():
        yield None
        return
    with connect(db, read_only=True, wait_s=5.0) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        yield con if {"runs", "jobs", "metrics"} <= tables else None


def _dicts(cursor: duckdb.DuckDBPyConnection, json_cols: tuple[str, ...] = ()) -> list[dict]:
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        for col in json_cols:
            if isinstance(row.get(col), str):
                row[col] = json.loads(row[col])
    return rows


def list_runs(db: Path, limit: int = 20) -> list[dict]:
    """Newest runs first, with `jobs_ok`, `jobs_failed` and `jobs` ({status: count}).

    The stored config is left out (it can be large); query the `runs` table for it.
    """
    with _reader(db) as con:
        if con is None:
            return []
        runs = _dicts(
            con.execute(
                "SELECT id, started, finished, status, config_hash, git_commit, targets,"
                " command_line FROM runs ORDER BY started DESC, id DESC LIMIT ?",
                [limit],
            ),
            json_cols=("targets",),
        )
        counts = con.execute(
            "SELECT run_id, status, count(*) FROM jobs GROUP BY run_id, status"
        ).fetchall()
        # What the instruction-generation backend was asked for and used (the GPT bill).
        usage = con.execute(
            "SELECT run_id, name, sum(value) FROM metrics WHERE benchmark = 'generate'"
            " AND name IN ('requests', 'tokens_in', 'tokens_out') GROUP BY run_id, name"
        ).fetchall()
    by_run: dict[str, dict[str, int]] = {}
    for run, status, n in counts:
        by_run.setdefault(run, {})[status] = n
    spent: dict[str, dict[str, int]] = {}
    for run, name, total in usage:
        spent.setdefault(run, {})[name] = int(total)
    for run in runs:
        jobs = by_run.get(run["id"], {})
        # Flat counts too, for table columns; `jobs` keeps any other status.
        run |= {"jobs_ok": jobs.get(JOB_OK, 0), "jobs_failed": jobs.get(JOB_FAILED, 0)}
        run["jobs"] = jobs
        used = spent.get(run["id"], {})
        run |= {k: used.get(k, 0) for k in ("requests", "tokens_in", "tokens_out")}
    return runs


def list_jobs(db: Path, run_id: str) -> list[dict]:
    """The jobs of one run, in start order, with wildcards and params decoded."""
    with _reader(db) as con:
        if con is None:
            return []
        return _dicts(
            con.execute(
                "SELECT * FROM jobs WHERE run_id = ? ORDER BY started NULLS LAST, rule, id",
                [run_id],
            ),
            json_cols=("wildcards", "params"),
        )


def list_metrics(db: Path, run_id: str | None = None) -> list[dict]:
    """Metrics (of one run, or all), with the producing job's rule, step and wildcards."""
    with _reader(db) as con:
        if con is None:
            return []
        return _dicts(
            con.execute(
                "SELECT m.run_id, m.job_id, j.rule, j.step, j.wildcards, m.benchmark, m.split,"
                " m.name, m.value, m.step AS at_step, m.checkpoint_sha256, m.data_sha256, j.finished"
                " FROM metrics m"
                " LEFT JOIN jobs j ON j.id = m.job_id WHERE ? IS NULL OR m.run_id = ?"
                " ORDER BY j.finished NULLS LAST, m.benchmark, m.split, m.name, m.step",
                [run_id, run_id],
            ),
            json_cols=("wildcards",),
        )


def compare_metrics(db: Path, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """Scores of two runs side by side (curves left out), with B - A."""
    rows: dict[tuple, dict[str, Any]] = {}
    for column, run in (("a", run_a), ("b", run_b)):
        found = [m for m in list_metrics(db, run_id=run) if m.get("at_step") is None]
        if not found:
            raise ValueError(f"run {run!r} has no metrics (see `ground runs`)")
        for m in found:
            key = (m["benchmark"] or "", m["split"] or "", m["name"])
            rows.setdefault(key, {"benchmark": key[0], "split": key[1], "name": key[2]})[column] = m["value"]
    for row in rows.values():
        if row.get("a") is not None and row.get("b") is not None:
            row["b - a"] = row["b"] - row["a"]
    return [rows[k] for k in sorted(rows)]


def latest_runs(db: Path) -> dict[str, dict[str, Any]]:
    """Experiment name -> its newest run (status, started, git_commit, config, overrides), with
    `runs`: how many it has had. Runs from before experiments existed count as "default"."""
    with _reader(db) as con:
        if con is None:
            return {}
        query = "SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'"
        if "experiment" not in {r[0] for r in con.execute(query).fetchall()}:
            return {}  # no run since experiments exist (the next one adds the column)
        rows = _dicts(
            con.execute(
                "SELECT coalesce(experiment, 'default') AS experiment, id, status, started, git_commit,"
                " config, overrides, count(*) OVER (PARTITION BY coalesce(experiment, 'default')) AS runs"
                " FROM runs WHERE status IS DISTINCT FROM 'refused'"  # refused: another run held the folder
                " QUALIFY row_number() OVER (PARTITION BY coalesce(experiment, 'default')"
                " ORDER BY started DESC, id DESC) = 1"
            ),
            json_cols=("config", "overrides"),
        )
    return {row.pop("experiment"): row for row in rows}


def job_scores(db: Path, job_ids: list[str]) -> list[dict[str, Any]]:
    """The scores (not curves) the given jobs recorded: benchmark, split, name, value."""
    with _reader(db) as con:
        if con is None or not job_ids:
            return []
        return _dicts(
            con.execute(
                "SELECT job_id, benchmark, split, name, value FROM metrics"
                " WHERE step IS NULL AND list_contains(?, job_id) ORDER BY benchmark, split, name",
                [job_ids],
            )
        )
