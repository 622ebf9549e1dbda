"""Sampling frames from a video for the feature step: uniform over the whole video, squashed square.

    >>> from ground.features.video import sample_frames
    >>> frames = sample_frames("resources/demo/media/videos/train_00000.mp4", num_frames=64, size=224)
    >>> frames.shape, frames.dtype       # ((64, 224, 224, 3), dtype('uint8'))

`sample_frames` runs one short ffmpeg process per frame that seeks (`-ss t` before `-i`) and
decodes a single frame, so it never holds a whole video in memory. ffmpeg's input seek is
accurate: it jumps to the keyframe before `t`, decodes forward and returns the first frame whose
timestamp is >= t (rounded to the stream's time base). Two samplers return the same frames from
one ffmpeg process that decodes every frame: `sample_frames_decode_all` pipes them all and picks
in Python (the baseline), `sample_frames_single_pass` lets ffmpeg's `select` filter pass on only
the frames next to each timestamp. Each seek decodes half a GOP on average, so seeking wins only
when num_frames * GOP / 2 is well below the video's frame count; `benchmarks/video_decoding.py`
measures all three.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ffmpeg
import numpy as np

from ground.common.media import MediaError, ffmpeg_exe, media_duration

# How far before a failed seek to retry, in seconds: a seek past the last frame (container
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
    """The first frame at or after `t`; past the end of the stream, its last frame."""
    frame = _grab(path, t, size, to_end=False)
    if frame is not None:
        return frame
    # Nothing at or after t: decode from a little earlier to the end and keep the last frame,
    # widening the step until something decodes.
    for back in _RETRY_STEPS:
        frame = _grab(path, max(0.0, t - back), size, to_end=True)
        if frame is not None:
            return frame
        if t - back <= 0:
            break
    raise MediaError(f"{path}: no decodable video frame at or before {t:.3f} s")


def _grab(path: Path, t: float, size: int, to_end: bool) -> np.ndarray | None:
    """The first frame from `t` on, or with `to_end` the last one; None if there is none."""
    limit = {} if to_end else {"frames:v": 1}
    stream = (
        ffmpeg.input(str(path), ss=f"{t:.6f}")
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{size}x{size}", **limit)
        # One decoding thread: several of these run side by side, and frame threading would
        # only add start-up latency to a single-frame decode.
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1")
    )
    out = _run(stream, path)
    nbytes = size * size * 3
    if len(out) < nbytes:
        return None
    last = (len(out) // nbytes - 1) * nbytes
    return np.frombuffer(out, np.uint8, count=nbytes, offset=last).reshape(size, size, 3)


def _run(stream: ffmpeg.nodes.OutputStream, path: Path) -> bytes:
    if not path.is_file():
        raise MediaError(f"{path}: no such media file")
    out, _ = _run_with_stderr(stream, path)
    return out


def _run_with_stderr(stream: ffmpeg.nodes.OutputStream, path: Path) -> tuple[bytes, str]:
    try:
        out, err = stream.run(
            cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True, quiet=True
        )
    except ffmpeg.Error as err:
        lines = err.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else "no output"
        raise MediaError(f"{path}: ffmpeg cannot decode it ({reason})") from err
    return out, err.decode(errors="replace")


def decode_all_frames(path: str | Path, size: int) -> np.ndarray:
    """Every frame of the video as uint8 [T, size, size, 3] from one ffmpeg process."""
    return _decode(Path(path), size)[0]


def sample_frames_decode_all(path: str | Path, num_frames: int, size: int) -> np.ndarray:
    """The frames `sample_frames` returns, picked from a full decode (benchmark baseline)."""
    path = Path(path)
    times = uniform_timestamps(media_duration(path), num_frames)
    frames, pts, time_base = _decode(path, size)
    picks = _first_at_or_after(pts, times, time_base)
    return frames[np.minimum(picks, len(frames) - 1)]


def sample_frames_single_pass(path: str | Path, num_frames: int, size: int) -> np.ndarray:
    """The frames `sample_frames` returns, from one ffmpeg process that decodes every frame but
    scales and pipes only the few next to each timestamp (ffmpeg's `select` filter)."""
    path = Path(path)
    times = uniform_timestamps(media_duration(path), num_frames)
    # Frame 0 anchors the timestamps; per target, keep the frames within 1 ms of straddling it:
    # a superset of the exact pick, which is then made on integer ticks like the other samplers.
    terms = [f"gte(t-start_t,{t - 1e-3:.6f})*lt(prev_t-start_t,{t + 1e-3:.6f})" for t in times]
    frames, pts, time_base = _decode(path, size, select="+".join(["eq(n,0)", *terms]))
    picks = _first_at_or_after(pts, times, time_base)
    # A target past the last frame has no candidate: seek back like `sample_frames` does.
    out = [frames[k] if k < len(frames) else _frame_at(path, t, size) for k, t in zip(picks, times)]
    return np.stack(out)


def _first_at_or_after(pts: np.ndarray, times: list[float], time_base: float) -> np.ndarray:
    """Index of the first frame at or after each time, rounded to the stream's time base: the
    rule of ffmpeg's accurate input seek. len(pts) where no frame is that late."""
    return np.searchsorted(pts, np.rint(np.asarray(times) / time_base), side="left")


def _decode(
    path: Path, size: int, select: str | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Frames (all, or those `select` keeps), their timestamps in time-base ticks from the first
    frame output, and the time base in seconds."""
    if not path.is_file():
        raise MediaError(f"{path}: no such media file")
    stream = ffmpeg.input(str(path)).video
    if select:
        stream = stream.filter("select", select)
    stream = (
        stream.filter("showinfo", checksum=0)
        # passthrough: raw video has no timestamps, and a constant-rate output would duplicate
        # or drop frames to fill gaps.
        .output(
            "pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{size}x{size}", fps_mode="passthrough"
        )
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
