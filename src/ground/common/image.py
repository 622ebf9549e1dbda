"""Loading images for the feature step: padded to a square with the CLIP mean colour, then resized.

    >>> from ground.common.image import load_image_padded, to_pixel_values
    >>> square = load_image_padded("resources/demo/media/images/train_00000.jpg", size=336)
    >>> pixels = to_pixel_values(square[None], mean=(0.481, 0.458, 0.408), std=(0.269, 0.261, 0.276))

Geometry (what the box normaliser assumes): an image of W x H is pasted into a square of side
max(W, H) filled with `fill`, at offset ((side - W) // 2, (side - H) // 2), so a box normalised by
`side` after adding the offset lands on the same content after the resize to `size`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ground.common.media import MediaError

CLIP_MEAN_RGB = (122, 116, 104)


def pad_offset(width: int, height: int) -> tuple[int, int]:
    """Where the image's top-left corner sits inside its padded square."""
    side = max(width, height)
    return (side - width) // 2, (side - height) // 2


def load_image_padded(
    path: str | Path, size: int, fill: tuple[int, int, int] = CLIP_MEAN_RGB
) -> np.ndarray:
    """The image as uint8 [size, size, 3]: centred on a `fill` square, resized bicubically.

    Raises MediaError naming the file when PIL cannot read it.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            # EXIF orientation is left alone on purpose: dataset boxes refer to the stored pixels.
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(f"{path}: not a readable image ({err})") from err
    width, height = rgb.size
    side = max(width, height)
    square = Image.new("RGB", (side, side), tuple(fill))
    square.paste(rgb, pad_offset(width, height))
    return np.array(square.resize((size, size), Image.Resampling.BICUBIC))


def to_pixel_values(
    frames: np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W], scaled to 0..1 and normalised per channel.

    `mean` and `std` are on the 0..1 scale, as encoders' processor configs give them.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    # torch.from_numpy refuses read-only buffers (frames straight from an ffmpeg pipe are).
    frames = np.require(frames, requirements=("C", "W"))
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((pixels - mean_t) / std_t).contiguous()
