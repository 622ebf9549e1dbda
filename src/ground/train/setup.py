"""What a training stage is made of: process group, model, data, DeepSpeed config.

Used by `ground.train.loop.train_stage`; each piece is a plain function so tests and the
training benchmark build exactly what training builds.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import torch

from ground.model.adapters import feature_statistics
from ground.model.config import GroundingConfig
from ground.model.grounding import GroundingModel
from ground.model.template import RECORD_FIELD
from ground.train.data import FeatureLookup, StageDataset

STATISTICS_ITEMS = 512  # media per modality that the adapters' feature statistics are taken from


def distributed(deepspeed: Any) -> tuple[int, int, torch.device]:
    """Join (or, on one process, create) the process group; returns (rank, world, device)."""
    if "RANK" not in os.environ:  # plain `python -m`: a group of one
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        os.environ |= {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
    cuda = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True  # the recipe trains with tf32 on
        torch.backends.cudnn.allow_tf32 = True
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), device


def feature_lookup(spec: Any) -> FeatureLookup:
    """The feature step's cached features, by media path (read once per stage)."""
    index = {m: Path(p) for m, p in spec.feature_index.items()}
    return FeatureLookup(index, Path(spec.feature_store))


def feature_shapes(lookup: FeatureLookup) -> dict[str, tuple[int, ...]]:
    """Shape of one cached item per modality (all items of a modality share it)."""
    shapes = {}
    for modality, keys in lookup.keys.items():
        first = next(iter(keys), None)
        if first is not None:
            shapes[modality] = tuple(lookup.load(modality, first).shape)
    return shapes


def build_model(
    spec: Any, device: torch.device, records: list[dict[str, Any]], lookup: FeatureLookup
) -> tuple[GroundingModel, Any, list[str]]:
    """Stage 1 starts from the base LLM with fresh adapters (their feature statistics taken
    from the stage's `records`); later stages from the previous one."""
    attn = spec.common.get("attn_implementation", "sdpa")
    if spec.stage == 1:
        llm_config = json.loads((Path(spec.init) / "config.json").read_text())
        config = GroundingConfig.for_features(
            feature_shapes(lookup),
            llm_hidden=llm_config["hidden_size"],
            standardize_features=bool(spec.common.get("standardize_features", False)),
        )
        model, tokenizer = GroundingModel.from_base(spec.init, config, attn_implementation=attn)
        if config.standardize_features:
            for modality, (mean, std) in stage_statistics(records, lookup).items():
                model.adapters[modality].scale.set(mean, std)
    else:
        model = GroundingModel.from_pretrained(spec.init, attn_implementation=attn)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(Path(spec.init) / "llm")
    trainable = model.set_trainable(spec.stage)
    if spec.hp.get("gradient_checkpointing"):
        model.enable_gradient_checkpointing()
    return model.to(device), tokenizer, trainable


def stage_statistics(
    records: list[dict[str, Any]], lookup: FeatureLookup
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per modality, the feature statistics (`adapters.feature_statistics`) of up to
    STATISTICS_ITEMS media of the records, evenly spaced in sorted order (deterministic)."""
    stats = {}
    for modality in lookup.keys:
        field = RECORD_FIELD[modality]
        paths = {r[field] for r in records if isinstance(r.get(field), str)}
        ordered = sorted(p for p in paths if lookup.has(modality, p))
        if ordered:
            step = max(1, len(ordered) // STATISTICS_ITEMS)
            items = [lookup.load(modality, p) for p in ordered[::step][:STATISTICS_ITEMS]]
            stats[modality] = feature_statistics(items)
    return stats


def build_data(
    spec: Any, model: GroundingModel, tokenizer: Any, records: list[dict[str, Any]],
    lookup: FeatureLookup,
) -> StageDataset:  # fmt: skip
    """The stage's mixture (the assemble_mixture step's records, previous-stage replay included)."""
    return StageDataset(records, tokenizer, model.tokens_per_media(), spec.common["max_length"], lookup)


def deepspeed_config(spec: Any, device: torch.device, accum: int | None = None) -> dict[str, Any]:
    """`accum`: the accumulation this world size needs (`world.grad_accum_for`); default the recipe's."""
    hp, common = spec.hp, spec.common
    bf16 = common["precision"] == "bf16" or (common["precision"] == "auto" and device.type == "cuda")
    return {
        "train_micro_batch_size_per_gpu": hp["batch_size"],
        "gradient_accumulation_steps": accum or hp["grad_accum"],
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": common["zero_stage"]},
        # torch's AdamW: DeepSpeed's fused kernels would need a CUDA toolchain to JIT-compile.
        # On GPUs torch's fused kernel: the default foreach one makes temporaries as large as
        # ZeRO's flat fp32 partition (+25 GiB for 7B on one GPU, measured on an H200).
        "optimizer": {"type": "AdamW", "params": {
            "lr": hp["lr"], "weight_decay": hp["weight_decay"], "betas": [0.9, 0.999], "eps": 1e-8,
            "torch_adam": True, **({"fused": True} if device.type == "cuda" else {}),
        }},  # fmt: skip
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
    }
