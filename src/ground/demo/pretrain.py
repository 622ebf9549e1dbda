"""Brief pretraining of the demo's tiny parts on the synthetic corpus's train split, so that they
are "pretrained" the way CLIP, BLIP-2, ImageBind and Vicuna are for the 7B recipe: their features
say what is where, and the LLM knows the corpus's language and the coordinate forms.

    >>> from ground.demo.pretrain import pretrain_parts
    >>> pretrain_parts(Path("resources/demo"), Path("resources/demo/models"), seed=0)
    {'image_encoder': {'first_loss': ..., 'last_loss': ..., 'seconds': ...}, ...}

Each part is trained with an objective the generator labels exactly, then saved over its random
checkpoint in the same Hugging Face format, so every later step loads it unchanged:

| part          | input (as the features step prepares it)      | labels per input                      |
|---------------|-----------------------------------------------|---------------------------------------|
| image encoder | a scene padded to square (REC and SL images)  | per patch: colour, shape, size, box   |
| frame encoder | a frame of a train video (rendered from plan) | which (colour, shape) pairs are shown |
| audio encoder | a clip of a train sound                       | colour, shape and size of its source  |
| LLM           | captions, expressions, events of train records | next token                            |

The heads are dropped after training. Everything is seeded, the data order included, and runs on a
fixed number of threads (`THREADS`): the same seed gives the same weights on one machine.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers import (
    Blip2VisionModelWithProjection,
    CLIPVisionModel,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from ground.common.audio import preprocess_audio
from ground.common.formats import box_to_square, format_box, format_span
from ground.common.image import load_image_padded, pad_offset, to_pixel_values
from ground.common.jsonl import read_jsonl
from ground.demo.corpus import DemoParams, video_actors
from ground.demo.scene import COLORS, SHAPES, SIZES, shape_mask
from ground.demo.video import render_video
from ground.model.encoders import CLIP_MEAN, CLIP_STD, _encode_audio, _encode_frames, _encode_image
from ground.model.imagebind import ImageBindAudioModel

THREADS = 2  # torch threads while pretraining: a fixed count keeps the sums' order fixed
COLOR_NAMES = list(COLORS)
PAIRS = [(c, s) for c in COLOR_NAMES for s in SHAPES]  # what a frame can show
MIN_PATCH_PIXELS = 8  # an object owns a patch where it covers at least this many of its pixels
FRAMES_PER_VIDEO = 16

# batch size and learning rate per part; the steps come from the recipe (download.models.pretrain)
SCHEDULE = {
    "image_encoder": (32, 1e-3),
    "frame_encoder": (32, 1e-3),
    "audio_encoder": (32, 1e-3),
    "llm": (16, 2e-3),
}


def _records(root: Path, dataset: str) -> list[dict]:
    path = root / "raw" / dataset / "train.jsonl"
    return [record for _, record in read_jsonl(path)]


def _params(root: Path) -> DemoParams:
    saved = json.loads((root / "corpus.json").read_text())["parameters"]
    saved.pop("splits")
    for key in ("image_size", "video_events"):
        saved[key] = tuple(saved[key])
    return DemoParams(out=root, **saved)


def patch_labels(record: dict, size: int, patch: int) -> dict[str, torch.Tensor]:
    """Per patch of the padded, resized image: colour / shape / size class (0 = background) and
    the owning object's box on the padded square (0..1). `record` is a raw demo image record."""
    width, height = record["width"], record["height"]
    owner = np.zeros((height, width), dtype=np.uint8)  # 0 = background, k + 1 = object k
    for k, obj in enumerate(record["objects"]):
        x1, y1, x2, y2 = obj["box"]
        mask = shape_mask(obj["shape"], x2 - x1)
        owner[y1:y2, x1:x2][mask] = k + 1
    side = max(width, height)
    square = np.zeros((side, side), dtype=np.uint8)
    dx, dy = pad_offset(width, height)
    square[dy : dy + height, dx : dx + width] = owner
    small = np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.NEAREST))
    rows = size // patch
    cells = small.reshape(rows, patch, rows, patch).transpose(0, 2, 1, 3).reshape(rows * rows, -1)
    counts = np.stack([(cells == k + 1).sum(1) for k in range(len(record["objects"]))], 1)
    best = counts.argmax(1)
    owned = counts.max(1) >= MIN_PATCH_PIXELS
    labels = {
        name: torch.zeros(rows * rows, dtype=torch.long) for name in ("color", "shape", "size")
    }
    boxes = torch.zeros(rows * rows, 4)
    for p in np.flatnonzero(owned):
        obj = record["objects"][best[p]]
        labels["color"][p] = COLOR_NAMES.index(obj["color"]) + 1
        labels["shape"][p] = SHAPES.index(obj["shape"]) + 1
        labels["size"][p] = SIZES.index(obj["size"]) + 1
        boxes[p] = torch.tensor(box_to_square(obj["box"], width, height))
    return {**labels, "box": boxes}


def frame_labels(actors: list, frame: int) -> torch.Tensor:
    """Multi-hot over PAIRS: the (colour, shape) of every actor visible at `frame`."""
    hot = torch.zeros(len(PAIRS))
    for actor in actors:
        visible, _, _, color = actor.state(frame)
        if visible:
            hot[PAIRS.index((color, actor.shape))] = 1.0
    return hot


def _train(
    params: list[nn.Parameter],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    count: int,
    steps: int,
    schedule: tuple[int, float],
    generator: torch.Generator,
) -> dict:
    """AdamW with cosine decay over `steps` batches drawn (seeded) from range(count)."""
    batch, lr = schedule
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    lr_at = lambda step: lr * 0.5 * (1 + math.cos(math.pi * step / steps))  # noqa: E731
    started, losses = time.perf_counter(), []
    order = torch.randperm(count, generator=generator)
    cursor = 0
    for step in range(steps):
        if cursor + batch > count:
            order, cursor = torch.randperm(count, generator=generator), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = loss_of(index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    tail = max(1, steps // 20)
    return {
        "steps": steps,
        "first_loss": round(float(np.mean(losses[:tail])), 4),
        "last_loss": round(float(np.mean(losses[-tail:])), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def pretrain_image_encoder(root: Path, path: Path, steps: int, generator: torch.Generator) -> dict:
    model = CLIPVisionModel.from_pretrained(path)
    size, patch = model.config.image_size, model.config.patch_size
    records = _records(root, "demo_image") + _records(root, "demo_audio")
    pixels = to_pixel_values(
        np.stack([load_image_padded(root / r["image"], size) for r in records]), CLIP_MEAN, CLIP_STD
    )
    labels = [patch_labels(r, size, patch) for r in records]
    stacked = {k: torch.stack([lab[k] for lab in labels]) for k in labels[0]}
    width = model.config.hidden_size
    heads = nn.ModuleDict({
        "color": nn.Linear(width, len(COLORS) + 1),
        "shape": nn.Linear(width, len(SHAPES) + 1),
        "size": nn.Linear(width, len(SIZES) + 1),
        "box": nn.Linear(width, 4),
    })  # fmt: skip

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        features = _encode_image(model, pixels[index])  # [B, P, D]: the features step's output
        loss = sum(
            nn.functional.cross_entropy(
                heads[k](features).flatten(0, 1), stacked[k][index].flatten()
            )
            for k in ("color", "shape", "size")
        )
        owned = stacked["color"][index] > 0
        box = torch.sigmoid(heads["box"](features))[owned]
        return loss + 10 * nn.functional.l1_loss(box, stacked["box"][index][owned])

    model.train()
    params = list(model.parameters()) + list(heads.parameters())
    report = _train(params, loss_of, len(records), steps, SCHEDULE["image_encoder"], generator)
    model.eval().save_pretrained(path)
    return report


def pretrain_frame_encoder(
    root: Path, path: Path, params: DemoParams, steps: int, generator: torch.Generator
) -> dict:
    model = Blip2VisionModelWithProjection.from_pretrained(path)
    size = model.config.vision_config.image_size
    frames, labels = [], []
    for index in range(len(_records(root, "demo_video"))):
        actors, n_frames = video_actors(params, "train", index)
        video = render_video(actors, params.video_size, n_frames)
        picks = torch.randperm(n_frames, generator=generator)[:FRAMES_PER_VIDEO].tolist()
        for frame in picks:
            small = Image.fromarray(video[frame]).resize((size, size), Image.Resampling.BICUBIC)
            frames.append(np.asarray(small))
            labels.append(frame_labels(actors, frame))
    pixels = to_pixel_values(np.stack(frames), CLIP_MEAN, CLIP_STD)
    targets = torch.stack(labels)
    queries = model.config.num_query_tokens
    head = nn.Linear(queries * model.config.qformer_config.hidden_size, len(PAIRS))

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        features = _encode_frames(model, pixels[index]).flatten(1)
        return nn.functional.binary_cross_entropy_with_logits(head(features), targets[index])

    model.train()
    parameters = list(model.parameters()) + list(head.parameters())
    report = _train(parameters, loss_of, len(frames), steps, SCHEDULE["frame_encoder"], generator)
    model.eval().save_pretrained(path)
    return report


def pretrain_audio_encoder(root: Path, path: Path, steps: int, generator: torch.Generator) -> dict:
    model = ImageBindAudioModel.from_pretrained(path)
    records = _records(root, "demo_audio")
    clips, labels = [], []
    for record in records:
        mel = preprocess_audio(root / record["audio"])  # [clips, 1, mel, frames]
        source = record["objects"][record["source"]]
        label = [COLOR_NAMES.index(source["color"]), SHAPES.index(source["shape"]),
                 SIZES.index(source["size"])]  # fmt: skip
        clips.extend(mel)
        labels.extend([label] * len(mel))
    mels, targets = torch.stack(clips), torch.tensor(labels)
    width = model.config.projection_dim
    heads = nn.ModuleList([nn.Linear(width, n) for n in (len(COLORS), len(SHAPES), len(SIZES))])

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        features = _encode_audio(model, mels[index]) / 20  # the embedding is normalised x 20
        return sum(
            nn.functional.cross_entropy(head(features) * 10, targets[index, k])
            for k, head in enumerate(heads)
        )

    model.train()
    params = list(model.parameters()) + list(heads.parameters())
    report = _train(params, loss_of, len(mels), steps, SCHEDULE["audio_encoder"], generator)
    model.eval().save_pretrained(path)
    return report


def language_lines(root: Path) -> Iterator[str]:
    """The train split's text as the tasks write it: captions, each expression with its box,
    each event with its span, in the default coordinate forms."""
    for record in _records(root, "demo_image"):
        yield record["caption"]
        for expression in record["expressions"]:
            obj = record["objects"][expression["object"]]
            box = box_to_square(obj["box"], record["width"], record["height"])
            yield f"{expression['text']} {format_box(box)}"
    for record in _records(root, "demo_video"):
        yield record["caption"]
        for event in record["events"]:
            span = format_span(event["start"], event["end"], record["duration"])
            yield f"{event['text']} {span}"
    for record in _records(root, "demo_audio"):
        box = box_to_square(record["box"], record["width"], record["height"])
        yield f"{record['caption']} {format_box(box)}"


def pretrain_llm(
    root: Path, path: Path, steps: int, generator: torch.Generator, block: int = 128
) -> dict:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(path)
    stream: list[int] = []
    for line in language_lines(root):
        stream += [tokenizer.bos_token_id, *tokenizer(line, add_special_tokens=False)["input_ids"],
                   tokenizer.eos_token_id]  # fmt: skip
    block = min(block, len(stream))  # a tiny corpus may hold less than one block
    blocks = torch.tensor(stream[: len(stream) // block * block]).view(-1, block)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        ids = blocks[index]
        return model(input_ids=ids, labels=ids).loss

    model.train()
    report = _train(
        list(model.parameters()), loss_of, len(blocks), steps, SCHEDULE["llm"], generator
    )
    model.eval().save_pretrained(path)
    return report


def pretrain_parts(
    root: Path, models: Path, *, seed: int, steps: dict[str, int]
) -> dict[str, dict]:
    """Pretrain the tiny parts under `models` in place, each for `steps[part]` optimizer steps
    (a part with 0 steps, or none given, is left as it is); returns each one's loss report."""
    root, models = Path(root), Path(models)
    params = _params(root)
    parts: dict[str, Callable[[int, torch.Generator], dict]] = {
        "image_encoder": lambda n, g: pretrain_image_encoder(root, models / "image_encoder", n, g),
        "frame_encoder": lambda n, g: pretrain_frame_encoder(
            root, models / "frame_encoder", params, n, g
        ),
        "audio_encoder": lambda n, g: pretrain_audio_encoder(root, models / "audio_encoder", n, g),
        "llm": lambda n, g: pretrain_llm(root, models / "llm", n, g),
    }
    unknown = sorted(set(steps) - set(parts))
    if unknown:
        raise ValueError(
            f"download.models.pretrain: unknown parts {unknown}; expected {list(parts)}"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    reports = {}
    try:
        with torch.random.fork_rng(devices=[]):
            for offset, (name, train) in enumerate(parts.items()):
                if steps.get(name, 0) > 0:
                    torch.manual_seed(seed * 100 + offset)  # the heads' initialisation
                    generator = torch.Generator().manual_seed(seed * 100 + offset)
                    reports[name] = train(steps[name], generator)
    finally:
        torch.set_num_threads(threads)
    return reports
