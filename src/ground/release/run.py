"""The import step: the released GroundingGPT checkpoint as our checkpoint plus its frozen encoders.

    ground import groundinggpt resources/groundinggpt-release/models/groundinggpt-release --out DIR
    python -m ground.release.run SRC --out DIR [--compare-frame-encoder resources/.../blip2-opt-2.7b]

    >>> report = import_release(Path("release"), Path("results/import/release"))

Reads a release folder (config.json with `model_type: LEGO`, the tokenizer files, weights as
safetensors or `.bin` shards, see `weights.py`) and writes

    DIR/llm/                        LlamaForCausalLM (safetensors) + the release's own tokenizer files
    DIR/adapters.safetensors        our adapters (image, video, audio)
    DIR/grounding.json              so that GroundingModel.from_pretrained(DIR) loads it
    DIR/encoders/frame_encoder/     EVA-ViT-g + ln_vision + BLIP-2 Q-Former (Blip2VisionModelWithProjection)
    DIR/encoders/audio_encoder/     ImageBind's audio branch (ImageBindAudioModel)
    DIR/import.json                 every release tensor -> where it went or why it was dropped,
                                    and (--compare-frame-encoder) hashes against the hub's BLIP-2

The image encoder (CLIP ViT-L/14-336) is not in the release: the recipe downloads it. Any
missing, unexpected or mis-shaped tensor stops the import naming it; everything is written to a
temporary folder beside DIR and renamed at the end, so DIR is complete or absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import save_torch_state_dict
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoTokenizer

from ground.model.grounding import FORMAT_VERSION
from ground.model.tokens import SPECIAL_TOKENS, token_ids
from ground.release.layout import ReleaseError, check_layout, expected_shapes, release_sizes
from ground.release.parts import complete_and_check, part_configs, split_parts
from ground.release.weights import read_weights

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")  # fmt: skip
# A few frame-encoder tensors whose hashes tell whether two BLIP-2s are the same weights.
COMPARED = ("vision_model.embeddings.patch_embedding.weight", "vision_model.encoder.layers.0.self_attn.qkv.weight",
            "vision_model.post_layernorm.weight", "qformer.encoder.layer.0.crossattention.attention.key.weight",
            "query_tokens")  # fmt: skip


def import_release(src: Path, out: Path, *, compare_frame_encoder: Path | None = None) -> dict[str, Any]:
    """Import the release folder `src` into `out` (see the module docstring); returns the report."""
    src, out = Path(src), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out}: exists and is not empty; remove it first")
    config = _read_config(src)
    state, files = read_weights(src)
    sizes = release_sizes(config, state)
    where = check_layout(state, expected_shapes(sizes))
    dtype = state["model.embed_tokens.weight"].dtype
    parts = split_parts(state, sizes)
    configs = part_configs(config, sizes, dtype)
    complete_and_check(parts, configs)
    staging = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        ids = _write_llm(src, staging / "llm", parts["llm"], configs["llm"])
        save_file(_contiguous(parts["adapters"]), str(staging / "adapters.safetensors"), metadata={"format": "pt"})
        meta = {"format_version": FORMAT_VERSION, "config": asdict(configs["adapters"]), "token_ids": ids}
        (staging / "grounding.json").write_text(json.dumps(meta, indent=2) + "\n")
        for part in ("frame_encoder", "audio_encoder"):
            folder = staging / "encoders" / part
            configs[part].save_pretrained(folder)
            save_file(_contiguous(parts[part]), str(folder / "model.safetensors"), metadata={"format": "pt"})
        report = {
            "source": str(src), "files": [p.name for p in files], "tensors": len(state),
            "mapped": sum(not v.startswith("dropped") for v in where.values()),
            "dropped": sum(v.startswith("dropped") for v in where.values()),
            "dtype": str(dtype).removeprefix("torch."), "token_ids": ids,
            "frame_encoder_vs": compare_frame_encoders(parts["frame_encoder"], compare_frame_encoder),
            "keys": where,
        }  # fmt: skip
        (staging / "import.json").write_text(json.dumps(report, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _read_config(src: Path) -> dict[str, Any]:
    path = src / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ReleaseError(f"{path}: cannot read the release's config ({err})") from err


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def _write_llm(src: Path, llm: Path, state: dict[str, torch.Tensor], config: Any) -> dict[str, int]:
    """The LLM as transformers writes it, with the release's tokenizer files copied unchanged
    (their strip flags decide how text next to a media token tokenizes); returns the token ids."""
    llm.mkdir(parents=True)
    config.save_pretrained(llm)
    save_torch_state_dict(_contiguous(state), llm, max_shard_size="5GB")
    copied = [n for n in TOKENIZER_FILES if (src / n).is_file()]
    if not {"tokenizer.model", "tokenizer.json"} & set(copied):
        raise ReleaseError(f"{src}: no tokenizer.model or tokenizer.json")
    for name in copied:
        shutil.copy2(src / name, llm / name)
    ids = token_ids(AutoTokenizer.from_pretrained(llm))
    first = config.vocab_size - len(SPECIAL_TOKENS)
    if list(ids.values()) != list(range(first, config.vocab_size)):
        raise ReleaseError(f"{src}: media token ids {ids}; expected {first}..{config.vocab_size - 1} "
                           "in order (the release's embedding rows)")  # fmt: skip
    return ids


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's values as float32 (so bf16 and fp32 copies of one weight agree)."""
    data = tensor.detach().float().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def compare_frame_encoders(frame: dict[str, torch.Tensor], other: Path | None) -> dict[str, Any] | None:
    """Hashes of COMPARED in the release's frame encoder and in another BLIP-2 folder (the hub's
    Salesforce/blip2-opt-2.7b safetensors use the same names under the same prefixes)."""
    if other is None:
        return None
    theirs: dict[str, torch.Tensor] = {}
    for path in sorted(Path(other).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:  # reads only the compared tensors
            theirs |= {k: handle.get_tensor(k) for k in handle.keys() if k in COMPARED}  # noqa: SIM118
    rows = {}
    for key in COMPARED:
        ours = tensor_sha256(frame[key])
        hub = tensor_sha256(theirs[key]) if key in theirs else None
        rows[key] = {"release": ours, "other": hub, "same": ours == hub}
    return {"folder": str(other), "tensors": rows, "same": all(r["same"] for r in rows.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--compare-frame-encoder", type=Path)
    args = parser.parse_args()
    report = import_release(args.src, args.out, compare_frame_encoder=args.compare_frame_encoder)
    print(json.dumps({k: v for k, v in report.items() if k != "keys"}, indent=2))


if __name__ == "__main__":
    main()
