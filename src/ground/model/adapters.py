"""Adapters that turn cached encoder features into LLM input embeddings, one per modality.

    >>> adapters = build_adapters(cfg)                   # nn.ModuleDict: image, video, audio
    >>> adapters["image"](features)                      # [N, P, Di]     -> [N, P, H]
    >>> adapters["video"](features)                      # [N, F, Q, Dv]  -> [N, video_queries, H]
    >>> adapters["audio"](features)                      # [N, C, Da]     -> [N, audio_queries, H]
    >>> tokens_per_media(cfg)                            # {"image": P, "video": 64, "audio": 8}

With `cfg.standardize_features`, each adapter first maps its features to (x - mean) / std with
fixed statistics (buffers saved with the adapters, taken from stage 1's media by
`ground.train.setup.stage_statistics`), per feature dimension, pooled over items and each item's
first axis (patches, frames, clips), so a video's Q-Former tokens keep one statistic each. It is
for random frozen encoders: the demo's tiny frame encoder varies across frames by ~5% of its
feature scale, too little for the adapter to pick up in minutes (BENCHMARKS.md), where a
pretrained one varies fully.

Initialisation is that of a fresh reference model: Linear layers keep PyTorch's default
(Kaiming-uniform), the position tables nn.Embedding's default N(0, 1) (same scale as the
layer-normalised frame tokens they are added to), the learned query tokens N(0, 0.02) (BLIP-2's
initializer_range), and the Q-Formers transformers' own init (N(0, 0.02) weights, zero biases,
unit LayerNorms). Seed torch before building for reproducible weights.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from ground.model.config import GroundingConfig

QUERY_STD = 0.02


class FeatureScaler(nn.Module):
    """(x - mean) / std with fixed buffers over the trailing dims of `shape` (identity until set)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        with torch.no_grad():
            self.mean.copy_(mean)
            self.std.copy_(std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


def feature_statistics(items: list[torch.Tensor], floor: float = 1e-3) -> tuple[torch.Tensor, ...]:
    """(mean, std) of same-shaped items [A, *rest] over the items and axis A, shaped `rest`.

    A dimension that hardly varies gets std `floor` x the features' overall std (1 if all are
    constant), so storage noise in a near-constant dimension is not blown up to real signal."""
    stacked = torch.stack([item.double() for item in items]).flatten(0, 1)
    mean, std, overall = stacked.mean(0), stacked.std(0), stacked.std().item()
    std = std.clamp_min(floor * overall if overall > 0 else 1.0)
    return mean.float(), std.float()


def _scaler(cfg: GroundingConfig, shape: tuple[int, ...]) -> nn.Module:
    return FeatureScaler(shape) if cfg.standardize_features else nn.Identity()


def tokens_per_media(cfg: GroundingConfig) -> dict[str, int]:
    """LLM tokens (PATCH tokens in the prompt) that one item of each modality becomes."""
    return {"image": cfg.image_tokens, "video": cfg.video_queries, "audio": cfg.audio_queries}


def build_adapters(cfg: GroundingConfig) -> nn.ModuleDict:
    return nn.ModuleDict(
        {"image": ImageAdapter(cfg), "video": VideoAdapter(cfg), "audio": AudioAdapter(cfg)}
    )


def _check_shape(modality: str, features: torch.Tensor, expected: tuple[int | None, ...]) -> None:
    """Features must be [N, *expected]; None matches any size."""
    shape = tuple(features.shape[1:])
    if len(shape) != len(expected) or any(
        e is not None and s != e for s, e in zip(shape, expected)
    ):
        want = ", ".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{modality} features must be [N, {want}], got {list(features.shape)}")


class ImageAdapter(nn.Module):
    """LLaVA-1.5's projector: Linear(Di, H) -> GELU -> Linear(H, H), applied to every patch."""

    def __init__(self, cfg: GroundingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = _scaler(cfg, (cfg.image_dim,))
        self.fc1 = nn.Linear(cfg.image_dim, cfg.llm_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.llm_hidden, cfg.llm_hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_shape("image", features, (self.cfg.image_tokens, self.cfg.image_dim))
        features = self.scale(features.to(self.fc1.weight.dtype))  # the cache may hold fp16
        return self.fc2(self.act(self.fc1(features)))


class _QueryAdapter(nn.Module):
    """Position table + Q-Former with learned queries + projection to the LLM width."""

    def __init__(
        self, cfg: GroundingConfig, shape: tuple[int, ...], positions: int, queries: int
    ) -> None:
        super().__init__()
        self.cfg = cfg
        dim = shape[-1]
        self.scale = _scaler(cfg, shape)
        self.position = nn.Embedding(positions, dim)
        self.query_tokens = nn.Parameter(torch.randn(1, queries, cfg.qformer_hidden) * QUERY_STD)
        self.qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=cfg.qformer_hidden,
                num_hidden_layers=cfg.qformer_layers,
                num_attention_heads=cfg.qformer_heads,
                intermediate_size=cfg.qformer_intermediate,
                hidden_dropout_prob=cfg.qformer_dropout,
                attention_probs_dropout_prob=cfg.qformer_dropout,
                cross_attention_frequency=1,  # every layer reads the features
                encoder_hidden_size=dim,
            )
        )
        self.proj = nn.Linear(cfg.qformer_hidden, cfg.llm_hidden)

    def _attend(self, keys: torch.Tensor) -> torch.Tensor:
        """[N, S, dim] key/value sequence -> [N, queries, H]."""
        queries = self.query_tokens.expand(keys.shape[0], -1, -1)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=keys).last_hidden_state
        return self.proj(out.to(self.proj.weight.dtype))


class VideoAdapter(_QueryAdapter):
    """Frame f's Q tokens get temporal position f; all F*Q tokens are the Q-Former's keys."""

    def __init__(self, cfg: GroundingConfig) -> None:
        shape = (cfg.frame_tokens, cfg.video_dim)
        super().__init__(cfg, shape, cfg.max_frames, cfg.video_queries)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        _check_shape("video", features, (None, cfg.frame_tokens, cfg.video_dim))
        frames = features.shape[1]
        if frames > cfg.max_frames:
            raise ValueError(
                f"video has {frames} frames; the position table holds {cfg.max_frames}"
            )
        features = self.scale(features.to(self.position.weight.dtype))
        # Every Q token of frame f gets position f.
        timed = features + self.position.weight[:frames, None, :]
        return self._attend(timed.flatten(1, 2))


class AudioAdapter(_QueryAdapter):
    """Clip c's embedding gets position c; the C clip embeddings are the Q-Former's keys."""

    def __init__(self, cfg: GroundingConfig) -> None:
        super().__init__(cfg, (cfg.audio_dim,), cfg.max_clips, cfg.audio_queries)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        _check_shape("audio", features, (None, cfg.audio_dim))
        clips = features.shape[1]
        if clips > cfg.max_clips:
            raise ValueError(f"audio has {clips} clips; the position table holds {cfg.max_clips}")
        features = self.scale(features.to(self.position.weight.dtype))
        return self._attend(features + self.position.weight[:clips])
