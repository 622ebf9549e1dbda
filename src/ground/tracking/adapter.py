"""What every Snakemake `script:` adapter wraps its one library call in.

    with step_job(snakemake) as job:
        summary = convert_dataset(...)
        job.note("summary", summary)

It sends the step's prints, progress bars and any traceback to the rule's log file and writes
the job record (see `ground.tracking.record`) once the step's outputs are complete.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ground.tracking.record import JobRecorder, tracked


@contextlib.contextmanager
def step_job(job: Any) -> Iterator[JobRecorder]:
    log_path = Path(job.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, level=logging.INFO, force=True)
        with tracked(job) as recorder:
            try:
                yield recorder
            except Exception:
                traceback.print_exc(file=log)
                raise
