"""The release's tensors split into our four parts, each checked against the class that loads it.

    >>> parts = split_parts(state, sizes)      # {"llm": {...}, "adapters": ..., "frame_encoder": ..., "audio_encoder": ...}
    >>> configs = part_configs(config_json, sizes, dtype)

Every part's keys and shapes are compared with a model of its class built on the meta device
(no memory), so what is written loads with `strict` semantics: LlamaForCausalLM,
`ground.model.adapters.build_adapters`, Blip2VisionModelWithProjection, ImageBindAudioModel.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Blip2Config, Blip2VisionModelWithProjection, LlamaConfig, LlamaForCausalLM

from ground.model.adapters import build_adapters
from ground.model.config import GroundingConfig
from ground.model.imagebind import ImageBindAudioModel
from ground.release.layout import ReleaseError, ReleaseSizes, destination, dropped_reason

# config.json LLaMA fields copied as they are when present (the rest keep LlamaConfig defaults).
LLAMA_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                "rms_norm_eps", "rope_theta", "bos_token_id", "eos_token_id", "pad_token_id",
                "hidden_act", "initializer_range")  # fmt: skip
# Blip2VisionModelWithProjection's ITM projection is not in the release and never runs
# (ground.model.encoders reads the Q-Former output): zeros, so the folder is complete.
UNUSED_ZEROS = ("vision_projection.weight", "vision_projection.bias")


def split_parts(state: dict[str, torch.Tensor], sizes: ReleaseSizes) -> dict[str, dict[str, torch.Tensor]]:
    """Mapped release tensors under our names, per part (dropped keys skipped)."""
    parts: dict[str, dict[str, torch.Tensor]] = {"llm": {}, "adapters": {}, "frame_encoder": {},
                                                  "audio_encoder": {}}  # fmt: skip
    for key, tensor in state.items():
        if dropped_reason(key) is not None or key.endswith(("attn.q_bias", "attn.v_bias")):
            continue
        part, ours = destination(key)
        parts[part][ours] = tensor
    for i in range(sizes.eva.layers):
        # EVA's key projection has no bias: transformers' fused qkv.bias holds zeros there
        q = state[f"model.visual_encoder.blocks.{i}.attn.q_bias"]
        v = state[f"model.visual_encoder.blocks.{i}.attn.v_bias"]
        parts["frame_encoder"][f"vision_model.encoder.layers.{i}.self_attn.qkv.bias"] = torch.cat(
            (q, torch.zeros_like(q), v)
        )
    return parts


def grounding_config(sizes: ReleaseSizes) -> GroundingConfig:
    """Our adapter sizes; both adapter Q-Formers share one width, depth and FFN in our model."""
    video, audio = sizes.video, sizes.audio
    if (video.hidden, video.layers, video.intermediate) != (audio.hidden, audio.layers, audio.intermediate):
        raise ReleaseError(f"model.video_Qformer {video} and model.audio_Qformer {audio} differ in "
                           "width, depth or FFN; GroundingConfig holds one Q-Former size")  # fmt: skip
    return GroundingConfig(
        llm_hidden=sizes.llm["hidden_size"], image_dim=sizes.image_dim, image_tokens=sizes.image_tokens,
        video_dim=sizes.frame.hidden, frame_tokens=sizes.frame.queries, audio_dim=sizes.imagebind.projection_dim,
        max_frames=sizes.max_frames, video_queries=video.queries, max_clips=sizes.max_clips,
        audio_queries=audio.queries, qformer_hidden=video.hidden, qformer_heads=video.heads,
        qformer_layers=video.layers, qformer_intermediate=video.intermediate,
    )  # fmt: skip


def part_configs(config: dict[str, Any], sizes: ReleaseSizes, dtype: torch.dtype) -> dict[str, Any]:
    llama = LlamaConfig(**{k: config[k] for k in LLAMA_FIELDS if k in config},
                        tie_word_embeddings=False, architectures=["LlamaForCausalLM"])  # fmt: skip
    llama.dtype = dtype
    eva, frame = sizes.eva, sizes.frame
    blip2 = Blip2Config(
        vision_config={"hidden_size": eva.width, "intermediate_size": eva.mlp,
                       "num_hidden_layers": eva.layers, "num_attention_heads": eva.heads,
                       "image_size": eva.image_size, "patch_size": eva.patch, "qkv_bias": True},
        qformer_config={"hidden_size": frame.hidden, "num_hidden_layers": frame.layers,
                        "num_attention_heads": frame.heads, "intermediate_size": frame.intermediate,
                        "encoder_hidden_size": eva.width, "cross_attention_frequency": frame.cross_every},
        num_query_tokens=frame.queries,
    )  # fmt: skip
    blip2.dtype = dtype
    sizes.imagebind.dtype = dtype
    return {"llm": llama, "frame_encoder": blip2, "audio_encoder": sizes.imagebind,
            "adapters": grounding_config(sizes)}  # fmt: skip


def complete_and_check(parts: dict[str, dict[str, torch.Tensor]], configs: dict[str, Any]) -> None:
    """Add the unused zeros, then compare every part with its class's state dict (meta device)."""
    with torch.device("meta"):
        models = {
            "llm": LlamaForCausalLM(configs["llm"]),
            "frame_encoder": Blip2VisionModelWithProjection(configs["frame_encoder"]),
            "audio_encoder": ImageBindAudioModel(configs["audio_encoder"]),
            "adapters": build_adapters(configs["adapters"]),
        }
    dtype = next(iter(parts["llm"].values())).dtype
    for part, model in models.items():
        wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if part == "frame_encoder":
            for key in UNUSED_ZEROS:
                parts[part][key] = torch.zeros(wanted[key], dtype=dtype)
        have = {k: tuple(v.shape) for k, v in parts[part].items()}
        if have != wanted:
            diff = sorted(set(have) ^ set(wanted)) or [k for k in have if have[k] != wanted[k]]
            raise ReleaseError(f"{part}: the mapped tensors do not fit {type(model).__name__}: {diff[:10]}")
