"""Entry point of one training stage, for every launcher.

    python -m ground.train --spec results/train/stage1/spec.json
    torchrun --standalone --nproc_per_node 8 -m ground.train --spec results/train/stage2/spec.json

The spec is written by `ground.train.launch.write_spec` (the `train_stage` rule does it). Exit
code 0: the stage is done; EXIT_PREEMPTED (75): a stop signal (SIGTERM, SIGUSR1) arrived, the
state after the last finished step is saved and the same command resumes from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from ground.train.loop import TrainSpec, train_stage
from ground.train.preempt import EXIT_PREEMPTED, Preempted, die_with_parent


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one GroundingGPT training stage.")
    parser.add_argument("--spec", type=Path, required=True, help="stage spec JSON")
    args = parser.parse_args()
    if "LOCAL_RANK" in os.environ:  # a worker of torchrun / deepspeed: die with that launcher
        die_with_parent(os.getppid())
    spec = TrainSpec.read(args.spec)
    try:
        summary = train_stage(spec)
    except Preempted as stopped:
        print(f"{stopped}; resumable checkpoint in {spec.resume_dir}", flush=True)
        code = EXIT_PREEMPTED
    else:
        if int(os.environ.get("RANK", "0")) == 0:
            Path(spec.extra["summary"]).write_text(json.dumps(summary, indent=2))
        code = 0
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
