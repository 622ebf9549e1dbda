"""Machine-readable output: with `--json`, stdout carries one JSON document and nothing else.

    with json_only(json_):          # library prints, loggers, Snakemake, jobs, JIT builds -> stderr
        rows = compute()
    if json_:
        print_json(rows)            # the one document, on the real stdout

Libraries write to stdout in several ways: `print`, logging handlers that kept the `sys.stdout`
of their import (DeepSpeed's), C code and child processes (ninja's build lines, Snakemake jobs)
writing to file descriptor 1. Rebinding `sys.stdout` reaches only the first, so the descriptor
itself is pointed at stderr while the command works.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def json_only(enabled: bool = True) -> Iterator[None]:
    """While the block runs, everything written to stdout goes to stderr (when `enabled`)."""
    if not enabled:
        yield
        return
    _flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 (a closed stdout): nothing can leak through it
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def print_json(data: Any) -> None:
    """The command's one JSON document (dates and paths as strings)."""
    print(json.dumps(data, indent=2, default=str))


def _flush() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.__stdout__, sys.stderr) if s is not None}.values():
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
