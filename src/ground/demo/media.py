"""Pixels, samples and files for the synthetic demo corpus: PNG, 16-bit WAV and H.264 MP4 writers.

Used by `ground.demo.corpus` (run `python -m ground.demo.corpus --out DIR --seed 0`). Each
writer goes through `atomic_target`, so an interrupted run never leaves a truncated file under the
final name.
"""

from __future__ import annotations

import contextlib
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import ffmpeg
import numpy as np
from PIL import Image

from ground.common.media import ffmpeg_exe
from ground.demo.scene import BACKGROUND, COLORS, Shape, shape_mask

# The sound of an object: pitch from its colour (a fifth apart, so neighbours never share a
# fundamental), timbre from its shape, rhythm from its size. Captions use the words.
PITCH: dict[str, tuple[float, str]] = {
    "red": (196.0, "very low"),
    "yellow": (294.0, "low"),
    "green": (440.0, "medium"),
    "cyan": (659.0, "high"),
    "blue": (988.0, "very high"),
    "purple": (1480.0, "extremely high"),
}
TIMBRE = {"circle": "pure", "square": "buzzing", "triangle": "harsh"}
# (beep seconds, period seconds, words)
RHYTHM = {"small": (0.12, 0.3, "quick short beeps"), "large": (0.6, 1.2, "slow long pulses")}
NOISE_STD = 0.01
_TABLE_SIZE = 4096


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def paint(canvas: np.ndarray, shape: str, color: str, x: int, y: int, side: int) -> None:
    """Draw a shape in place on an HxWx3 uint8 canvas, top-left of its tight box at (x, y)."""
    mask = shape_mask(shape, side)
    h, w = mask.shape
    canvas[y : y + h, x : x + w][mask] = COLORS[color]


def render_scene(objs: list[Shape], width: int, height: int) -> np.ndarray:
    """An HxWx3 image of the shapes on the plain background."""
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for obj in objs:
        paint(canvas, obj.shape, obj.color, obj.box[0], obj.box[1], side_of(obj))
    return canvas


def side_of(obj: Shape) -> int:
    """The side a shape was drawn with: its masks are square before cropping, width == side."""
    return obj.box[2] - obj.box[0]


def write_png(pixels: np.ndarray, path: Path) -> None:
    with atomic_target(path) as tmp:
        Image.fromarray(pixels, "RGB").save(tmp, format="PNG", optimize=False)


def _wavetable(shape: str, frequency: float, sample_rate: int) -> np.ndarray:
    """One band-limited period (harmonics below 0.45 sr), so square/saw waves do not alias."""
    harmonics = {"circle": [1], "square": range(1, 16, 2), "triangle": range(1, 16)}[shape]
    phase = np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE
    table = np.zeros(_TABLE_SIZE + 1)
    for k in harmonics:
        if k * frequency < 0.45 * sample_rate:
            table += np.sin(2 * np.pi * k * phase) / k
    return table / np.abs(table).max()


def synth_sound(
    rng: np.random.Generator, obj: Shape, seconds: float, sample_rate: int
) -> np.ndarray:
    """int16 mono samples: the object's tone, gated into its rhythm, plus mild white noise."""
    frequency, _ = PITCH[obj.color]
    beep, period, _ = RHYTHM[obj.size]
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    phase = (frequency * t + rng.random()) % 1.0
    tone = np.interp(
        phase * _TABLE_SIZE,
        np.arange(_TABLE_SIZE + 1),
        _wavetable(obj.shape, frequency, sample_rate),
    )
    offset = rng.uniform(0.0, period / 2)
    local = (t - offset) % period
    ramp = 0.01  # 10 ms fades: no clicks, which would add broadband energy to every sound
    envelope = (
        np.clip(np.minimum(local, beep - local) / ramp, 0.0, 1.0) * (local < beep) * (t >= offset)
    )
    signal = rng.uniform(0.35, 0.6) * tone * envelope + rng.normal(0.0, NOISE_STD, n)
    return (np.clip(signal, -1.0, 1.0) * 32767).round().astype("<i2")


def sound_caption(obj: Shape) -> str:
    """'a high pure tone repeated in quick short beeps': every word is audible in the signal."""
    pitch = PITCH[obj.color][1]
    article = "an" if pitch[0] in "aeiou" else "a"
    return f"{article} {pitch} {TIMBRE[obj.shape]} tone repeated in {RHYTHM[obj.size][2]}"


def write_wav(samples: np.ndarray, sample_rate: int, path: Path) -> None:
    with atomic_target(path) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype("<i2").tobytes())


def encode_mp4(frames: np.ndarray, fps: int, path: Path) -> None:
    """H.264/yuv420p MP4 from NxHxWx3 uint8 frames piped to ffmpeg.

    One keyframe per second keeps seeking cheap; bit-exact flags and dropping x264's SEI (which
    carries its version string) make the bytes depend on the frames, not on the ffmpeg build, as
    far as the encoder allows. One thread per encode: the caller runs encodes in parallel.
    """
    _, height, width, _ = frames.shape
    stream = ffmpeg.input(
        "pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps
    )
    options = {
        "vcodec": "libx264",
        "pix_fmt": "yuv420p",
        "preset": "veryfast",
        "crf": 16,
        "g": fps,
        "threads": 1,
        "fflags": "+bitexact",
        "flags:v": "+bitexact",
        "map_metadata": -1,
        "bsf:v": "filter_units=remove_types=6",
        "f": "mp4",
    }
    with atomic_target(path) as tmp:
        try:
            stream.output(str(tmp), **options).overwrite_output().run(
                cmd=ffmpeg_exe(), input=np.ascontiguousarray(frames).tobytes(), quiet=True
            )
        except ffmpeg.Error as error:
            detail = (
                error.stderr.decode(errors="replace").strip().splitlines()[-1:]
                if error.stderr
                else []
            )
            raise RuntimeError(f"{path}: ffmpeg failed to encode ({' '.join(detail)})") from error
