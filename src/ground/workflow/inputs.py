"""Finished jobs whose input files changed since they ran (`ground status`, `ground run`).

    changed_jobs([Path("results"), Path("resources/demo")])
    # {"results/features/video/shard1.job.json":
    #      [{"path": "resources/demo/media/videos/train_003.mp4", "change": "content", ...}]}

Each job record holds the stamps of the files its job read (`ground.common.stamps`); the CLI
forces the jobs found here (by their record, one of their outputs), so exactly they and what
depends on them run again. A job that reruns records the files as they are then, which ends it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ground.common.stamps import changes
from ground.tracking.record import find_records

# How a job's reason names its changed inputs: the first few, then a count.
SHOWN = 3


def changed_jobs(roots: Iterable[Path]) -> dict[str, list[dict[str, Any]]]:
    """Record path -> the changes of the files that job read; jobs with none are left out."""
    found = {}
    for record in (r for root in roots for r in find_records(root)):
        try:
            stamps = json.loads(record.read_text()).get("read") or {}
        except (OSError, ValueError, AttributeError):
            continue  # an unreadable record is named when the run ingests it
        if moved := changes(stamps):
            found[str(record)] = moved
    return found


def reasons(moved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`ground status` reasons of one job's changed inputs: changed content, then missing files
    (with the fix), each naming the first few files and a count."""
    found = []
    for change, text in (("content", "input changed since the last run"),
                         ("missing", "input missing (restore it, or rerun the step that makes it)")):  # fmt: skip
        these = [m for m in moved if m["change"] == change]
        if these:
            more = f" and {len(these) - SHOWN} more" if len(these) > SHOWN else ""
            details = "; ".join(m["detail"] for m in these[:SHOWN])
            found.append({"kind": f"input-{change}", "detail": f"{text}: {details}{more}",
                          "files": [m["path"] for m in these]})  # fmt: skip
    return found
