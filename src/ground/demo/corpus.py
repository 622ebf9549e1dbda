"""Run: python -m ground.demo.corpus --out resources/demo --seed 0 --train 20 --val 4 --test 4

Generates the seeded synthetic demo corpus: shapes to refer to, videos with timed events, sounds to
localise. It stands in for RefCOCO / Charades-STA / VGGSS in the "demo" recipe, so the whole
pipeline runs and learns on a CPU in minutes.

    >>> from ground.demo.corpus import generate_demo_corpus
    >>> generate_demo_corpus(Path("resources/demo"), seed=0, splits={"train": 600, "val": 60, "test": 120})

Writes, under `out` (record paths are relative to `out`):
`media/{images,videos,audio,scenes}/{split}_{i:05d}.{png,mp4,wav,png}`,
`raw/demo_{image,video,audio}/{split}.jsonl` and `corpus.json` (summary and parameters, last).
Every sample draws from its own generator seeded by (seed, split name, modality, index), so the
output is the same for a seed whatever the other splits' sizes and whatever the thread count.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ground.demo.media import (
    atomic_target,
    encode_mp4,
    render_scene,
    sound_caption,
    synth_sound,
    write_png,
    write_wav,
)
from ground.demo.scene import (
    referring_expressions,
    sample_scene,
    scene_caption,
)
from ground.demo.video import (
    EVENT_KINDS,
    MIN_EVENT_SECONDS,
    plan_video,
    render_video,
    video_caption,
)

MODALITY_CODE = {"image": 1, "video": 2, "audio": 3}
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class DemoParams:
    """Everything a sample depends on besides its split and index."""

    out: Path
    seed: int
    image_size: tuple[int, int]
    video_seconds: float
    video_fps: int
    video_size: int
    audio_seconds: float
    sample_rate: int
    video_events: tuple[str, ...] = EVENT_KINDS

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if min(self.image_size) < 48:
            raise ValueError(f"image_size {self.image_size}: both sides must be >= 48 pixels")
        if self.video_size < 48 or self.video_size % 2:
            raise ValueError(f"video_size {self.video_size}: must be even and >= 48 (yuv420p)")
        shortest = math.ceil(MIN_EVENT_SECONDS * self.video_fps - 1e-9)
        if self.video_fps < 1 or round(self.video_seconds * self.video_fps) < shortest + 2:
            raise ValueError(
                f"video_seconds={self.video_seconds}, video_fps={self.video_fps}: too short for "
                f"a {MIN_EVENT_SECONDS} s event with frames outside it"
            )
        if self.audio_seconds < 1 or self.sample_rate < 8000:
            raise ValueError("audio_seconds must be >= 1 and sample_rate >= 8000")


def sample_rng(seed: int, split: str, modality: str, index: int) -> np.random.Generator:
    """A generator private to one sample: no sample's content depends on how many others exist."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), MODALITY_CODE[modality], index])


def _oriented(rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
    """Landscape or portrait at random, so the converter's pad-to-square is exercised both ways."""
    width, height = size
    return (width, height) if rng.random() < 0.5 else (height, width)


def image_record(params: DemoParams, split: str, index: int) -> dict:
    """Draw one referring-expression image and return its jsonl record."""
    rng = sample_rng(params.seed, split, "image", index)
    width, height = _oriented(rng, params.image_size)
    objs = sample_scene(rng, width, height, int(rng.integers(2, 5)), distinct_colors=False)
    name = f"{split}_{index:05d}"
    image = f"media/images/{name}.png"
    write_png(render_scene(objs, width, height), params.out / image)
    return {
        "id": name,
        "image": image,
        "width": width,
        "height": height,
        "objects": [o.record() for o in objs],
        "caption": scene_caption(objs),
        "expressions": referring_expressions(rng, objs),
    }


def video_actors(params: DemoParams, split: str, index: int) -> tuple[list, int]:
    """The plan of one video (its actors) and its frame count: a pure function of the seed, so
    the demo's encoder pretraining sees the exact frames the MP4 holds without decoding it."""
    rng = sample_rng(params.seed, split, "video", index)
    n_frames = round(params.video_seconds * params.video_fps)
    actors = plan_video(rng, params.video_size, n_frames, params.video_fps, params.video_events)
    return actors, n_frames


def video_record(params: DemoParams, split: str, index: int) -> dict:
    """Plan, render and encode one video with 1-3 timed events; return its jsonl record."""
    fps, size = params.video_fps, params.video_size
    actors, n_frames = video_actors(params, split, index)
    name = f"{split}_{index:05d}"
    video = f"media/videos/{name}.mp4"
    encode_mp4(render_video(actors, size, n_frames), fps, params.out / video)
    events = sorted((a for a in actors if a.kind != "static"), key=lambda a: (a.start, a.end))
    return {
        "id": name,
        "video": video,
        "duration": n_frames / fps,
        "fps": fps,
        "width": size,
        "height": size,
        "caption": video_caption(actors, n_frames),
        "events": [a.event(fps) for a in events],
    }


def audio_record(params: DemoParams, split: str, index: int) -> dict:
    """A scene of distinctly coloured shapes plus the sound of one of them; its jsonl record."""
    rng = sample_rng(params.seed, split, "audio", index)
    width, height = _oriented(rng, params.image_size)
    objs = sample_scene(rng, width, height, int(rng.integers(2, 5)), distinct_colors=True)
    source = int(rng.integers(len(objs)))
    samples = synth_sound(rng, objs[source], params.audio_seconds, params.sample_rate)
    name = f"{split}_{index:05d}"
    audio, image = f"media/audio/{name}.wav", f"media/scenes/{name}.png"
    write_wav(samples, params.sample_rate, params.out / audio)
    write_png(render_scene(objs, width, height), params.out / image)
    return {
        "id": name,
        "audio": audio,
        "duration": len(samples) / params.sample_rate,
        "image": image,
        "width": width,
        "height": height,
        "objects": [o.record() for o in objs],
        "source": source,
        "box": list(objs[source].box),
        "caption": sound_caption(objs[source]),
    }


BUILDERS: dict[str, Callable[[DemoParams, str, int], dict]] = {
    "demo_image": image_record,
    "demo_video": video_record,
    "demo_audio": audio_record,
}


def write_jsonl(records: list[dict], path: Path) -> None:
    """All lines or none: a half-written file never appears under the final name."""
    with atomic_target(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _check_splits(splits: dict[str, int]) -> None:
    if not splits:
        raise ValueError("splits is empty; expected e.g. {'train': 600, 'val': 60, 'test': 120}")
    for name, count in splits.items():
        if not _SPLIT_NAME.match(name):
            raise ValueError(f"split name {name!r}: use letters, digits, '_' or '-' only")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"split {name!r}: count must be an int >= 0, got {count!r}")


def generate_demo_corpus(
    out: Path,
    *,
    seed: int,
    splits: dict[str, int],
    image_size: tuple[int, int] = (80, 64),
    video_seconds: float = 8.0,
    video_fps: int = 8,
    video_size: int = 64,
    audio_seconds: float = 6.0,
    sample_rate: int = 16000,
    video_events: tuple[str, ...] = EVENT_KINDS,
) -> dict:
    """Write the corpus under `out`; `splits` gives samples per modality. Returns the summary.

    ffmpeg runs as one single-threaded process per video, so a thread pool over samples keeps all
    cores busy; records are gathered in index order, so the thread count never shows in the output.
    """
    started = time.perf_counter()
    _check_splits(splits)
    params = DemoParams(
        Path(out),
        seed,
        tuple(image_size),
        video_seconds,
        video_fps,
        video_size,
        audio_seconds,
        sample_rate,
        tuple(video_events),
    )
    counts: dict[str, dict[str, int]] = {}
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        for dataset, build in BUILDERS.items():
            counts[dataset] = {}
            for split, count in splits.items():
                records = list(pool.map(functools.partial(build, params, split), range(count)))
                write_jsonl(records, params.out / "raw" / dataset / f"{split}.jsonl")
                counts[dataset][split] = len(records)
    summary = {"datasets": counts, "seconds": round(time.perf_counter() - started, 2)}
    parameters = {k: v for k, v in asdict(params).items() if k != "out"} | {"splits": dict(splits)}
    with atomic_target(params.out / "corpus.json") as tmp:
        tmp.write_text(json.dumps({**summary, "parameters": parameters}, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Generate the seeded synthetic demo corpus (images, videos, sounds)."
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=600, help="train samples per modality")
    parser.add_argument("--val", type=int, default=60, help="val samples per modality")
    parser.add_argument("--test", type=int, default=120, help="test samples per modality")
    args = parser.parse_args(argv)
    splits = {"train": args.train, "val": args.val, "test": args.test}
    print(json.dumps(generate_demo_corpus(args.out, seed=args.seed, splits=splits), indent=2))


if __name__ == "__main__":
    main()
