"""The demo's tiny frozen encoders: random weights of the real classes (`ground.model.encoders`),
seeded, with what a random init lacks for the demo to learn (readable positions, varied queries).

    >>> from ground.demo.encoders import create_tiny_encoders
    >>> create_tiny_encoders(Path("resources/demo/models"), seed=0)
    {'image': .../image_encoder, 'video': .../frame_encoder, 'audio': .../audio_encoder}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2VisionModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedModel,
)

from ground.model.imagebind import ImageBindAudioConfig, ImageBindAudioModel

# Init std of the tiny random Q-Former and audio branch. At the usual 0.02 their outputs barely
# depend on the input (the learned query / CLS path dominates: across-input std ~1% of the
# feature std for the Q-Former), which would leave the demo adapters nothing to learn from.
TINY_INIT_STD = 0.1
POSITION_SCALE = 0.7  # sin/cos codes of std ~0.5, the scale of the tiny ViTs' patch embeddings


def _save_seeded(model_factory: Callable[[], PreTrainedModel], seed: int, out: Path) -> Path:
    # fork_rng: building the demo encoders must not shift the caller's random stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_factory()
    model.save_pretrained(out)
    return out


def _random_blip2(config: Blip2Config) -> Blip2VisionModelWithProjection:
    model = Blip2VisionModelWithProjection(config)
    # transformers zero-initialises the query tokens (real ones are always loaded), which makes
    # all queries identical; LAVIS draws them from N(0, 0.02) before pre-training
    with torch.no_grad():
        model.query_tokens.normal_(std=0.02)
    _with_grid_positions(model.vision_model.embeddings.position_embedding)
    return model


def _random_clip(config: CLIPVisionConfig) -> CLIPVisionModel:
    model = CLIPVisionModel(config)
    _with_grid_positions(model.embeddings.position_embedding.weight)
    return model


def grid_positions(rows: int, width: int, scale: float = POSITION_SCALE) -> torch.Tensor:
    """[1 + rows * rows, width] position codes: a zero row (CLS), then per patch (row-major)
    cosines and sines of its row and column at frequencies of 1/2 .. width/8 cycles per grid."""
    quarter = width // 4
    omega = math.pi / rows * torch.arange(1, quarter + 1, dtype=torch.float32)
    index = torch.arange(rows, dtype=torch.float32)
    axis = torch.cat([torch.cos(index[:, None] * omega), torch.sin(index[:, None] * omega)], dim=1)
    y = axis[:, None, :].expand(rows, rows, -1)
    x = axis[None, :, :].expand(rows, rows, -1)
    codes = torch.cat([y, x], dim=-1).reshape(rows * rows, -1)
    codes = torch.nn.functional.pad(codes, (0, width - codes.shape[1]))
    return scale * torch.cat([torch.zeros(1, width), codes])


def _with_grid_positions(embedding: torch.Tensor) -> None:
    """Overwrite a vision embedding's position table ([P + 1, D], or [1, P + 1, D]) in place.

    A random tiny encoder's learned positions are N(0, 0.02) next to patch embeddings of std
    ~0.45: where a patch is would be all but invisible in its features, unlike in a pretrained
    ViT, and the demo could not learn to ground. Smooth 2-D codes of about the patches' scale
    keep "where" readable, as pretraining does.
    """
    table = embedding.view(-1, embedding.shape[-1])
    rows = math.isqrt(table.shape[0] - 1)
    with torch.no_grad():
        table.copy_(grid_positions(rows, table.shape[1]))


def create_tiny_encoders(
    out: Path,
    *,
    seed: int,
    image_size: int = 64,
    frame_size: int = 32,
    patch_size: int = 8,
    hidden: int = 64,
    query_tokens: int = 8,
) -> dict[str, Path]:
    """Random tiny encoders of the real classes under out/{image,frame,audio}_encoder; the same
    seed gives the same weights. Returns {"image": ..., "video": ..., "audio": ...}."""
    out = Path(out)
    vision = {
        "patch_size": patch_size,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_attention_heads": 4,
    }
    clip = CLIPVisionConfig(image_size=image_size, num_hidden_layers=3, **vision)
    blip2 = Blip2Config(
        # BLIP-2's vision default init std is 1e-10 (its weights always come from EVA-CLIP); a
        # random demo encoder needs a usual std or every frame encodes to the same features
        vision_config={
            "image_size": frame_size,
            "num_hidden_layers": 2,
            "initializer_range": 0.02,
            **vision,
        },
        qformer_config={
            "hidden_size": hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 4 * hidden,
            "cross_attention_frequency": 1,  # the demo is small enough to attend at every layer
            "encoder_hidden_size": hidden,
            "initializer_range": TINY_INIT_STD,
        },
        num_query_tokens=query_tokens,
        image_text_hidden_size=hidden,
    )
    audio = ImageBindAudioConfig(
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=hidden,
        initializer_range=TINY_INIT_STD,
    )
    return {
        "image": _save_seeded(lambda: _random_clip(clip), seed, out / "image_encoder"),
        "video": _save_seeded(lambda: _random_blip2(blip2), seed + 1, out / "frame_encoder"),
        "audio": _save_seeded(lambda: ImageBindAudioModel(audio), seed + 2, out / "audio_encoder"),
    }
