"""Audio -> ImageBind log-mel clips, as ImageBind's `load_and_transform_audio_data` (and so
GroundingGPT) prepares them, without torchaudio.

    >>> from ground.common.audio import preprocess_audio
    >>> preprocess_audio("resources/demo/media/sounds/train_00000.wav").shape
    torch.Size([3, 1, 128, 204])

Steps (ImageBind imagebind/data.py, torchaudio.compliance.kaldi.fbank with ImageBind's options):
decode to 16 kHz with ffmpeg; 3 clips of 2 s whose starts split (duration - 2 s) into 3 equal
steps (pytorchvideo's ConstantClipsPerVideoSampler); per clip: minus its mean, Kaldi fbank
(25 ms hanning window, 10 ms shift, no dither, per-frame DC removal, pre-emphasis 0.97, power
spectrum of a 512-point FFT, 128 triangular bins on the Kaldi mel scale from 20 Hz to Nyquist, log
floored at float eps, only whole frames), transposed to [mel, time], cut or padded with zeros to
204 frames, then (x + 4.268) / 9.138.
"""

from __future__ import annotations

import functools
import math
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ground.common.media import MediaError, ffmpeg_exe

FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
FLOAT_EPS = torch.finfo(torch.float32).eps  # Kaldi's std::numeric_limits<float>::epsilon()


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream's FIRST channel at `sample_rate`, as float32 in [-1, 1].

    The first channel, not a down-mix: ImageBind hands the multi-channel waveform to Kaldi's
    fbank, which reads channel 0 only.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such audio file")
    command = [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
        "-i", str(path), "-map", "0:a:0", "-af", "pan=mono|c0=c0",
        "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, check=False)  # rc checked below
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(
            f"{path}: not a readable audio file ({lines[-1] if lines else 'no output'})"
        )
    wave = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if wave.size == 0:
        raise MediaError(f"{path}: the audio stream holds no samples")
    return wave


def clip_bounds(
    num_samples: int, sample_rate: int, clips: int, clip_seconds: float
) -> list[tuple[int, int]]:
    """[start, end) sample indices of each clip; `end` may pass the waveform's end.

    pytorchvideo's ConstantClipsPerVideoSampler: start_i = i * max(duration - clip, 0) / clips,
    in exact fractions, truncated to samples. The last clip therefore ends before the audio
    does (by one step), and audio shorter than a clip gives `clips` copies of its start.
    """
    clip = Fraction(clip_seconds)  # exact, so start + clip stays a Fraction as in pytorchvideo
    # duration - clip in float first, as the sampler receives a float duration
    max_start = Fraction(max(num_samples / sample_rate - clip_seconds, 0))
    step = max_start / clips
    return [
        (int(i * step * sample_rate), int((i * step + clip) * sample_rate)) for i in range(clips)
    ]


@functools.cache
def _mel_banks(num_bins: int, fft_size: int, sample_rate: float) -> torch.Tensor:
    """Triangular filters [num_bins, fft_size // 2 + 1], evenly spaced on 1127 ln(1 + f / 700)
    from 20 Hz to Nyquist; the Nyquist column is zero as in Kaldi."""

    # same float32 operation order as torchaudio, so the banks agree to the last bit or so
    low = 1127.0 * math.log(1.0 + LOW_FREQ_HZ / 700.0)
    high = 1127.0 * math.log(1.0 + 0.5 * sample_rate / 700.0)
    delta = (high - low) / (num_bins + 1)  # +1: the outer bins' edges reach low and high
    index = torch.arange(num_bins, dtype=torch.float32).unsqueeze(1)
    left, center, right = (low + (index + k) * delta for k in (0.0, 1.0, 2.0))
    fft_hz = sample_rate / fft_size * torch.arange(fft_size // 2, dtype=torch.float32)
    fft_mel = 1127.0 * (1.0 + fft_hz / 700.0).log()
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_fbank(wave: torch.Tensor, sample_rate: int, num_mel_bins: int = 128) -> torch.Tensor:
    """Log mel filterbank [frames, num_mel_bins] of a 1-D waveform, equal to
    `torchaudio.compliance.kaldi.fbank(wave[None], sample_frequency=sample_rate,
    window_type="hanning", dither=0.0, num_mel_bins=num_mel_bins)` (other options at defaults).

    frames = 1 + (samples - window) // shift (Kaldi's snip_edges); 0 frames when the waveform is
    shorter than one window (torchaudio refuses that case).
    """
    if wave.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {list(wave.shape)}")
    window = int(sample_rate * FRAME_LENGTH_MS / 1000)
    shift = int(sample_rate * FRAME_SHIFT_MS / 1000)
    fft_size = 1 << (window - 1).bit_length()  # next power of two: 400 -> 512
    if wave.numel() < window:
        return wave.new_zeros((0, num_mel_bins))
    frames = wave.unfold(0, window, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    # Kaldi pre-emphasis: x[j] -= 0.97 * x[j - 1], with x[-1] taken as x[0]
    previous = torch.cat((frames[:, :1], frames[:, :-1]), dim=1)
    frames = frames - PREEMPHASIS * previous
    frames = frames * torch.hann_window(
        window, periodic=False, dtype=wave.dtype, device=wave.device
    )
    frames = torch.nn.functional.pad(frames, (0, fft_size - window))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = _mel_banks(num_mel_bins, fft_size, float(sample_rate)).to(wave.device, wave.dtype)
    energies = power @ banks.T
    return torch.clamp(energies, min=FLOAT_EPS).log()


def clip_melspec(
    clip: torch.Tensor, sample_rate: int, num_mel_bins: int, target_length: int
) -> torch.Tensor:
    """One clip -> [1, mel, target_length] before normalisation (ImageBind's waveform2melspec).
    Missing frames are zeros in the LOG domain, as ImageBind pads the fbank, not the audio."""
    fbank = kaldi_fbank(clip - clip.mean(), sample_rate, num_mel_bins).T
    frames = fbank.shape[1]
    if frames < target_length:
        fbank = torch.nn.functional.pad(fbank, (0, target_length - frames))
    return fbank[:, :target_length].unsqueeze(0)


def preprocess_audio(
    path: str | Path,
    *,
    clips: int = 3,
    clip_seconds: float = 2.0,
    sample_rate: int = 16000,
    mel_bins: int = 128,
    target_length: int = 204,
    mean: float = -4.268,
    std: float = 9.138,
) -> torch.Tensor:
    """An audio file -> normalised log-mel clips [clips, 1, mel_bins, target_length]."""
    wave = torch.from_numpy(load_audio(path, sample_rate))
    if wave.numel() < int(sample_rate * FRAME_LENGTH_MS / 1000):
        raise MediaError(f"{path}: {wave.numel()} samples, shorter than one 25 ms frame")
    specs = [
        clip_melspec(wave[start:end], sample_rate, mel_bins, target_length)
        for start, end in clip_bounds(wave.numel(), sample_rate, clips, clip_seconds)
    ]
    return (torch.stack(specs) - mean) / std
