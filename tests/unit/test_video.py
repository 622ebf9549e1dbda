"""Frame sampling: the right timestamps, the same frames from every sampler, loud failures."""

from __future__ import annotations

import math
from pathlib import Path

import ffmpeg
import numpy as np
import pytest

from ground.common.media import MediaError, ffmpeg_exe
from ground.features.video import (
    decode_all_frames,
    sample_frames,
    sample_frames_decode_all,
    sample_frames_single_pass,
    uniform_timestamps,
)

FPS = 10
SECONDS = 4
# One solid colour per second in the top half; the bottom half's grey level counts frames.
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=np.uint8)
GREY_STEP = 6


def synthetic_frames() -> np.ndarray:
    frames = np.zeros((SECONDS * FPS, 64, 64, 3), dtype=np.uint8)
    for i in range(len(frames)):
        frames[i, :32] = COLOURS[i // FPS]
        frames[i, 32:] = i * GREY_STEP
    return frames


def write_video(path: Path, frames: np.ndarray, audio_seconds: float | None = None) -> Path:
    """H.264 with a 2 s GOP (so seeks start at a keyframe before t), optionally a sine track."""
    height, width = frames.shape[1:3]
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=FPS)
    streams = [video]
    if audio_seconds:
        streams.append(ffmpeg.input(f"sine=duration={audio_seconds}", f="lavfi"))
    out = ffmpeg.output(
        *streams, str(path), vcodec="libx264", pix_fmt="yuv420p", g=2 * FPS, qp=4
    ).global_args("-hide_banner", "-loglevel", "error")
    out.run(cmd=ffmpeg_exe(), input=frames.tobytes(), capture_stdout=True, capture_stderr=True)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "colours.mp4", synthetic_frames())


def frame_index(frame: np.ndarray) -> int:
    return round(float(frame[len(frame) * 5 // 8 :].mean()) / GREY_STEP)


def second_of(frame: np.ndarray) -> int:
    distances = np.abs(
        COLOURS.astype(int) - frame[: len(frame) * 3 // 8].reshape(-1, 3).mean(0)
    ).sum(1)
    return int(distances.argmin())


def test_uniform_timestamps_cover_the_whole_video() -> None:
    assert uniform_timestamps(4.0, 4) == [0.5, 1.5, 2.5, 3.5]
    with pytest.raises(ValueError):
        uniform_timestamps(0.0, 4)


def test_sampled_frames_come_from_their_timestamps(video: Path) -> None:
    frames = sample_frames(video, num_frames=8, size=32)
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    times = uniform_timestamps(SECONDS, 8)  # 0.25, 0.75, ... : first frame at or after each
    assert [frame_index(f) for f in frames] == [math.ceil(t * FPS) for t in times]
    assert [second_of(f) for f in frames] == [int(t) for t in times]


@pytest.mark.parametrize("sampler", [sample_frames_decode_all, sample_frames_single_pass])
def test_every_sampler_returns_the_seek_samplers_frames(video: Path, sampler) -> None:
    seek = sample_frames(video, num_frames=13, size=32).astype(int)
    other = sampler(video, 13, 32).astype(int)
    assert other.shape == seek.shape
    assert np.abs(other - seek).max() <= 2  # identical decodes; margin for codec noise only


def test_decode_all_returns_every_frame(video: Path) -> None:
    frames = decode_all_frames(video, 16)
    assert frames.shape == (SECONDS * FPS, 16, 16, 3)


def test_seek_past_the_video_falls_back_to_its_last_frame(tmp_path: Path) -> None:
    # The audio track outlasts the video by 2 s: the container says 6 s.
    path = write_video(tmp_path / "long_audio.mp4", synthetic_frames(), audio_seconds=6)
    for sampler in (sample_frames, sample_frames_decode_all, sample_frames_single_pass):
        frames = sampler(path, 4, 32)  # at 0.75, 2.25, 3.75, 5.25 s
        assert [frame_index(f) for f in frames] == [8, 23, 38, SECONDS * FPS - 1], sampler


def test_garbage_file_raises_media_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    for sampler in (sample_frames, sample_frames_decode_all):
        with pytest.raises(MediaError, match="garbage.mp4"):
            sampler(path, 4, 32)
    with pytest.raises(MediaError, match="garbage.mp4"):
        decode_all_frames(path, 32)


def test_audio_only_file_raises_media_error(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    ffmpeg.input("sine=duration=1", f="lavfi").output(str(path)).run(
        cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True
    )
    with pytest.raises(MediaError, match="tone.wav"):
        sample_frames(path, 2, 32)
