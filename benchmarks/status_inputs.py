"""`ground status` with a million stamped input files: the cost of noticing changed inputs.

    python benchmarks/status_inputs.py --project /path/to/finished/demo --files 1000000 --json

On a finished project, writes `--files` small files under `cache/bench-inputs/` and job records
under `results/bench-inputs/` that stamp them as read (`ground.common.stamps`), as feature jobs
over that many media would, in `--records` records. Then times, side by side in one run,
`ground status` with those records and without them (moved aside between runs), and the scan
alone in this process. Every file is stat-ed on each status; none is hashed, none having changed.
The records' jobs are not in the project's plan, so the DAG is the demo's: this measures the scan,
not a DAG of a million media. Removes what it wrote at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from ground.workflow.bench import bench_commands, ground_command
from ground.workflow.inputs import changed_jobs


def write_tree(root: Path, files: int, records: int) -> list[Path]:
    """`files` files of 32 bytes, 1000 per folder, and `records` job records stamping them."""
    stamps: list[dict[str, list]] = [{} for _ in range(records)]
    for i in range(files):
        path = root / "cache/bench-inputs" / f"{i // 1000:04d}" / f"{i:07d}.bin"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        data = f"{i:031d}\n".encode()
        path.write_bytes(data)
        stat = path.stat()
        stamps[i % records][str(path)] = [stat.st_size, stat.st_mtime_ns, hashlib.sha256(data).hexdigest()]
    written = []
    for n, read in enumerate(stamps):
        record = root / "results/bench-inputs" / f"shard{n}.job.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"schema": 1, "rule": "bench", "read": read}))
        written.append(record)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="a finished demo project")
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    project = args.project.resolve()
    started = time.perf_counter()
    write_tree(project, args.files, args.records)
    setup_s = time.perf_counter() - started
    aside = project / "bench-inputs.aside"
    status = [*ground_command(), "status"]
    times: dict[str, list[float]] = {"with": [], "without": [], "scan": []}
    try:
        for _ in range(args.runs):
            start = time.perf_counter()
            assert changed_jobs([project / "results"]) == {}, "a stamped file changed"
            times["scan"].append(time.perf_counter() - start)
            times["with"].append(bench_commands({"s": status}, project, runs=1, warmup=0)["commands"]["s"]["min_s"])
            os.replace(project / "results/bench-inputs", aside)
            times["without"].append(bench_commands({"s": status}, project, runs=1, warmup=0)["commands"]["s"]["min_s"])
            os.replace(aside, project / "results/bench-inputs")
    finally:
        for path in (aside, project / "results/bench-inputs", project / "cache/bench-inputs"):
            shutil.rmtree(path, ignore_errors=True)
    result = {
        "files": args.files, "records": args.records, "runs": args.runs, "setup_s": round(setup_s, 1),
        "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
        **{f"{name}_median_s": round(statistics.median(t), 2) for name, t in times.items()},
        **{f"{name}_min_s": round(min(t), 2) for name, t in times.items()},
    }  # fmt: skip
    json.dump(result, sys.stdout, indent=None if args.json else 2)
    print()


if __name__ == "__main__":
    main()
