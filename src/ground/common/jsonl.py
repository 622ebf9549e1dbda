"""Atomic writes of a step's outputs (JSONL records and a JSON manifest), and JSONL reading.

    write_outputs(out, records, manifest, summary)   # what convert and generate end with
    for number, value in read_jsonl(path): ...       # blank lines skipped, bad ones named

Every file goes through a temporary sibling and a rename, so a killed job never leaves half a
file for Snakemake (or a rerun) to mistake for a finished output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line; ValueError `path:line: not JSON (...)`."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err})") from None
            yield number, value


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` via a temporary sibling and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl_atomic(path: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_outputs(
    out: Path, records: list[dict[str, Any]], manifest: Path, summary: dict[str, Any]
) -> None:
    """The records as JSONL at `out`, then the summary as indented JSON at `manifest`."""
    write_jsonl_atomic(out, records)
    write_text_atomic(manifest, json.dumps(summary, indent=2) + "\n")


def brief_summary(summary: dict[str, Any]) -> str:
    """The summary for a terminal: without the per-record `rejected` list, which can be long."""
    return json.dumps({k: v for k, v in summary.items() if k != "rejected"}, indent=2)


def read_json(path: Path, expect: type | None = None, what: str = "") -> Any:
    """A whole JSON file (a published annotation file), of type `expect` (described as `what`
    when it is not); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: published file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if expect is not None and not isinstance(data, expect):
        raise ValueError(f"{path}: expected {what}, got {type(data).__name__}")
    return data
