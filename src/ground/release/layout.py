"""Where every tensor of the GroundingGPT release goes, derived from config.json and the tensors.

    >>> sizes = release_sizes(config_json, state)        # ReleaseError naming a missing key
    >>> expected = expected_shapes(sizes)                 # release key -> shape, every mapped key
    >>> part, ours = destination("model.ln_vision.weight")
    ('frame_encoder', 'vision_model.post_layernorm.weight')
    >>> dropped_reason("model.audio_encoder.modality_trunks.vision.blocks.0.attn.in_proj_weight")
    "ImageBind's other modalities: GroundingGPT encodes sound only"

Release prefix -> our part (see ../shared/reference/groundinggpt-release.md for the roles):

| release                                              | ours                                        |
|------------------------------------------------------|---------------------------------------------|
| model.embed_tokens, model.layers.*, model.norm, lm_head | llm/ (a plain LlamaForCausalLM, same names) |
| model.mm_vision_projector.{0,2}                      | adapters image.fc1 / image.fc2              |
| model.video_frame_position_embedding, video_query_tokens, video_Qformer.bert.*, llama_proj | adapters video.position / query_tokens / qformer / proj |
| model.audio_position_embedding, audio_query_tokens, audio_Qformer.bert.*, audio_llama_proj | adapters audio.* (the same four)            |
| model.visual_encoder.*, model.ln_vision              | frame encoder vision_model.* (EVA-ViT-g as transformers' Blip2VisionModel; ln_vision = post_layernorm; q_bias + 0 + v_bias = qkv.bias) |
| model.Qformer.bert.*, model.query_tokens             | frame encoder qformer.*, query_tokens       |
| model.audio_encoder.modality_*.audio.*               | audio encoder (ImageBindAudioModel)         |

LAVIS BERT names -> transformers' Blip2QFormerModel: `bert.` goes, `embeddings.LayerNorm` is
`layernorm`, `.self.` is `.attention.`. Sizes no file states use the architectures' head widths:
88 for EVA-ViT-g (1408 / 16 heads), 64 for the BERT Q-Formers and ImageBind's audio trunk.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from ground.model.imagebind import (
    ImageBindAudioConfig,
    official_audio_key_shapes,
    official_to_local,
)

EVA_HEAD_DIM = 88
BERT_HEAD_DIM = 64
FRAME_CROSS_EVERY = 2  # BLIP-2's Q-Former reads the image in every other layer
AUDIO_PREFIX = "model.audio_encoder."
QFORMERS = {"model.Qformer.": "qformer.", "model.video_Qformer.": "video.qformer.",
            "model.audio_Qformer.": "audio.qformer."}  # fmt: skip
RENAMES = {  # release key (exact or prefix ending in ".") -> (part, our key or prefix)
    "model.embed_tokens.weight": ("llm", "model.embed_tokens.weight"),
    "model.layers.": ("llm", "model.layers."),
    "model.norm.weight": ("llm", "model.norm.weight"),
    "lm_head.weight": ("llm", "lm_head.weight"),
    "model.mm_vision_projector.0.": ("adapters", "image.fc1."),
    "model.mm_vision_projector.2.": ("adapters", "image.fc2."),
    "model.video_frame_position_embedding.weight": ("adapters", "video.position.weight"),
    "model.video_query_tokens": ("adapters", "video.query_tokens"),
    "model.llama_proj.": ("adapters", "video.proj."),
    "model.audio_position_embedding.weight": ("adapters", "audio.position.weight"),
    "model.audio_query_tokens": ("adapters", "audio.query_tokens"),
    "model.audio_llama_proj.": ("adapters", "audio.proj."),
    "model.query_tokens": ("frame_encoder", "query_tokens"),
    "model.ln_vision.": ("frame_encoder", "vision_model.post_layernorm."),
    "model.visual_encoder.cls_token": ("frame_encoder", "vision_model.embeddings.class_embedding"),
    "model.visual_encoder.pos_embed": ("frame_encoder", "vision_model.embeddings.position_embedding"),
    "model.visual_encoder.patch_embed.proj.": ("frame_encoder", "vision_model.embeddings.patch_embedding."),
}  # fmt: skip
EVA_BLOCK = {"norm1.": "layer_norm1.", "norm2.": "layer_norm2.", "attn.qkv.weight": "self_attn.qkv.weight",
             "attn.proj.": "self_attn.projection.", "mlp.": "mlp."}  # fmt: skip
_OTHER_MODALITIES = re.compile(
    r"model\.audio_encoder\.modality_(preprocessors|trunks|heads|postprocessors)\."
    r"(vision|text|depth|thermal|imu)\."
)
_DROPPED = (
    (_OTHER_MODALITIES, "ImageBind's other modalities: GroundingGPT encodes sound only"),
    (re.compile(r"model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.embeddings\.position_ids$"),
     "a constant arange buffer of BERT's text embeddings, which the release removed: the "
     "Q-Formers read query embeddings only"),
    (re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$"),
     "recomputed from rope_theta by transformers"),
)  # fmt: skip


class ReleaseError(ValueError):
    """A release that does not match the expected layout; the message names the keys or file."""


@dataclass(frozen=True)
class Bert:
    """One LAVIS BERT Q-Former of the release: `queries` learned tokens reading `kv_width` keys."""

    hidden: int
    intermediate: int
    layers: int
    kv_width: int
    cross_every: int
    queries: int

    @property
    def heads(self) -> int:
        return max(1, self.hidden // BERT_HEAD_DIM)


@dataclass(frozen=True)
class Eva:
    width: int
    layers: int
    mlp: int
    patch: int
    positions: int  # 1 + patches

    @property
    def heads(self) -> int:
        return max(1, self.width // EVA_HEAD_DIM)

    @property
    def image_size(self) -> int:
        return self.patch * math.isqrt(self.positions - 1)


@dataclass(frozen=True)
class ReleaseSizes:
    llm: dict[str, Any]  # the LLaMA fields of config.json
    image_dim: int
    image_tokens: int
    eva: Eva
    frame: Bert
    video: Bert
    max_frames: int
    audio: Bert
    max_clips: int
    imagebind: ImageBindAudioConfig


def dropped_reason(key: str) -> str | None:
    return next((why for pattern, why in _DROPPED if pattern.match(key)), None)


def destination(key: str) -> tuple[str, str]:
    """(part, our key) of a mapped release key: part is llm, adapters, frame_encoder or
    audio_encoder. The EVA attention biases go to `qkv.bias` (assembled by the caller)."""
    for prefix, ours in QFORMERS.items():
        if key.startswith(prefix + "bert."):
            part = "frame_encoder" if prefix == "model.Qformer." else "adapters"
            return part, ours + _bert_name(key[len(prefix) + len("bert."):])
    if key.startswith(AUDIO_PREFIX):
        return "audio_encoder", official_to_local(key[len(AUDIO_PREFIX):])
    block = re.match(r"model\.visual_encoder\.blocks\.(\d+)\.(.+)$", key)
    if block:
        index, rest = block.groups()
        if rest in ("attn.q_bias", "attn.v_bias"):
            return "frame_encoder", f"vision_model.encoder.layers.{index}.self_attn.qkv.bias"
        for old, new in EVA_BLOCK.items():
            if rest.startswith(old):
                return "frame_encoder", f"vision_model.encoder.layers.{index}.{new}{rest[len(old):]}"
    for old, (part, new) in RENAMES.items():
        if key == old or (old.endswith(".") and key.startswith(old)):
            return part, new + key[len(old):]
    raise ReleaseError(f"{key}: no destination for this release key")


def _bert_name(rest: str) -> str:
    if rest.startswith("embeddings.LayerNorm."):
        return "layernorm." + rest[len("embeddings.LayerNorm."):]
    return rest.replace(".self.", ".attention.")


# ------------------------------------------------------------------------------ sizes


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ReleaseError(f"{key}: missing from the release (needed to read its sizes)")
    return tuple(state[key].shape)


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for k in state if (m := pattern.match(k))]
    if not found:
        raise ReleaseError(f"{prefix}0.*: missing from the release (no layers)")
    return max(found) + 1


def _bert(state: dict[str, torch.Tensor], prefix: str, queries: str, cross_every: int) -> Bert:
    layer = f"{prefix}bert.encoder.layer."
    return Bert(
        hidden=_shape(state, f"{prefix}bert.embeddings.LayerNorm.weight")[0],
        intermediate=_shape(state, f"{layer}0.intermediate_query.dense.weight")[0],
        layers=_count(state, layer),
        kv_width=_shape(state, f"{layer}0.crossattention.self.key.weight")[1],
        cross_every=cross_every,
        queries=_shape(state, queries)[1],
    )


def release_sizes(config: dict[str, Any], state: dict[str, torch.Tensor]) -> ReleaseSizes:
    """Every size of the release, from config.json (the LLM, the image adapter's input) and from
    one anchor tensor per part; `expected_shapes` then checks every other tensor against them."""
    if config.get("model_type") != "LEGO":
        raise ReleaseError(f"config.json: model_type {config.get('model_type')!r} is not 'LEGO'")
    fields = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads", "mm_vision_hidden_size", "image_token_len")  # fmt: skip
    absent = [f for f in fields if not isinstance(config.get(f), int)]
    if absent:
        raise ReleaseError(f"config.json: no integer {absent}")
    llm = {k: config[k] for k in fields[:5]}
    llm["num_key_value_heads"] = int(config.get("num_key_value_heads") or config["num_attention_heads"])
    eva = "model.visual_encoder."
    audio = official_audio_sizes(state)
    return ReleaseSizes(
        llm=llm,
        image_dim=config["mm_vision_hidden_size"],
        image_tokens=config["image_token_len"],
        eva=Eva(
            width=_shape(state, f"{eva}cls_token")[-1],
            layers=_count(state, f"{eva}blocks."),
            mlp=_shape(state, f"{eva}blocks.0.mlp.fc1.weight")[0],
            patch=_shape(state, f"{eva}patch_embed.proj.weight")[-1],
            positions=_shape(state, f"{eva}pos_embed")[1],
        ),
        frame=_bert(state, "model.Qformer.", "model.query_tokens", FRAME_CROSS_EVERY),
        video=_bert(state, "model.video_Qformer.", "model.video_query_tokens", 1),
        max_frames=_shape(state, "model.video_frame_position_embedding.weight")[0],
        audio=_bert(state, "model.audio_Qformer.", "model.audio_query_tokens", 1),
        max_clips=_shape(state, "model.audio_position_embedding.weight")[0],
        imagebind=audio,
    )


def official_audio_sizes(state: dict[str, torch.Tensor]) -> ImageBindAudioConfig:
    pre, trunk = f"{AUDIO_PREFIX}modality_preprocessors.audio.", f"{AUDIO_PREFIX}modality_trunks.audio."
    hidden = _shape(state, f"{pre}cls_token")[-1]
    return ImageBindAudioConfig(
        hidden_size=hidden,
        num_hidden_layers=_count(state, f"{trunk}blocks."),
        num_attention_heads=max(1, hidden // BERT_HEAD_DIM),
        projection_dim=_shape(state, f"{AUDIO_PREFIX}modality_heads.audio.2.weight")[0],
        mlp_ratio=_shape(state, f"{trunk}blocks.0.mlp.fc1.weight")[0] // hidden,
        patch_kernel=_shape(state, f"{pre}rgbt_stem.proj.weight")[-1],
    )


# ------------------------------------------------------------------------------ shapes


def expected_shapes(sizes: ReleaseSizes) -> dict[str, tuple[int, ...]]:
    """Every release key that is mapped (not dropped), with the shape `sizes` imply."""
    h = sizes.llm["hidden_size"]
    shapes = _llm_shapes(sizes.llm)
    shapes |= {"model.mm_vision_projector.0.weight": (h, sizes.image_dim),
               "model.mm_vision_projector.0.bias": (h,),
               "model.mm_vision_projector.2.weight": (h, h), "model.mm_vision_projector.2.bias": (h,)}  # fmt: skip
    shapes |= _eva_shapes(sizes.eva)
    shapes |= {"model.ln_vision.weight": (sizes.eva.width,), "model.ln_vision.bias": (sizes.eva.width,)}
    shapes |= _bert_shapes("model.Qformer.", sizes.frame, "model.query_tokens")
    for name, bert, table, rows, width, proj in (
        ("video", sizes.video, "video_frame_position_embedding", sizes.max_frames, sizes.frame.hidden, "llama_proj"),
        ("audio", sizes.audio, "audio_position_embedding", sizes.max_clips, sizes.imagebind.projection_dim, "audio_llama_proj"),
    ):  # fmt: skip
        shapes |= _bert_shapes(f"model.{name}_Qformer.", bert, f"model.{name}_query_tokens")
        shapes[f"model.{table}.weight"] = (rows, width)
        shapes[f"model.{proj}.weight"] = (h, bert.hidden)
        shapes[f"model.{proj}.bias"] = (h,)
    audio = official_audio_key_shapes(sizes.imagebind)
    shapes |= {AUDIO_PREFIX + k: v for k, v in audio.items()}
    return shapes


def _llm_shapes(llm: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    h, inter, vocab = llm["hidden_size"], llm["intermediate_size"], llm["vocab_size"]
    kv = llm["num_key_value_heads"] * (h // llm["num_attention_heads"])
    layer = {"self_attn.q_proj.weight": (h, h), "self_attn.k_proj.weight": (kv, h),
             "self_attn.v_proj.weight": (kv, h), "self_attn.o_proj.weight": (h, h),
             "mlp.gate_proj.weight": (inter, h), "mlp.up_proj.weight": (inter, h),
             "mlp.down_proj.weight": (h, inter), "input_layernorm.weight": (h,),
             "post_attention_layernorm.weight": (h,)}  # fmt: skip
    shapes = {f"model.layers.{i}.{k}": v for i in range(llm["num_hidden_layers"]) for k, v in layer.items()}
    return shapes | {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,),
                     "lm_head.weight": (vocab, h)}  # fmt: skip


def _eva_shapes(eva: Eva) -> dict[str, tuple[int, ...]]:
    d, p = eva.width, "model.visual_encoder."
    if (eva.positions - 1) != math.isqrt(eva.positions - 1) ** 2:
        raise ReleaseError(f"{p}pos_embed: {eva.positions - 1} patches are not a square grid")
    block = {"norm1.weight": (d,), "norm1.bias": (d,), "attn.q_bias": (d,), "attn.v_bias": (d,),
             "attn.qkv.weight": (3 * d, d), "attn.proj.weight": (d, d), "attn.proj.bias": (d,),
             "norm2.weight": (d,), "norm2.bias": (d,), "mlp.fc1.weight": (eva.mlp, d),
             "mlp.fc1.bias": (eva.mlp,), "mlp.fc2.weight": (d, eva.mlp), "mlp.fc2.bias": (d,)}  # fmt: skip
    shapes = {f"{p}blocks.{i}.{k}": v for i in range(eva.layers) for k, v in block.items()}
    return shapes | {f"{p}cls_token": (1, 1, d), f"{p}pos_embed": (1, eva.positions, d),
                     f"{p}patch_embed.proj.weight": (d, 3, eva.patch, eva.patch),
                     f"{p}patch_embed.proj.bias": (d,)}  # fmt: skip


def _bert_shapes(prefix: str, bert: Bert, queries: str) -> dict[str, tuple[int, ...]]:
    d, inter = bert.hidden, bert.intermediate
    shapes = {queries: (1, bert.queries, d), f"{prefix}bert.embeddings.LayerNorm.weight": (d,),
              f"{prefix}bert.embeddings.LayerNorm.bias": (d,)}  # fmt: skip
    for i in range(bert.layers):
        layer = f"{prefix}bert.encoder.layer.{i}."
        blocks = [("attention", d)] + ([("crossattention", bert.kv_width)] if i % bert.cross_every == 0 else [])
        for name, width in blocks:
            for proj in ("query", "key", "value"):
                shapes[f"{layer}{name}.self.{proj}.weight"] = (d, d if proj == "query" else width)
                shapes[f"{layer}{name}.self.{proj}.bias"] = (d,)
            shapes |= {f"{layer}{name}.output.dense.weight": (d, d), f"{layer}{name}.output.dense.bias": (d,),
                       f"{layer}{name}.output.LayerNorm.weight": (d,), f"{layer}{name}.output.LayerNorm.bias": (d,)}  # fmt: skip
        shapes |= {f"{layer}intermediate_query.dense.weight": (inter, d),
                   f"{layer}intermediate_query.dense.bias": (inter,),
                   f"{layer}output_query.dense.weight": (d, inter), f"{layer}output_query.dense.bias": (d,),
                   f"{layer}output_query.LayerNorm.weight": (d,), f"{layer}output_query.LayerNorm.bias": (d,)}  # fmt: skip
    return shapes


def check_layout(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """release key -> where it went ("part:our key") or "dropped: why", for every key of `state`;
    ReleaseError listing every missing, unexpected or mis-shaped key first."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and dropped_reason(k) is None]
    misshaped = [f"{k}: release {list(state[k].shape)}, expected {list(v)}"
                 for k, v in expected.items() if k in state and tuple(state[k].shape) != v]  # fmt: skip
    problems = [f"{title} ({len(keys)}): " + ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else "")
                for title, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("mis-shaped", misshaped)) if keys]  # fmt: skip
    if problems:
        raise ReleaseError("the release does not match the GroundingGPT layout: " + "; ".join(problems))
    return {k: ("dropped: " + dropped_reason(k)) if k not in expected else ":".join(destination(k))
            for k in state}  # fmt: skip
