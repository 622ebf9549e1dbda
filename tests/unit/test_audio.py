"""ImageBind audio preprocessing: decoding, clip sampling, Kaldi fbank, padding, errors."""

from __future__ import annotations

import math
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from ground.common.audio import (
    clip_bounds,
    clip_melspec,
    kaldi_fbank,
    load_audio,
    preprocess_audio,
)
from ground.common.media import MediaError

SR = 16000


def write_wav(path: Path, channels: list[np.ndarray], sample_rate: int = SR) -> Path:
    """16-bit PCM WAV with the stdlib; `channels` are float arrays in [-1, 1]."""
    frames = np.stack(channels, axis=1)
    pcm = np.clip(np.round(frames * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(len(channels))
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    return path


def sine(freq: float, seconds: float, sample_rate: int = SR, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * math.pi * freq * t)


def kaldi_mel_center_bin(freq: float, num_bins: int = 128, sample_rate: int = SR) -> int:
    """The bin whose centre is closest to `freq` on the Kaldi mel scale (20 Hz .. Nyquist)."""

    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    low, high = mel(20.0), mel(sample_rate / 2)
    delta = (high - low) / (num_bins + 1)
    centres = [low + (i + 1) * delta for i in range(num_bins)]
    return min(range(num_bins), key=lambda i: abs(centres[i] - mel(freq)))


def test_preprocess_shape_and_values(tmp_path) -> None:
    path = write_wav(tmp_path / "tone.wav", [sine(1000, 3.0)])
    clips = preprocess_audio(path)
    assert clips.shape == (3, 1, 128, 204)
    assert clips.dtype == torch.float32
    assert torch.isfinite(clips).all()


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_energy_peak_in_the_mel_bin_of_the_frequency(freq) -> None:
    fbank = kaldi_fbank(torch.from_numpy(sine(freq, 1.0)).float(), SR)
    assert fbank.shape[1] == 128
    assert int(fbank.mean(dim=0).argmax()) == kaldi_mel_center_bin(freq)


def test_two_seconds_give_198_frames_then_zero_padding() -> None:
    clip = torch.from_numpy(sine(1000, 2.0)).float()
    assert kaldi_fbank(clip, SR).shape == (198, 128)  # 1 + (32000 - 400) // 160
    spec = clip_melspec(clip, SR, 128, 204)
    assert spec.shape == (1, 128, 204)
    # ImageBind pads the log-mel, not the audio: the six extra frames are exact zeros
    assert torch.equal(spec[..., 198:], torch.zeros(1, 128, 6))
    assert spec[..., :198].abs().min() > 0


def test_matches_an_independent_kaldi_implementation() -> None:
    """transformers' numpy path of the AST feature extractor reproduces kaldi.fbank too."""
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    rng = np.random.default_rng(0)
    x = (sine(440, 2.0, amplitude=0.3) + 0.05 * rng.standard_normal(2 * SR)).astype(np.float32)
    with warnings.catch_warnings():  # "a filter is all zeros": bin 3 is empty at 512-point FFT
        warnings.simplefilter("ignore", UserWarning)
        filters = mel_filter_bank(
            num_frequency_bins=257, num_mel_filters=128, min_frequency=20, max_frequency=SR // 2,
            sampling_rate=SR, norm=None, mel_scale="kaldi", triangularize_in_mel_space=True,
        )  # fmt: skip
    reference = spectrogram(
        x.astype(np.float64), window_function(400, "hann", periodic=False),
        frame_length=400, hop_length=160, fft_length=512, power=2.0, center=False,
        preemphasis=0.97, mel_filters=filters, log_mel="log",
        mel_floor=float(np.finfo(np.float32).eps), remove_dc_offset=True,
    ).T  # fmt: skip
    ours = kaldi_fbank(torch.from_numpy(x), SR).numpy()
    assert ours.shape == reference.shape == (198, 128)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_clip_starts_evenly_spaced_over_the_duration() -> None:
    bounds = clip_bounds(10 * SR, SR, clips=3, clip_seconds=2.0)
    # pytorchvideo: starts at i * (10 - 2) / 3 s, so the last clip ends 8/3 s before the end
    assert bounds == [(0, 32000), (42666, 74666), (85333, 117333)]
    starts = [start for start, _ in bounds]
    assert np.ptp(np.diff(starts)) <= 1
    assert all(end - start == 32000 for start, end in bounds)


def test_short_audio_repeats_the_start_and_pads_log_mel_with_zeros(tmp_path) -> None:
    assert clip_bounds(SR, SR, clips=3, clip_seconds=2.0) == [(0, 32000)] * 3
    path = write_wav(tmp_path / "short.wav", [sine(500, 1.0)])
    clips = preprocess_audio(path)
    assert torch.equal(clips[0], clips[2])
    padded = (0.0 - -4.268) / 9.138  # a zero log-mel frame after normalisation
    assert torch.allclose(clips[..., 98:], torch.full_like(clips[..., 98:], padded))


def test_load_audio_resamples_and_takes_the_first_channel(tmp_path) -> None:
    left = sine(440, 1.0, sample_rate=44100, amplitude=0.5)
    path = write_wav(tmp_path / "stereo.wav", [left, np.zeros_like(left)], sample_rate=44100)
    audio = load_audio(path)
    assert audio.dtype == np.float32
    assert abs(audio.size - SR) <= 32
    # a down-mix would halve the amplitude; Kaldi fbank (and so ImageBind) reads channel 0
    assert 0.45 < float(np.abs(audio).max()) < 0.55


def test_garbage_and_missing_files_raise_media_error_naming_them(tmp_path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all " * 64)
    with pytest.raises(MediaError, match="garbage.wav"):
        preprocess_audio(garbage)
    with pytest.raises(MediaError, match="absent.wav"):
        load_audio(tmp_path / "absent.wav")


def test_audio_shorter_than_one_frame_is_refused(tmp_path) -> None:
    path = write_wav(tmp_path / "blip.wav", [sine(1000, 0.01)])
    with pytest.raises(MediaError, match="blip.wav"):
        preprocess_audio(path)
