"""A tiny checkpoint in the exact layout of the GroundingGPT release, for the import tests.

Every key of tests/fixtures/release/groundinggpt-release-keys.tsv (a copy of the reference list
of the release's 2,493 tensors) with the same layer counts and small widths: the LLM is 16 wide
with the real vocabulary of 32009 (so the 9 media tokens are real ids 32000-32008), EVA 88 wide
(one head of EVA's 88), the Q-Formers 64 (one BERT head), ImageBind's audio trunk 32. Shapes are
the reference's with each full-size dimension replaced per component (`SHRINK`); the tensors of
the five ImageBind modalities the import drops get 2-wide dimensions.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

KEYS = Path(__file__).parent / "fixtures" / "release" / "groundinggpt-release-keys.tsv"
MEDIA = ("<im_patch>", "<im_start>", "<im_end>", "<vi_patch>", "<vi_start>", "<vi_end>",
         "<so_patch>", "<so_start>", "<so_end>")  # fmt: skip
_LLM = {4096: 16, 11008: 32}
_QF = {768: 64, 3072: 128, 512: 16}
SHRINK = {
    "LLM decoder": _LLM, "LLM final RMSNorm": _LLM, "LLM input embeddings": _LLM, "LLM output head": _LLM,
    "image adapter (MLP)": {4096: 16, 1024: 12},
    "video frame encoder (EVA-CLIP ViT-g/14)": {1408: 88, 4224: 264, 6144: 96, 257: 5, 14: 4},
    "video frame encoder output LayerNorm": {1408: 88},
    "video per-frame BLIP-2 Q-Former": _QF | {1408: 88},
    "video per-frame Q-Former queries": {32: 4, 768: 64},
    "video frame position embedding": {64: 8, 768: 64},
    "video temporal Q-Former": _QF,
    "video temporal Q-Former queries": {64: 6, 768: 64},
    "video adapter projection": {4096: 16, 768: 64},
    "audio encoder (ImageBind-huge, all modalities)": {768: 32, 3072: 128, 2304: 96, 1024: 12},
    "audio clip position embedding": {1024: 12},
    "audio Q-Former": _QF | {1024: 12},
    "audio Q-Former queries": {768: 64},
    "audio adapter projection": {4096: 16, 768: 64},
}  # fmt: skip
CONFIG = {
    "architectures": ["LEGOLlamaForCausalLM"], "model_type": "LEGO", "vocab_size": 32009,
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 32, "num_attention_heads": 2,
    "num_key_value_heads": 2, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
    "pad_token_id": 0, "tie_word_embeddings": False, "torch_dtype": "float32",
    "transformers_version": "4.34.0", "mm_vision_tower": "openai/clip-vit-large-patch14-336",
    "mm_vision_hidden_size": 12, "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
    "mm_use_im_start_end": True, "mm_use_im_patch_token": True, "image_aspect_ratio": "pad",
    "image_token_len": 4, "num_query_token": 4, "max_frame": 8, "video_token_len": 6,
    "sound_token_len": 8,
}  # fmt: skip


def reference_keys() -> list[tuple[str, tuple[int, ...], str, str]]:
    """(key, shape, dtype at init, component) of every release tensor, in the reference's order."""
    rows = []
    for line in KEYS.read_text().splitlines():
        if line.startswith("#") or line.startswith("key\t"):
            continue
        key, shape, dtype, component = line.split("\t")
        rows.append((key, tuple(ast.literal_eval(shape)), dtype, component))
    return rows


def tiny_shape(key: str, shape: tuple[int, ...], component: str) -> tuple[int, ...]:
    if component.startswith("audio encoder") and ".audio." not in key:
        return tuple(min(d, 2) for d in shape)  # dropped by the import: any shape
    return tuple(SHRINK[component].get(d, d) for d in shape)


def tiny_state(seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, init_dtype, component in reference_keys():
        shape = tiny_shape(key, shape, component)
        if init_dtype == "int64":
            state[key] = torch.arange(math.prod(shape)).reshape(shape)
        elif key.endswith("log_logit_scale"):
            state[key] = torch.tensor(math.log(20.0), dtype=dtype)
        elif _is_norm(key):
            state[key] = (1 + 0.1 * torch.randn(shape, generator=gen)).to(dtype)
        else:
            scale = 0.1 if key.endswith(("bias", "bias_k", "bias_v")) or len(shape) < 2 else shape[-1] ** -0.5
            if "pos_embed" in key or "position_embedding" in key or "query_tokens" in key or "cls_token" in key:
                scale = 0.5
            state[key] = (scale * torch.randn(shape, generator=gen)).to(dtype)
    return state


def _is_norm(key: str) -> bool:
    return key.endswith("weight") and any(
        n in key for n in ("norm", "LayerNorm", "ln_vision", "modality_heads.audio.0")
    )


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with exactly 32000 base tokens (filler past the bytes) + the 9 media tokens."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for char in pre_tokenizers.ByteLevel.alphabet():
        vocab[char] = len(vocab)
    while len(vocab) < 32000:
        vocab[f"<filler_{len(vocab)}>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<unk>")  # fmt: skip
    fast.add_special_tokens({"extra_special_tokens": list(MEDIA)}, replace_extra_special_tokens=False)
    assert [fast.convert_tokens_to_ids(t) for t in MEDIA] == list(range(32000, 32009))
    return fast


def write_release(folder: Path, state: dict[str, torch.Tensor] | None = None, *, fmt: str = "bin",
                  shards: int = 2, config: dict | None = None) -> Path:  # fmt: skip
    """The release folder: config.json, tokenizer files and `state` as `fmt` shards + index."""
    state = tiny_state() if state is None else state
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or CONFIG, indent=2))
    tiny_tokenizer().save_pretrained(folder)
    keys = list(state)
    per = math.ceil(len(keys) / shards)
    suffix = "bin" if fmt == "bin" else "safetensors"
    stem = "pytorch_model" if fmt == "bin" else "model"
    weight_map = {}
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.{suffix}"
        part = {k: state[k].contiguous() for k in keys[i * per : (i + 1) * per]}
        if fmt == "bin":
            torch.save(part, folder / name)
        else:
            save_file(part, str(folder / name))
        weight_map |= dict.fromkeys(part, name)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / f"{stem}.{suffix}.index.json").write_text(json.dumps(index))
    return folder
