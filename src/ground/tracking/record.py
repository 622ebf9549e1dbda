"""Job records: the small JSON file each pipeline job writes next to its outputs.

In a rule's `script:` adapter (the rule declares an output ending in `.job.json`):

    from ground.tracking.record import tracked

    with tracked(snakemake) as job:           # noqa: F821 (injected by Snakemake)
        n = convert(...)                      # writes the rule's other outputs
        job.metric("accuracy", 0.73, benchmark="refcoco", split="val")
        job.note("records", n)

On a normal exit the record (rule, wildcards, params, code fingerprint, times, host and cluster
job id, sha256 of every other output, metrics, notes, the stamps of the files it `read`) is
written atomically to the `.job.json` output. On an exception nothing is written and the
exception propagates: Snakemake deletes the failed job's outputs and the `ground` head process
records the failure from Snakemake's log events.

Jobs never open the DuckDB database: one writer per file, and cluster jobs may run anywhere.
`ground.tracking.db.ingest_records` loads these files later, in the head process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ground.common.stamps import sha256_file, stamp

SCHEMA = 1
RECORD_SUFFIX = ".job.json"
REDACTED = "***"

# Secret-looking key names, matched on whole words of the key: a plain substring search for
# "token" would also hide `tokenizer` and `max_tokens`, which are recipe settings, not secrets.
_SECRET_KEY = re.compile(r"(?:^|_)(?:api_?key|apikey|token|secret|passw(?:or)?d)(?:_|$)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclasses.dataclass
class JobRecorder:
    """Collects what a job wants recorded besides its outputs; handed out by `tracked`."""

    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)
    inputs: dict[str, list[Any]] = dataclasses.field(default_factory=dict)

    def metric(
        self,
        name: str,
        value: float,
        benchmark: str | None = None,
        split: str | None = None,
        step: int | None = None,
        checkpoint: str | None = None,
        data: str | None = None,
    ) -> None:
        """Record one scalar, e.g. `metric("acc@0.5", 0.61, benchmark="refcoco")`; `step` orders
        the points of a curve (`metric("train_loss", 2.1, benchmark="stage2", step=40)`);
        `checkpoint` and `data` are the sha256 of the model and data a score was measured on."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name must be a non-empty string, got {name!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metric {name!r}: value {value!r} is not a number") from exc
        entry = {"name": name, "value": number, "benchmark": benchmark, "split": split}
        extra = {"step": int(step)} if step is not None else {}
        extra |= {k: v for k, v in (("checkpoint", checkpoint), ("data", data)) if v is not None}
        self.metrics.append(entry | extra)

    def note(self, key: str, value: Any) -> None:
        """Record a small extra fact (counts, a summary dict); made JSON-safe on write."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"note key must be a non-empty string, got {key!r}")
        self.notes[key] = json_safe(value)

    def read(self, paths: Iterable[str | Path] = (), stamps: Mapping[str, list] | None = None) -> None:
        """Record files this job read (a folder: every file under it), or their ready-made
        `stamps`: `ground status` reruns the job once one of them changes (`ground.common.stamps`)."""
        self.inputs |= stamp(paths) | dict(stamps or {})


@contextmanager
def tracked(job: Any) -> Iterator[JobRecorder]:
    """Run the body as job `job` (Snakemake's `snakemake` object) and write its record.

    The record path is checked before the body runs, so a rule without a `.job.json` output
    fails at once rather than after hours of work.
    """
    outputs = [str(p) for p in job.output]
    record_path = _record_output(outputs, rule=str(job.rule))
    started = _now()
    recorder = JobRecorder()
    yield recorder
    # Only reached when the body returned: an exception skips the record on purpose.
    params = redact(json_safe(_as_dict(job.params)))
    logs = [str(p) for p in (job.log or [])]
    artifacts = [a for p in outputs if p != record_path for a in artifact_entries(Path(p))]
    write_job_record(
        Path(record_path),
        run_id=os.environ.get("GROUND_RUN_ID"),
        rule=str(job.rule),
        wildcards=json_safe(_as_dict(job.wildcards)),
        params=params,
        code=params.get("code"),
        started=started,
        finished=_now(),
        host=socket.gethostname(),
        pid=os.getpid(),
        # the cluster job this ran in (SLURM sets it in every batch job and step), else none
        scheduler_job_id=os.environ.get("SLURM_JOB_ID"),
        log=logs[0] if logs else None,
        artifacts=artifacts,
        metrics=recorder.metrics,
        notes=recorder.notes,
        read=recorder.inputs,
    )


def write_job_record(path: Path, **fields: Any) -> Path:
    """Write `{"schema": 1, **fields}` to `path` atomically (temporary file, then rename).

    A reader (the ingest step, Snakemake's output check) never sees a half-written record.
    """
    path = Path(path)
    if not path.name.endswith(RECORD_SUFFIX):
        raise ValueError(f"{path}: a job record's name must end in {RECORD_SUFFIX}")
    body = json.dumps({"schema": SCHEMA, **fields}, indent=2, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name does not end in .job.json, so find_records never picks it up.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def find_records(root: Path) -> list[Path]:
    """Every `*.job.json` under `root`, sorted; [] if `root` does not exist."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob(f"*{RECORD_SUFFIX}") if p.is_file())


def read_job_record(path: Path) -> tuple[str, dict[str, Any]]:
    """(job id, record) of a record file, checked; the id is its content's sha256[:16].

    Raises ValueError or TypeError saying what is wrong (the caller adds the path).
    """
    raw = Path(path).read_bytes()
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise TypeError("a job record must be a JSON object")
    if record.get("schema") != SCHEMA:
        raise ValueError(f"unknown record schema {record.get('schema')!r}, expected {SCHEMA}")
    for key in ("rule", "started", "finished"):
        if not isinstance(record.get(key), str):
            raise TypeError(f"missing or non-string {key!r}")
    for key in ("started", "finished"):
        try:
            datetime.fromisoformat(record[key])
        except ValueError as exc:
            raise ValueError(f"{key}: bad ISO 8601 time {record[key]!r}") from exc
    for i, art in enumerate(_list_of_dicts(record, "artifacts")):
        if not (
            isinstance(art.get("path"), str)
            and isinstance(art.get("size"), int)
            and isinstance(art.get("sha256"), str)
        ):
            raise TypeError(f"artifacts[{i}]: expected path, size and sha256, got {art}")
    for i, metric in enumerate(_list_of_dicts(record, "metrics")):
        value = metric.get("value")
        if not isinstance(metric.get("name"), str) or not _is_number(value):
            raise TypeError(f"metrics[{i}]: expected a name and a numeric value, got {metric}")
    return hashlib.sha256(raw).hexdigest()[:16], record


def artifact_entries(path: Path) -> list[dict[str, Any]]:
    """`{"path", "size", "sha256"}` for a file, or for every file under a directory (sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"{path}: declared output missing when writing the job record")
    return [{"path": str(f), "size": f.stat().st_size, "sha256": sha256_file(f)} for f in files]


def json_safe(value: Any) -> Any:
    """A copy of `value` that json.dumps accepts and that reads back as equal.

    Paths and unknown objects become strings, dataclasses dicts, tuples and sets lists;
    NaN and infinities become strings, since strict JSON (DuckDB's JSON type) rejects them.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v) for v in items]
    if hasattr(value, "item") and callable(value.item):
        return json_safe(value.item())  # numpy scalars, without importing numpy
    return str(value)


def is_secret_key(key: str) -> bool:
    """True for key names such as `api_key`, `hfToken`, `OPENAI_API_KEY`, `db_password`."""
    words = _CAMEL.sub("_", str(key)).lower().replace("-", "_").replace(".", "_")
    return bool(_SECRET_KEY.search(words))


def redact(value: Any) -> Any:
    """A copy of `value` with the value of every secret-looking key replaced by "***"."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(k) and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _record_output(outputs: list[str], *, rule: str) -> str:
    records = [p for p in outputs if p.endswith(RECORD_SUFFIX)]
    if len(records) != 1:
        raise ValueError(
            f"rule {rule}: expected exactly one output ending in {RECORD_SUFFIX}, "
            f"got {records or 'none'} among {outputs}"
        )
    return records[0]


def _list_of_dicts(record: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = record.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TypeError(f"{key!r} must be a list of objects")
    return items


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_dict(named: Any) -> dict[str, Any]:
    """Snakemake's Namedlist (or a plain mapping) as a dict of its named entries."""
    if named is None:
        return {}
    return dict(named.items())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
