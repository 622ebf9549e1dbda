"""Image loading: the padded-square geometry the box normaliser relies on, and pixel values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ground.common.image import CLIP_MEAN_RGB, load_image_padded, pad_offset, to_pixel_values
from ground.common.media import MediaError

RED = (255, 0, 0)


def save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)  # PNG: lossless, so colours survive exactly
    return path


def test_wide_image_is_centred_vertically(tmp_path: Path) -> None:
    pixels = np.full((40, 80, 3), 30, dtype=np.uint8)  # W=80, H=40
    pixels[10:20, 60:70] = RED
    square = load_image_padded(save(tmp_path / "wide.png", pixels), size=40)
    assert square.shape == (40, 40, 3) and square.dtype == np.uint8
    # side 80, offset (0, 20): the block moves to x 60..70, y 30..40, then halves in the resize.
    assert pad_offset(80, 40) == (0, 20)
    assert tuple(square[17, 32]) == RED
    assert tuple(square[2, 20]) == CLIP_MEAN_RGB and tuple(square[37, 20]) == CLIP_MEAN_RGB
    assert tuple(square[20, 5]) == (30, 30, 30)


def test_tall_image_is_centred_horizontally(tmp_path: Path) -> None:
    pixels = np.full((80, 40, 3), 30, dtype=np.uint8)  # W=40, H=80
    pixels[60:70, 10:20] = RED
    square = load_image_padded(save(tmp_path / "tall.png", pixels), size=80)
    # side 80, offset (20, 0): the block lands at x 30..40, y 60..70 at the same scale.
    assert tuple(square[65, 35]) == RED
    assert tuple(square[40, 5]) == CLIP_MEAN_RGB and tuple(square[40, 75]) == CLIP_MEAN_RGB


def test_odd_padding_puts_the_extra_pixel_after_the_image(tmp_path: Path) -> None:
    assert pad_offset(10, 7) == (0, 1)  # 3 rows of padding: 1 above, 2 below


def test_unreadable_image_raises_media_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image at all")
    with pytest.raises(MediaError, match="broken.jpg"):
        load_image_padded(path, 32)
    with pytest.raises(MediaError, match="missing.png"):
        load_image_padded(tmp_path / "missing.png", 32)


def test_truncated_image_raises_media_error(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:300])
    with pytest.raises(MediaError, match="cut.jpg"):
        load_image_padded(cut, 32)


def test_pixel_values_are_normalised_channels_first() -> None:
    frames = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    frames[..., 0] = 255
    frames.setflags(write=False)  # as frames straight from an ffmpeg pipe are
    values = to_pixel_values(frames, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    assert values.shape == (2, 3, 4, 5) and values.dtype == torch.float32
    assert torch.allclose(values[:, 0], torch.tensor(1.0))
    assert torch.allclose(values[:, 1], torch.tensor(-2.0))
    assert torch.allclose(values[:, 2], torch.tensor(-0.5))
    with pytest.raises(ValueError):
        to_pixel_values(frames[0], (0.5,) * 3, (0.5,) * 3)
