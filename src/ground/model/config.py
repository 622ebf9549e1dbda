"""Sizes of the GroundingGPT adapters, derived from the cached feature shapes and the LLM.

    >>> cfg = GroundingConfig.for_7b()                                # the paper's model
    >>> cfg = GroundingConfig.for_features(
    ...     {"image": (64, 64), "video": (8, 8, 64), "audio": (3, 64)}, llm_hidden=128)  # demo
    >>> cfg.to_json(Path("grounding_config.json")); GroundingConfig.from_json(Path(...)) == cfg

Feature shapes are those of ONE cached item (see `ground.features`): image [P, Di], video
[F, Q, Dv] (F frames of Q Q-Former tokens), audio [C, Da] (C clips). The 7B values are those of
`/work/shared/reference/groundinggpt-facts.md`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

MODALITIES = ("image", "video", "audio")
# The reference's table sizes: 64 temporal positions (one per sampled frame) and 8 clip positions.
MAX_FRAMES = 64
MAX_CLIPS = 8
VIDEO_QUERIES = 64
AUDIO_QUERIES = 8
QFORMER_LAYERS = 2
HEAD_DIM = 64  # BERT-base's (768 / 12): used to pick a head count for other Q-Former widths


@dataclass(frozen=True)
class GroundingConfig:
    """Everything the three adapters need; no LLM or encoder internals beyond their widths."""

    llm_hidden: int  # H: width of the LLM's token embeddings, the adapters' output width
    image_dim: int  # Di: width of a cached image patch feature (CLIP hidden size)
    image_tokens: int  # P: patches per image = LLM tokens per image
    video_dim: int  # Dv: width of a cached per-frame Q-Former token
    frame_tokens: int  # Q: cached Q-Former tokens per frame
    audio_dim: int  # Da: width of a cached per-clip audio embedding
    max_frames: int = MAX_FRAMES  # rows of the temporal position table (frames per video <= this)
    video_queries: int = VIDEO_QUERIES  # video Q-Former queries = LLM tokens per video
    max_clips: int = MAX_CLIPS  # rows of the audio position table (clips per audio <= this)
    audio_queries: int = AUDIO_QUERIES  # audio Q-Former queries = LLM tokens per audio
    qformer_hidden: int = 768  # width of both adapter Q-Formers (BLIP-2 / BERT-base: 768)
    qformer_heads: int = 12  # attention heads of both Q-Formers
    qformer_layers: int = QFORMER_LAYERS  # layers of both Q-Formers (cross-attention in every one)
    qformer_intermediate: int = 3072  # feed-forward width of both Q-Formers
    qformer_dropout: float = 0.1  # hidden and attention dropout (BERT's default, as in BLIP-2)
    # Adapters standardise their input features with fixed statistics (see adapters.py); off in
    # the paper's model, whose pretrained encoders give features that vary with their input.
    standardize_features: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"GroundingConfig.{f.name} must be a positive int, got {value!r}")
        if not 0.0 <= self.qformer_dropout < 1.0:
            raise ValueError(
                f"GroundingConfig.qformer_dropout must be in [0, 1), got {self.qformer_dropout}"
            )
        if self.qformer_hidden % self.qformer_heads:
            raise ValueError(
                f"GroundingConfig: qformer_hidden {self.qformer_hidden} is not a multiple of "
                f"qformer_heads {self.qformer_heads}"
            )

    def to_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: Path) -> GroundingConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GroundingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"GroundingConfig: unknown keys {unknown}")
        return cls(**values)

    @classmethod
    def for_7b(cls) -> GroundingConfig:
        """GroundingGPT-7B: Vicuna-7B, CLIP ViT-L/14-336, BLIP-2 frame Q-Former, ImageBind-huge."""
        return cls.for_features(
            {"image": (576, 1024), "video": (64, 32, 768), "audio": (3, 1024)}, llm_hidden=4096
        )

    @classmethod
    def for_features(
        cls, shapes: Mapping[str, Sequence[int]], llm_hidden: int, **overrides: Any
    ) -> GroundingConfig:
        """Derive the config from one cached item's shape per modality and the LLM width.

        The Q-Former width follows the frame features' width (BLIP-2's Q-Former outputs 768 and
        the reference's video Q-Former keeps it), with BERT's 64-wide heads and 4x feed-forward;
        the tables grow past the reference's 64 frames / 8 clips only if the data has more.
        Any field can be overridden by keyword.
        """
        missing = [m for m in MODALITIES if m not in shapes]
        if missing:
            raise ValueError(f"feature shapes are missing for {missing}; got {dict(shapes)}")
        image, video, audio = (tuple(shapes[m]) for m in MODALITIES)
        for modality, shape, rank in (
            ("image", image, 2),
            ("video", video, 3),
            ("audio", audio, 2),
        ):
            if len(shape) != rank:
                raise ValueError(f"{modality} features must have {rank} dims per item, got {shape}")
        hidden = overrides.get("qformer_hidden", video[2])
        values: dict[str, Any] = {
            "llm_hidden": llm_hidden,
            "image_dim": image[1],
            "image_tokens": image[0],
            "video_dim": video[2],
            "frame_tokens": video[1],
            "max_frames": max(MAX_FRAMES, video[0]),
            "audio_dim": audio[1],
            "max_clips": max(MAX_CLIPS, audio[0]),
            "qformer_hidden": hidden,
            "qformer_heads": max(1, hidden // HEAD_DIM),
            "qformer_intermediate": 4 * hidden,
        }
        return cls(**(values | overrides))
