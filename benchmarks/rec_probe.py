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
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from ground.common.catalog import benchmark
from ground.demo.pretrain import patch_labels
from ground.eval.infer import answer_batch
from ground.eval.scoring import flatten, score_answers
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


def losses(model: GroundingModel, batch: dict) -> tuple[float, float]:
    """Answer loss with each row's own image, and with the images permuted across rows."""
    with torch.no_grad():
        own = model(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["media"])
        features, rows = batch["media"]["image"]
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))
        media = {"image": (features[order], rows)}
        other = model(batch["input_ids"], batch["attention_mask"], batch["labels"], media)
    return own.loss.item(), other.loss.item()


def report(step: int, seconds: float, model, tok, lookup, sets: dict[str, list[dict]], probe) -> None:
    model.eval()
    own, other = losses(model, probe)
    bench = benchmark("demo_rec")
    line = [f"step {step} ({seconds:.0f} s): loss own image {own:.3f} vs shuffled {other:.3f}"]
    for split, records in sets.items():
        answers = {}
        for i in range(0, len(records), 40):
            chunk = records[i : i + 40]
            answers.update(zip([r["id"] for r in chunk], answer_batch(model, tok, chunk, lookup, 16)))
        scores = flatten(score_answers(bench, records, answers))
        line.append(
            f"{split} Acc@0.5 {scores['Acc@0.5']:.1f} (baseline {scores['baseline/Acc@0.5']:.1f}, "
            f"{len(set(answers.values()))} distinct answers)"
        )
    print(" | ".join(line), flush=True)
    model.train()


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
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 30) * max(0.05, 1 - s / args.steps)
    )
    sets = {"held-out": test[:200], "training": train[:100]}
    step, order, started = 0, torch.Generator().manual_seed(0), time.perf_counter()
    while step < args.steps:
        loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, generator=order,
                            collate_fn=lambda b: collate(b, tok.pad_token_id))  # fmt: skip
        for batch in loader:
            out = model(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["media"])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % args.every == 0 or step == args.steps:
                report(step, time.perf_counter() - started, model, tok, lookup, sets, probe)
            if step == args.steps:
                break


if __name__ == "__main__":
    main()
