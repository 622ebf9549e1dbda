"""Stopping a stage cleanly when the scheduler asks (time limit, preemption), and saying so.

SLURM sends SIGTERM (`scancel --signal=TERM`, preemption) or the signal of `--signal=USR1@300`
before a job's time limit. The trainer then finishes its optimizer step, saves a resumable
checkpoint, writes `preempted.json` beside it and exits with EXIT_PREEMPTED; the launcher turns
that into a `StagePreempted` error, so Snakemake's retries (or SLURM's requeue) run the job
again, and the rerun resumes from the checkpoint.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType

EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): "try again later", the job is not broken
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# What the launcher also passes on to its child's process group (that group is not the
# terminal's or Snakemake's any more, so Ctrl-C and hang-ups must be handed down too).
FORWARDED_SIGNALS = (*STOP_SIGNALS, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # prctl(2)
MARKER = "preempted.json"


class Preempted(Exception):
    """Raised by the training loop after it saved its state on a stop signal."""

    def __init__(self, stage: int, step: int, total: int, signal_name: str) -> None:
        super().__init__(f"stage {stage}: stopped by {signal_name} after step {step} of {total}")
        self.stage, self.step, self.total, self.signal_name = stage, step, total, signal_name


class StagePreempted(RuntimeError):
    """Raised by the launcher: the stage stopped early and left a checkpoint to resume from."""


class StopRequest:
    """Remembers a stop signal; the loop looks at it between optimizer steps (a handler that
    raised inside a forward or a collective would leave the ranks out of step)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


def write_marker(resume_dir: str, error: Preempted) -> None:
    path = Path(resume_dir) / MARKER
    path.write_text(json.dumps({"step": error.step, "total": error.total, "signal": error.signal_name}))


def read_marker(resume_dir: str) -> dict | None:
    path = Path(resume_dir) / MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def clear_marker(resume_dir: str) -> None:
    (Path(resume_dir) / MARKER).unlink(missing_ok=True)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent `parent` dies (Linux; elsewhere a
    no-op): a launcher killed outright (SIGKILL of `ground run`'s process group) must not leave
    trainers in their own process group running on and writing into the stage's folders."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(128 + signal.SIGKILL)
