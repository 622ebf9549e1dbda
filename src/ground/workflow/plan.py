"""Why a job would run, in words a researcher can act on (the plan Snakemake does not print).

Snakemake says "Params have changed since last execution"; the job record left next to the
outputs by the previous run holds the old params and code fingerprint, so we can say which key
changed and from what to what, and whether it was the step's code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Snakemake's reason phrases (snakemake.jobs.Reason.__str__) -> our short, stable kinds.
KINDS = (
    ("Missing output files", "missing-output"),
    ("Incomplete output files", "incomplete-output"),
    ("Updated input files", "new-input"),
    ("Input files updated by another job", "upstream-will-run"),
    ("Set of input files has changed", "input-set-changed"),
    ("Code has changed", "rule-code-changed"),
    ("Params have changed", "params-changed"),
    ("Software environment definition has changed", "software-env-changed"),
    ("Forced execution", "forced"),
)

FILE_KINDS = {
    "missing-output": "output missing",
    "incomplete-output": "output incomplete (an earlier run was interrupted)",
    "new-input": "input newer than output",
    "upstream-will-run": "input will be rebuilt upstream",
}


def reason_kinds(reason: str) -> list[dict[str, Any]]:
    """Split Snakemake's reason string into [{"kind", "detail", "files"?}]."""
    found = []
    for part in filter(None, (p.strip() for p in reason.split("; "))):
        phrase, kind = next(((p, k) for p, k in KINDS if part.startswith(p)), ("", "other"))
        entry: dict[str, Any] = {"kind": kind, "detail": part}
        head, sep, tail = part.partition(": ")
        if sep and kind in FILE_KINDS:
            files = [f.strip() for f in tail.split(", ") if f.strip()]
            first = f": {files[0]}" + (f" and {len(files) - 1} more" if len(files) > 1 else "")
            entry = {"kind": kind, "detail": FILE_KINDS[kind] + first, "files": files}
        found.append(entry)
    return found


def explain(reason: str, outputs: list[str], params: dict[str, Any], section: str) -> list[dict]:
    """Reasons of one job; a params change is broken down into config keys and code."""
    reasons = [r for r in reason_kinds(reason) if r["kind"] != "params-changed"]
    if any(r["kind"] == "params-changed" for r in reason_kinds(reason)):
        old = previous_params(outputs)
        reasons += diff_params(old, params, section) or [
            {"kind": "params-changed", "detail": "rule params differ from the last execution"}
        ]
    return reasons


def previous_params(outputs: list[str]) -> dict[str, Any] | None:
    """Params stored in the job record of the previous execution, if one is still there."""
    for out in outputs:
        if out.endswith(".job.json") and Path(out).is_file():
            return json.loads(Path(out).read_text()).get("params")
    return None


def diff_params(old: dict | None, new: dict[str, Any], section: str) -> list[dict]:
    if old is None:
        return []
    reasons = []
    if old.get("code") != new.get("code"):
        reasons.append({
            "kind": "code-changed",
            "detail": f"library code of this step changed ({old.get('code')} -> {new.get('code')})",
        })  # fmt: skip
    for key, (before, after) in sorted(changed_keys(old.get("cfg"), new.get("cfg"), section).items()):
        reasons.append({"kind": "config-changed", "detail": f"{key}: {before!r} -> {after!r}"})
    return reasons


def changed_keys(old: Any, new: Any, prefix: str) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(old) | set(new)):
            changed |= changed_keys(old.get(key), new.get(key), f"{prefix}.{key}")
        return changed
    return {} if old == new else {prefix: (old, new)}
