"""Can the demo model learn referring expressions (REC) in minutes? A learnability probe.

Trains only on the demo's REC records, from a finished demo run's stage-1 checkpoint (the LLM
and adapters trainable, as in stage 2), and prints every `--every` steps: Acc@0.5 on held-out
and training expressions next to the centre-box baseline, the number of distinct answers, and the
answer loss with each image's own features next to the loss with the images shuffled across the
batch (equal losses: the model ignores the image).

    # after `ground run --until stage1` (or a whole run) in DIR:
    python benchmarks/rec_probe.py --workdir DIR --steps 1000 --every 250
    # easier variants: no relational expressions ("the red circle left of the square"), images
    # with at most 2 objects, 2x2-pooled patches (16 LLM tokens instead of 64), or perfect
    # per-patch features (colour, shape and size one-hot, the owning object's box) in place of
    # the cached CLIP features
    python benchmarks/rec_probe.py --workdir DIR --no-relations --pool 2
    python benchmarks/rec_probe.py --workdir DIR --no-relations --oracle
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch
from temporal_grounding_probe import score_line, shuffled_loss, train_probe  # a sibling script
from transformers import AutoTokenizer

from ground.demo.pretrain import patch_labels
from ground.model.grounding import GroundingModel
from ground.train.data import FeatureLookup, StageDataset, load_records
from ground.train.packing import collate

RELATIONS = ("left of", "right of", "above", "below")


class ProbeLookup:
    """The run's cached features, image patches optionally pooled k x k or replaced by an oracle."""

    def __init__(self, lookup: FeatureLookup, pool: int, raw: dict[str, dict] | None) -> None:
        self.lookup, self.pool, self.raw = lookup, pool, raw

    def has(self, modality: str, media: str) -> bool:
        return self.lookup.has(modality, media)

    def load(self, modality: str, media: str) -> torch.Tensor:
        features = self.lookup.load(modality, media)
        if modality != "image":
            return features
        if self.raw is not None:
            features = oracle(self.raw[media], *features.shape)
        if self.pool == 1:
            return features
        side, dim = int(features.shape[0] ** 0.5), features.shape[1]
        grid = features.float().T.reshape(1, dim, side, side)
        return torch.nn.functional.avg_pool2d(grid, self.pool)[0].reshape(dim, -1).T.contiguous()


def oracle(record: dict, patches: int, dim: int) -> torch.Tensor:
    """Per patch: colour / shape / size one-hot (background 0) and the owning object's box."""
    labels = patch_labels(record, 64, 64 // int(patches**0.5))
    out, rows = torch.zeros(patches, dim), torch.arange(patches)
    out[rows, labels["color"]] = 2.0
    out[rows, 7 + labels["shape"]] = 2.0
    out[rows, 11 + labels["size"]] = 2.0
    out[:, 14:18] = 2.0 * labels["box"]
    return out


def select(args: argparse.Namespace, split: str, objects: dict[str, int]) -> list[dict]:
    records = load_records([Path(f"results/convert/demo_image/{split}.jsonl")], tasks={"rec"})
    return [
        r
        for r in records
        if objects[r["image"]] <= args.max_objects
        and not (args.no_relations and any(w in r["conversations"][0]["value"] for w in RELATIONS))
    ]


def report(step: int, seconds: float, model, tok, lookup, sets: dict[str, list[dict]], probe) -> None:
    own, other = shuffled_loss(model, probe, "image")
    line = [f"step {step} ({seconds:.0f} s): loss own image {own:.3f} vs shuffled {other:.3f}"]
    print(" | ".join(line + score_line("demo_rec", model, tok, lookup, sets)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a demo run's folder")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=250, help="steps between reports")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-relations", action="store_true", help="attribute-only expressions")
    parser.add_argument("--max-objects", type=int, default=9, help="images with at most N objects")
    parser.add_argument("--pool", type=int, default=1, help="average-pool patches k x k")
    parser.add_argument("--oracle", action="store_true", help="perfect per-patch features")
    args = parser.parse_args()
    os.chdir(args.workdir)  # the run's records name media relative to it
    torch.manual_seed(0)
    torch.set_num_threads(2)

    init = "results/train/stage1/model"
    model, tok = GroundingModel.from_pretrained(init), AutoTokenizer.from_pretrained(f"{init}/llm")
    if args.pool > 1:
        cfg = dataclasses.replace(model.config, image_tokens=model.config.image_tokens // args.pool**2)
        model.config = model.adapters["image"].cfg = cfg
    model.set_trainable(2)
    raw = {}
    for split in ("train", "test"):
        for line in Path(f"resources/demo/raw/demo_image/{split}.jsonl").read_text().splitlines():
            record = json.loads(line)
            raw[f"resources/demo/{record['image']}"] = record
    index = {m: Path(f"results/features/{m}.index.jsonl") for m in ("image", "video", "audio")}
    lookup = ProbeLookup(FeatureLookup(index, Path("cache/features")), args.pool, raw if args.oracle else None)
    objects = {path: len(record["objects"]) for path, record in raw.items()}
    train, test = select(args, "train", objects), select(args, "test", objects)
    print(f"{len(train)} training and {len(test)} held-out expressions", flush=True)
    data = StageDataset(train, tok, model.tokens_per_media(), 512, lookup)
    probe = collate([data[i] for i in range(0, min(len(data), 480), 10)], tok.pad_token_id)
    sets = {"held-out": test[:200], "training": train[:100]}
    started = time.perf_counter()
    train_probe(model, data, tok, args,
                lambda step: report(step, time.perf_counter() - started, model, tok, lookup, sets, probe))  # fmt: skip

if __name__ == "__main__":
    main()
