"""Benchmark: seeking one frame at a time vs decoding every frame, on the same videos.

    .venv/bin/python benchmarks/video_decoding.py --videos 4 --seconds 60
    .venv/bin/python benchmarks/video_decoding.py --videos 1 --seconds 5 --frames 8   # seconds

Writes `--videos` H.264 testsrc2 videos (kept in `--out` and reused), samples `--frames` uniform
frames from each with every sampler of `ground.features.bench` and prints a table. "frames
decoded" is what ffmpeg decodes: every frame for the one-process samplers; for `seek`, from the
keyframe before each timestamp up to it (computed from the GOP, B-frame look-ahead not counted).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from ground.features.bench import bench_video_decoding, make_bench_videos
from ground.features.video import uniform_timestamps


def seek_decoded_frames(seconds: float, fps: int, gop: int, num_frames: int) -> int:
    """Frames a seek decodes: from the GOP's keyframe to the first frame at or after t."""
    total = 0
    for t in uniform_timestamps(seconds, num_frames):
        frame = min(math.ceil(t * fps - 1e-9), int(seconds * fps) - 1)
        total += frame % gop + 1
    return total


def print_table(result: dict, decoded: dict[str, int]) -> None:
    print(
        f"{'method':<12} {'frames':>7} {'decoded':>9} {'seconds':>8} {'frames/s':>9} {'max|diff|':>9}"
    )
    for name, row in result["methods"].items():
        print(
            f"{name:<12} {row['frames']:>7} {decoded[name]:>9} {row['seconds']:>8.2f} "
            f"{row['frames_per_s']:>9.1f} {row['max_abs_diff']:>9}"
        )
    print(f"seek speed-up over decode_all: {result['speedup']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4, help="number of test videos")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each video")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--resolution", default="320x240", help="WIDTHxHEIGHT of the videos")
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval in frames")
    parser.add_argument("--frames", type=int, default=64, help="frames sampled per video")
    parser.add_argument("--size", type=int, default=224, help="side of the sampled frames")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the videos here")
    parser.add_argument("--json", action="store_true", help="also print the raw result")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        width, height = (int(n) for n in args.resolution.split("x"))
        videos = make_bench_videos(
            out, args.videos, args.seconds, args.fps, size=(width, height), gop=args.gop
        )
        result = bench_video_decoding(videos, args.frames, args.size, args.repeats)
    runs = args.videos * args.repeats
    every = round(args.seconds * args.fps) * runs
    decoded = {
        "seek": seek_decoded_frames(args.seconds, args.fps, args.gop, args.frames) * runs,
        "decode_all": every,
        "single_pass": every,
    }
    print(
        f"{args.videos} videos x {args.repeats}: {args.resolution}, {args.seconds:g} s, {args.fps} fps, "
        f"GOP {args.gop}, {args.frames} frames at {args.size}x{args.size}"
    )
    print_table(result, decoded)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
