"""Entry point of one training stage, for every launcher.

    python -m ground.train --spec results/train/stage1/spec.json
    torchrun --standalone --nproc_per_node 8 -m ground.train --spec results/train/stage2/spec.json

The spec is written by `ground.train.launch.write_spec` (the `train_stage` rule does it).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from ground.train.loop import TrainSpec, train_stage


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one GroundingGPT training stage.")
    parser.add_argument("--spec", type=Path, required=True, help="stage spec JSON")
    args = parser.parse_args()
    spec = TrainSpec.read(args.spec)
    summary = train_stage(spec)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(spec.extra["summary"]).write_text(json.dumps(summary, indent=2))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
