"""Start-up benchmark: whole `ground` commands timed from outside, as a user waits for them.

    ground bench cli                         # --help, status, a no-op run: min and median of 5
    ground bench cli --runs 9 --project /path/to/finished/project --json

Each command is a fresh process (interpreter start, imports, DAG build, DuckDB writes
included), run `warmup` times untimed and then `runs` times in turn with the others, so that a
drift in the machine's speed spreads over all of them. On a finished project `ground run` has
nothing to do: what it costs is only start-up, planning and bookkeeping.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def ground_command() -> list[str]:
    """The `ground` entry point of this interpreter's environment (the console script when
    installed, else the module)."""
    script = Path(sys.executable).parent / "ground"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("ground")
    return [found] if found else [sys.executable, "-m", "ground_cli.main"]


def cli_commands(sets: Sequence[str] = ()) -> dict[str, list[str]]:
    """The timed commands: help, the plan, and a run (a no-op on a finished project)."""
    ground = ground_command()
    extra = [arg for item in sets for arg in ("--set", item)]
    return {
        "ground --help": [*ground, "--help"],
        "ground status": [*ground, "status", *extra],
        "ground run": [*ground, "run", *extra],
    }


def bench_commands(
    commands: Mapping[str, Sequence[str]], cwd: Path, runs: int = 5, warmup: int = 1
) -> dict[str, Any]:
    """Wall seconds of each command over `runs` timed runs (after `warmup`): min, median, all.

    Raises RuntimeError with the command's stderr when one exits non-zero.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    for attempt in range(warmup + runs):
        for name, argv in commands.items():
            start = time.perf_counter()
            proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                                  env=os.environ | {"COLUMNS": "200"})  # fmt: skip
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{name} exited {proc.returncode} in {cwd}:\n{proc.stderr[-2000:]}")
            if attempt >= warmup:
                times[name].append(seconds)
    return {
        "project": str(cwd),
        "runs": runs,
        "warmup": warmup,
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "commands": {
            name: {"argv": list(commands[name]), "min_s": min(t), "median_s": statistics.median(t), "seconds": t}
            for name, t in times.items()
        },
    }
