"""Can the demo model learn temporal grounding at all? A learnability probe, not a pipeline step.

Trains only on the demo's temporal-grounding records, from a finished demo run's stage-1
checkpoint, and prints every `--every` steps, side by side: R1@0.5 on held-out and on training
queries next to the mean-span baseline, and the answer loss with each video's own features
next to the loss with the batch's videos shuffled (equal losses: the model ignores the video).

    # after `ground run --until stage1` (or a whole run) in DIR:
    python benchmarks/temporal_grounding_probe.py --workdir DIR --steps 800
    # an upper bound: perfect per-frame features (colour fractions from the decoded frames),
    # one LLM token per frame, targets on the sampled frames' grid, single-event videos only
    python benchmarks/temporal_grounding_probe.py --workdir DIR --oracle --per-frame \
        --frame-aligned --single-event --steps 3000 --every 750

    # only "is visible" queries, the cached features standardised as `train.standardize_features`
    # does (for a run made without it)
    python benchmarks/temporal_grounding_probe.py --workdir DIR --events appear --standardize

Decoding the frames for `--oracle` takes a few minutes once; they are kept in
DIR/cache/probe_oracle.npz.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from ground.common.catalog import benchmark
from ground.demo.scene import COLORS
from ground.eval.infer import answer_batch
from ground.eval.scoring import flatten, score_answers
from ground.features.video import sample_frames_decode_all, uniform_timestamps
from ground.model.adapters import FeatureScaler, feature_statistics
from ground.model.grounding import GroundingModel
from ground.train.data import FeatureLookup, StageDataset, load_records
from ground.train.packing import collate

TASK = "temporal_grounding"
EVENT_WORDS = {"appear": " is visible", "move": " moves ", "change": " turns "}  # in the query


class PerFrameAdapter(nn.Module):
    """One LLM token per frame: its first cached token + a learned frame position, through an MLP."""

    def __init__(self, dim: int, hidden: int, frames: int) -> None:
        super().__init__()
        self.position = nn.Embedding(frames, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = features[:, :, 0].float() + self.position.weight[: features.shape[1]]
        return self.fc2(nn.functional.gelu(self.fc1(tokens)))


class StandardizedLookup:
    """Video features through a FeatureScaler fitted to `videos`, as `train.standardize_features`."""

    def __init__(self, lookup: FeatureLookup, videos: list[str]) -> None:
        self.lookup = lookup
        items = [lookup.load("video", v) for v in videos]
        self.scale = FeatureScaler(tuple(items[0].shape[1:]))
        self.scale.set(*feature_statistics(items))

    def has(self, modality: str, media: str) -> bool:
        return self.lookup.has(modality, media)

    def load(self, modality: str, media: str) -> torch.Tensor:
        features = self.lookup.load(modality, media)
        return self.scale(features.float()) if modality == "video" else features


class OracleLookup(FeatureLookup):
    """Video features replaced by per-frame colour statistics in the first token of each frame."""

    def __init__(self, index: dict, store: Path, oracle: dict[str, np.ndarray], dim: int) -> None:
        super().__init__(index, store)
        self.oracle, self.dim = oracle, dim

    def load(self, modality: str, media: str) -> torch.Tensor:
        if modality != "video":
            return super().load(modality, media)
        stats = torch.from_numpy(self.oracle[media])
        features = torch.zeros(stats.shape[0], 8, self.dim)
        features[:, 0, : stats.shape[1]] = 3 * stats
        return features


def colour_stats(path: Path, frames: int) -> np.ndarray:
    """[frames, 3 * colours] for the frames the feature step samples: per demo colour, 10 x the
    share of its pixels and the centre of those pixels (x, y in -1..1; 0 when absent)."""
    pixels = sample_frames_decode_all(path, frames, 32).astype(np.float32)
    palette = np.array(list(COLORS.values()), dtype=np.float32)
    near = np.linalg.norm(pixels[:, :, :, None, :] - palette, axis=-1) < 60  # [F, H, W, C]
    grid = np.linspace(-1.0, 1.0, pixels.shape[1], dtype=np.float32)
    count = near.sum(axis=(1, 2))
    safe = np.maximum(count, 1)
    x = (near * grid[None, None, :, None]).sum(axis=(1, 2)) / safe
    y = (near * grid[None, :, None, None]).sum(axis=(1, 2)) / safe
    share = 10 * count / (near.shape[1] * near.shape[2])
    return np.stack([share, x, y], axis=-1).reshape(frames, -1).astype(np.float32)


def oracle_features(workdir: Path, videos: list[str], frames: int) -> dict[str, np.ndarray]:
    cache = workdir / "cache" / "probe_oracle.npz"
    if cache.is_file():
        stored = np.load(cache)
        return {key.replace("|", "/"): stored[key] for key in stored.files}
    print(f"decoding {len(videos)} videos for the oracle features ...", flush=True)
    oracle = {v: colour_stats(workdir / v, frames) for v in videos}
    np.savez(cache, **{k.replace("/", "|"): v for k, v in oracle.items()})
    return oracle


def align_to_frames(record: dict, frames: int) -> dict | None:
    """The record with its span moved to the sampled frames inside it (None if there are none)."""
    (start, end), duration = record["meta"]["segment_s"], record["meta"]["duration"]
    inside = [i for i, t in enumerate(uniform_timestamps(duration, frames)) if start <= t < end]
    if not inside:
        return None
    record = copy.deepcopy(record)
    span = [inside[0] * duration / frames, (inside[-1] + 1) * duration / frames]
    record["meta"]["segment_s"] = span
    record["conversations"][1]["value"] = f"{{{span[0] / duration:.2f}, {span[1] / duration:.2f}}}"
    return record


def select(args: argparse.Namespace, split: str, events: dict[str, int]) -> list[dict]:
    path = args.workdir / f"results/convert/demo_video/{split}.jsonl"
    records = load_records([path], tasks={TASK})
    if args.events:
        words = [EVENT_WORDS[kind] for kind in args.events.split(",")]
        records = [r for r in records if any(w in r["meta"]["query"] + " " for w in words)]
    if args.single_event:
        records = [r for r in records if events[r["video"]] == 1]
    if args.frame_aligned:
        records = [a for a in (align_to_frames(r, args.frames) for r in records) if a]
    return records


def shuffled_loss(model: GroundingModel, batch: dict, modality: str = "video") -> tuple[float, float]:
    """Answer loss with each row's own media, and with the media permuted across rows."""
    with torch.no_grad():
        own = model(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["media"])
        features, rows = batch["media"][modality]
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))
        media = {modality: (features[order], rows)}
        other = model(batch["input_ids"], batch["attention_mask"], batch["labels"], media)
    return own.loss.item(), other.loss.item()


def score_line(bench_name: str, model, tok, lookup, sets: dict[str, list[dict]]) -> list[str]:
    """'<split> <headline> x (baseline y, n distinct answers)' per set, greedy answers."""
    bench = benchmark(bench_name)
    name, parts = bench.headline, []
    for split, records in sets.items():
        answers = {}
        for i in range(0, len(records), 40):
            chunk = records[i : i + 40]
            answers.update(zip([r["id"] for r in chunk], answer_batch(model, tok, chunk, lookup, 16)))
        scores = flatten(score_answers(bench, records, answers))
        parts.append(
            f"{split} {name} {scores[name]:.1f} (baseline {scores['baseline/' + name]:.1f}, "
            f"{len(set(answers.values()))} distinct answers)"
        )
    return parts


def report(step: int, model: GroundingModel, tok, lookup, sets: dict[str, list[dict]], probe):
    own, other = shuffled_loss(model, probe)
    line = [f"step {step}: loss own video {own:.3f} vs shuffled {other:.3f}"]
    print(" | ".join(line + score_line("demo_tg", model, tok, lookup, sets)), flush=True)


def train_probe(model: GroundingModel, data, tok, args: argparse.Namespace, report) -> None:
    """AdamW (30 warm-up steps, linear decay) for args.steps; report(step) every args.every."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 30) * max(0.05, 1 - s / args.steps)
    )
    step, order = 0, torch.Generator().manual_seed(0)
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
                model.eval()
                report(step)
                model.train()
            if step == args.steps:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a demo run's folder")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--every", type=int, default=200, help="steps between reports")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8, help="frames the feature step samples")
    parser.add_argument("--oracle", action="store_true", help="perfect per-frame colour features")
    parser.add_argument("--per-frame", action="store_true", help="one LLM token per frame")
    parser.add_argument("--frame-aligned", action="store_true", help="spans on the frame grid")
    parser.add_argument("--single-event", action="store_true", help="one-event videos only")
    parser.add_argument("--events", default="", help="queries of these kinds only: appear,move,change")
    parser.add_argument("--standardize", action="store_true", help="standardised cached features")
    args = parser.parse_args()
    os.chdir(args.workdir)  # the run's records name media relative to it
    args.workdir = Path(".")
    torch.manual_seed(0)

    init = "results/train/stage1/model"
    model, tok = GroundingModel.from_pretrained(init), AutoTokenizer.from_pretrained(f"{init}/llm")
    cfg = model.config
    if args.per_frame:
        model.adapters["video"] = PerFrameAdapter(cfg.video_dim, cfg.llm_hidden, cfg.max_frames)
        model.config = dataclasses.replace(cfg, video_queries=args.frames)
    model.set_trainable(2)
    index = {m: Path(f"results/features/{m}.index.jsonl") for m in ("image", "video", "audio")}
    lookup = FeatureLookup(index, Path("cache/features"))
    captions = load_records(
        [Path(f"results/convert/demo_video/{s}.jsonl") for s in ("train", "test")],
        tasks={"video_caption"},
    )
    events = {r["video"]: len(r["meta"]["events"]) for r in captions}
    if args.oracle:
        oracle = oracle_features(args.workdir, sorted(events), args.frames)
        lookup = OracleLookup(index, Path("cache/features"), oracle, cfg.video_dim)
    train, test = select(args, "train", events), select(args, "test", events)
    if args.standardize and not args.oracle:
        lookup = StandardizedLookup(lookup, sorted({r["video"] for r in train})[:512])
    print(f"{len(train)} training and {len(test)} held-out queries", flush=True)
    data = StageDataset(train, tok, model.tokens_per_media(), 512, lookup)
    probe = collate([data[i] for i in range(0, min(len(data), 480), 10)], tok.pad_token_id)
    sets = {"held-out": test, "training": train[:120]}
    train_probe(model, data, tok, args, lambda step: report(step, model, tok, lookup, sets, probe))

if __name__ == "__main__":
    main()
