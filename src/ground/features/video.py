"""Sampling frames from a video for the feature step: uniform over the whole video, squashed square.

    >>> from ground.features.video import sample_frames
    >>> frames = sample_frames("resources/demo/media/videos/train_00000.mp4", num_frames=64, size=224)
    >>> frames.shape, frames.dtype       # ((64, 224, 224, 3), dtype('uint8'))

`sample_frames` runs one short ffmpeg process per frame that seeks (`-ss t` before `-i`) and
decodes a single frame, so it never holds a whole video in memory. ffmpeg's input seek is
accurate: it jumps to the keyframe before `t`, decodes forward and returns the first frame whose
timestamp is >= t. `sample_frames_decode_all` decodes every frame in one process and picks the
same frames by timestamp; it is the baseline `features.bench` compares against (the faster one
depends on the keyframe interval and on how many frames are sampled: see the benchmark).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ffmpeg
import numpy as np

from ground.media import MediaError, ffmpeg_exe, media_duration

# How far before a failed seek to retry, in seconds: a seek at or past the last frame (container
# duration longer than the video stream, e.g. a longer audio track) returns no frame at all.
_RETRY_STEPS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_PTS = re.compile(r"\bn:\s*\d+\s+pts:\s*(-?\d+)")
_TIME_BASE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")


def uniform_timestamps(duration: float, num_frames: int) -> list[float]:
    """Centre of each of `num_frames` equal slices of [0, duration): uniform over the whole video."""
    if duration <= 0 or num_frames <= 0:
        raise ValueError(f"need duration > 0 and num_frames > 0, got {duration}, {num_frames}")
    step = duration / num_frames
    return [(i + 0.5) * step for i in range(num_frames)]


def sample_frames(
    path: str | Path, num_frames: int, size: int, workers: int | None = None
) -> np.ndarray:
    """`num_frames` uniform frames as uint8 [num_frames, size, size, 3], one seeking ffmpeg each.

    Raises MediaError naming the file when ffmpeg cannot read it.
    """
    path = Path(path)
    times = uniform_timestamps(media_duration(path), num_frames)
    # The processes run outside the GIL; a few in flight hide each one's start-up latency.
    workers = workers or min(4, os.cpu_count() or 1, num_frames)
    with ThreadPoolExecutor(workers) as pool:
        frames = list(pool.map(lambda t: _frame_at(path, t, size), times))
    return np.stack(frames)


def _frame_at(path: Path, t: float, size: int) -> np.ndarray:
    """The first frame at or after `t`; near the end, the last frame before `t` that decodes."""
    for back in (0.0, *_RETRY_STEPS):
        frame = _grab_one(path, max(0.0, t - back), size)
        if frame is not None:
            return frame
        if t - back <= 0:
            break
    raise MediaError(f"{path}: no decodable video frame at or before {t:.3f} s")


def _grab_one(path: Path, t: float, size: int) -> np.ndarray | None:
    stream = (
        ffmpeg.input(str(path), ss=f"{t:.6f}")
        .output("pipe:", vframes=1, format="rawvideo", pix_fmt="rgb24", s=f"{size}x{size}")
        # One decoding thread: several of these run side by side, and frame threading would
        # only add start-up latency to a single-frame decode.
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1")
    )
    out = _run(stream, path)
    nbytes = size * size * 3
    if len(out) < nbytes:
        return None
    return np.frombuffer(out, np.uint8, count=nbytes).reshape(size, size, 3)


def _run(stream: ffmpeg.nodes.OutputStream, path: Path) -> bytes:
    if not path.is_file():
        raise MediaError(f"{path}: no such media file")
    out, _ = _run_with_stderr(stream, path)
    return out


def _run_with_stderr(stream: ffmpeg.nodes.OutputStream, path: Path) -> tuple[bytes, str]:
    try:
        out, err = stream.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, quiet=True)
    except ffmpeg.Error as err:
        lines = err.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else "no output"
        raise MediaError(f"{path}: ffmpeg cannot decode it ({reason})") from err
    return out, err.decode(errors="replace")


def decode_all_frames(path: str | Path, size: int) -> np.ndarray:
    """Every frame of the video as uint8 [T, size, size, 3] from one ffmpeg process."""
    return _decode_all(Path(path), size)[0]


def _decode_all(path: Path, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """All frames, their timestamps in time-base ticks from the first frame, and the time base."""
    if not path.is_file():
        raise MediaError(f"{path}: no such media file")
    stream = (
        ffmpeg.input(str(path))
        .video.filter("showinfo", checksum=0)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{size}x{size}")
        .global_args("-nostdin", "-hide_banner")
    )
    out, err = _run_with_stderr(stream, path)
    count = len(out) // (size * size * 3)
    # Integer ticks, not showinfo's pts_time: that is printed with 6 significant digits only.
    pts = np.array([int(m) for m in _PTS.findall(err)], dtype=np.int64)
    base = _TIME_BASE.search(err)
    if count == 0 or len(pts) != count or base is None:
        raise MediaError(f"{path}: decoded {count} frames but saw {len(pts)} timestamps")
    frames = np.frombuffer(out, np.uint8, count=count * size * size * 3)
    return frames.reshape(count, size, size, 3), pts - pts[0], int(base[1]) / int(base[2])


def sample_frames_decode_all(path: str | Path, num_frames: int, size: int) -> np.ndarray:
    """The frames `sample_frames` returns, picked from a full decode (benchmark baseline)."""
    path = Path(path)
    times = uniform_timestamps(media_duration(path), num_frames)
    frames, pts, time_base = _decode_all(path, size)
    # Same rule as ffmpeg's accurate seek: the first frame at or after t rounded to the stream's
    # time base, else the last frame.
    picks = np.searchsorted(pts, np.rint(np.asarray(times) / time_base), side="left")
    return frames[np.minimum(picks, len(frames) - 1)]
