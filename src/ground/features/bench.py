"""Timing the video frame samplers against each other on the same videos.

    >>> from ground.features.bench import bench_video_decoding, make_bench_videos
    >>> videos = make_bench_videos(Path("/tmp/bench"), count=4, seconds=60, fps=25)
    >>> bench_video_decoding(videos, num_frames=64, size=224)["speedup"]

The command-line wrapper is `benchmarks/video_decoding.py`. Three samplers return the same frames:
`seek` (`sample_frames`: one seeking ffmpeg per frame), `decode_all` (every frame through the
pipe, picked in Python) and `single_pass` (one ffmpeg decodes every frame but pipes only the
picked ones). A seek decodes from the keyframe before its timestamp, on average half a GOP, so
`seek` decodes about num_frames * gop / 2 frames against the video's T: the cheaper method
depends on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np

from ground.common.media import MediaError, ffmpeg_exe
from ground.features.video import (
    sample_frames,
    sample_frames_decode_all,
    sample_frames_single_pass,
)

SAMPLERS: dict[str, Callable[[Path, int, int], np.ndarray]] = {
    "seek": sample_frames,
    "decode_all": sample_frames_decode_all,
    "single_pass": sample_frames_single_pass,
}


def make_bench_videos(
    out: Path,
    count: int,
    seconds: float,
    fps: int,
    size: tuple[int, int] = (320, 240),
    gop: int = 250,
) -> list[Path]:
    """`count` H.264 videos of ffmpeg's testsrc2 pattern (moving, so every frame differs).

    `gop` is the keyframe interval in frames (250 is x264's default). Files already there with
    the same parameters are reused: their names carry the parameters.
    """
    out.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for i in range(count):
        path = out / f"bench{i:02d}_{seconds:g}s_{fps}fps_{width}x{height}_gop{gop}.mp4"
        if not path.is_file():
            _encode_testsrc(path, seconds, fps, width, height, gop, seed=i)
        paths.append(path)
    return paths


def _encode_testsrc(
    path: Path, seconds: float, fps: int, width: int, height: int, gop: int, seed: int
) -> None:
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    # A different hue per video keeps the files distinct without slowing the encode down.
    stream = (
        ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}", f="lavfi")
        .filter("hue", h=37 * seed)
        .output(str(tmp), vcodec="libx264", pix_fmt="yuv420p", g=gop, an=None)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
    )
    try:
        stream.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as err:
        raise MediaError(
            f"{path}: ffmpeg could not write it ({err.stderr.decode()[-300:]})"
        ) from err
    tmp.replace(path)


def bench_video_decoding(
    videos: list[Path], num_frames: int, size: int, repeats: int = 1
) -> dict[str, Any]:
    """Sampled frames per second of each sampler over the same videos, and seek's speed-up.

    The samplers take turns video by video, so disk caches and machine load favour none; a
    warm-up pass reads every file once first. `max_abs_diff` is the largest pixel difference
    of any sampler from `seek` (0 up to codec noise: they must pick the same frames).
    """
    for video in videos:
        video.read_bytes()  # warm the page cache for everyone
    seconds = dict.fromkeys(SAMPLERS, 0.0)
    max_diff = dict.fromkeys(SAMPLERS, 0)
    for _ in range(repeats):
        for video in videos:
            reference = None
            for name, sampler in SAMPLERS.items():
                started = time.perf_counter()
                frames = sampler(video, num_frames, size)
                seconds[name] += time.perf_counter() - started
                if reference is None:
                    reference = frames.astype(np.int16)
                diff = int(np.abs(frames.astype(np.int16) - reference).max())
                max_diff[name] = max(max_diff[name], diff)
    sampled = num_frames * len(videos) * repeats
    methods = {
        name: {
            "frames": sampled,
            "seconds": round(seconds[name], 3),
            "frames_per_s": round(sampled / seconds[name], 1),
            "max_abs_diff": max_diff[name],
        }
        for name in SAMPLERS
    }
    return {
        "videos": len(videos),
        "num_frames": num_frames,
        "size": size,
        "repeats": repeats,
        "methods": methods,
        # > 1 means seeking is faster than decoding every frame.
        "speedup": round(seconds["decode_all"] / seconds["seek"], 2),
    }
