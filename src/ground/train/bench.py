"""Training step time on cached features against running the frozen encoders on the fly.

    ground bench train                                        # demo size on CPU, seconds
    ground bench train --size 7b --stage 1 --batch 16         # one 141 GB GPU (H200), random 7B
    ground bench train --size 7b --llm-layers 24 --batch 16   # stage 2; 32 layers need > 1 GPU
    python -c "from ground.train.bench import bench_training; print(bench_training('demo'))"

One process builds one DeepSpeed engine (ZeRO-2, AdamW, the stage's trainable set) as
`ground.train.loop` does, and one fixed batch mirroring stage-2 data: image REC, video temporal
grounding, sound localisation (audio + image), text + image (cycled for larger batches). Then it
times the same optimizer step twice:

- `cached`: the features are random tensors of the cached shapes, float16 on the CPU as the
  feature store holds them, copied to the device every step (the copy is part of the cost);
- `on_the_fly`: the raw inputs (pixels, every video frame, the audio mel clips) are float32 on
  the CPU, copied to the device and run through the frozen encoders (bf16 on GPU, fp32 on CPU,
  under inference mode) every step, then the same training step.

Sizes: `demo` is the demo recipe's tiny random models (LLaMA 128 x 4 layers, the tiny CLIP /
BLIP-2 / ImageBind of `create_tiny_encoders`); `7b` has the paper's shapes with random bf16
weights built on the GPU (Vicuna-7B + 9 tokens, CLIP ViT-L/14-336, EVA-ViT-g + Q-Former,
ImageBind-huge audio) and, from stage 2 on, gradient checkpointing, as the 7B recipe. A stage-2
7B step does not fit one GPU with ZeRO-2 (bf16 weights and gradients, fp32 master weights, Adam
moments and the fp32 gradient copy of the step: ~22 bytes a parameter, ~148 GB), hence
`llm_layers`. On a GPU, AdamW runs as torch's fused kernel (see `setup.deepspeed_config`).

MFU = model FLOPs per token x tokens/s / the GPU's peak dense bf16 FLOP/s. Model FLOPs per token
are 6 x trained + 4 x frozen parameters of the trained model (LLM + adapters; a frozen LLM still
runs forward and passes gradients back), leaving out the input embedding table (a lookup) and
attention's own FLOPs, and counting adapters as if they saw every token (they hold < 1% of the
parameters). Checkpointing's recomputation and the encoders are not counted, so encoder time on
the fly shows as a lower MFU. Tokens are non-padding tokens. A step's time is the median of the
timed steps (each ends with a device synchronisation), so one slow step does not move it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ground.demo.encoders import create_tiny_encoders
from ground.model.config import GroundingConfig
from ground.model.encoders import Encoder, load_encoder
from ground.model.grounding import GroundingModel
from ground.model.tokens import MEDIA_TOKENS, SPECIAL_TOKENS

SIZES = ("demo", "7b")
# The demo recipe's LLM (config.yaml download.models) and Vicuna-7B v1.5, both before the 9 tokens.
DEMO_LLM = {"vocab_size": 2048, "hidden_size": 128, "intermediate_size": 336,
            "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 1024}  # fmt: skip
VICUNA_7B = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "max_position_embeddings": 4096}  # fmt: skip
# Frames per video and clips per audio: the demo recipe's 8 / 3, the paper's 64 / 3.
MEDIA_COUNTS = {"demo": {"frames": 8, "clips": 3}, "7b": {"frames": 64, "clips": 3}}
# (media of the row in the reference's order: sound, video, image; text tokens of the row)
ROWS = ((("image",), 60), (("video",), 60), (("audio", "image"), 60), (("image",), 120))
ANSWER_TOKENS = 20  # labelled tokens at the end of each row
PREFIX_TOKENS = 15  # text before the media (system prompt, "### Human:")
# Peak dense bf16 tensor FLOP/s by GPU name (datasheet, SXM parts); the H200 has the H100's cores.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def bench_training(
    size: str = "demo",
    steps: int = 5,
    warmup: int = 2,
    batch: int = 4,
    device: str = "auto",
    stage: int = 2,
    llm_layers: int | None = None,
) -> dict[str, Any]:
    """Time `steps` optimizer steps (after `warmup`) per mode; see the module docstring.

    `device` "auto" is the training path's choice (the local GPU, else the CPU); "cpu" forces
    the CPU on a machine without GPUs only (the process group is already NCCL's otherwise).
    `llm_layers` overrides the LLM's decoder layer count (widths unchanged), e.g. to fit a
    stage-2 7B step on one GPU.
    """
    import deepspeed

    from ground.train.setup import distributed

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if steps < 1 or warmup < 0 or batch < 1:
        raise ValueError(
            f"need steps >= 1, warmup >= 0, batch >= 1; got {steps}, {warmup}, {batch}"
        )
    _, _, where = distributed(deepspeed)
    if device != "auto":
        where = torch.device(device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model, encoders = _build(size, where, Path(tmp), llm_layers, stage)
    counts = MEDIA_COUNTS[size]
    text, owners = _make_batch(model, batch)
    cached, raw = _media_inputs(model.config, encoders, owners, counts)
    model.set_trainable(stage)
    flops_per_token = _flops_per_token(model)
    engine = _engine(model, batch, where)
    modes = {
        "cached": lambda: _cached_media(cached, where),
        "on_the_fly": lambda: _encoded_media(raw, encoders, where),
    }
    calls = _count_forwards(encoders)
    tokens = int(text["attention_mask"].sum())
    results: dict[str, Any] = {}
    for name, media in modes.items():
        calls["n"] = 0
        times, peak, loss = _time(engine, text, media, steps, warmup, where)
        results[name] = _summary(times, peak, loss, tokens, flops_per_token, where)
        results[name]["encoder_calls"] = calls["n"]
    return {
        "size": size, "device": _device_name(where), "batch": batch, "stage": stage,
        "llm_layers": model.llm.config.num_hidden_layers,
        "media_items": {kind: len(rows) for kind, rows in owners.items()},
        "params": {"llm": _count(model.llm), "adapters": _count(model.adapters),
                   **{f"{k}_encoder": _count(e.model) for k, e in encoders.items()}},
        "steps": steps, "warmup": warmup, "tokens_per_step": tokens,
        "sequence_length": int(text["input_ids"].shape[1]),
        "flops_per_token": flops_per_token, "modes": results,
        "ratio": results["on_the_fly"]["seconds_per_step"] / results["cached"]["seconds_per_step"],
    }  # fmt: skip


def _build(
    size: str, device: torch.device, tmp: Path, llm_layers: int | None, stage: int
) -> tuple[GroundingModel, dict[str, Encoder]]:
    """The trained model (LLM + adapters, nothing frozen yet) and the three frozen encoders."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if size == "demo":
        paths = create_tiny_encoders(tmp, seed=0)
        encoders = {kind: load_encoder(kind, path, device, dtype) for kind, path in paths.items()}
        llm_sizes = DEMO_LLM
    else:
        encoders = _paper_encoders(device, dtype)
        llm_sizes = VICUNA_7B
    from transformers import LlamaConfig, LlamaForCausalLM

    text_vocab = llm_sizes["vocab_size"]
    if llm_layers is not None:
        llm_sizes = llm_sizes | {"num_hidden_layers": llm_layers}
    config = LlamaConfig(**(llm_sizes | {"vocab_size": text_vocab + len(SPECIAL_TOKENS)}),
                         tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)  # fmt: skip
    # Built on the device in its dtype: a 7B model initialises in seconds there.
    with torch.device(device):
        llm = LlamaForCausalLM._from_config(config, dtype=dtype, attn_implementation="sdpa")
        shapes = _feature_shapes(encoders, MEDIA_COUNTS[size])
        grounding = GroundingConfig.for_features(shapes, llm_hidden=config.hidden_size)
        ids = {token: text_vocab + i for i, token in enumerate(SPECIAL_TOKENS)}
        model = GroundingModel(llm, grounding, ids).to(dtype)
    if size == "7b" and stage > 1:
        model.enable_gradient_checkpointing()  # the 7B recipe's stages 2 and 3 (not stage 1)
    return model, encoders


def _paper_encoders(device: torch.device, dtype: torch.dtype) -> dict[str, Encoder]:
    """CLIP ViT-L/14-336, BLIP-2 EVA-ViT-g + Q-Former, ImageBind-huge audio: random weights."""
    from transformers import (
        Blip2Config,
        Blip2VisionModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModel,
    )

    from ground.model.imagebind import ImageBindAudioConfig, ImageBindAudioModel

    clip = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                            num_attention_heads=16, image_size=336, patch_size=14)  # fmt: skip
    blip2 = Blip2Config(
        vision_config={"hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14},
        qformer_config={"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                        "intermediate_size": 3072, "encoder_hidden_size": 1408},
        num_query_tokens=32,
    )  # fmt: skip
    models = {
        "image": (CLIPVisionModel, clip, {"attn_implementation": "sdpa"}),
        "video": (Blip2VisionModelWithProjection, blip2, {}),
        "audio": (ImageBindAudioModel, ImageBindAudioConfig(), {}),
    }
    encoders = {}
    with torch.device(device):
        for kind, (model_class, config, extra) in models.items():
            model = model_class._from_config(config, dtype=dtype, **extra)
            model.requires_grad_(False).eval()
            encoders[kind] = Encoder(kind, model, "random", device, dtype)
    return encoders


def _feature_shapes(encoders: dict[str, Encoder], counts: dict[str, int]) -> dict[str, tuple]:
    """One cached item's shape per modality (those `ground.features` stores)."""
    image, video, audio = (encoders[k].model.config for k in ("image", "video", "audio"))
    patches = (image.image_size // image.patch_size) ** 2
    return {
        "image": (patches, image.hidden_size),
        "video": (counts["frames"], video.num_query_tokens, video.qformer_config.hidden_size),
        "audio": (counts["clips"], audio.projection_dim),
    }


def _make_batch(model: GroundingModel, batch: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Right-padded ids, mask and labels of `batch` rows cycling through ROWS; owners per modality."""
    per_media = model.tokens_per_media()
    text_vocab = min(model.token_ids.values())
    rows, owners = [], {}
    for row in range(batch):
        kinds, text_len = ROWS[row % len(ROWS)]
        for kind in kinds:
            owners.setdefault(kind, []).append(row)
        ids = torch.randint(3, text_vocab, (PREFIX_TOKENS,)).tolist()
        for kind in kinds:
            start, patch, end = (model.token_ids[t] for t in MEDIA_TOKENS[kind])
            ids += [start] + [patch] * per_media[kind] + [end]
        ids += torch.randint(3, text_vocab, (text_len - PREFIX_TOKENS,)).tolist()
        rows.append(ids)
    length = max(map(len, rows))
    input_ids = torch.zeros(batch, length, dtype=torch.long)
    mask = torch.zeros(batch, length, dtype=torch.long)
    labels = torch.full((batch, length), -100, dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        answer = slice(len(ids) - ANSWER_TOKENS, len(ids))
        labels[row, answer] = input_ids[row, answer]
    text = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
    return text, {kind: torch.tensor(rows_of) for kind, rows_of in owners.items()}


def _media_inputs(
    config: GroundingConfig, encoders: dict[str, Encoder], owners: dict, counts: dict[str, int]
) -> tuple[dict, dict]:
    """(cached, raw): random fp16 features as stored, and random fp32 encoder inputs, on the CPU."""
    item = {"image": (config.image_tokens, config.image_dim),
            "video": (counts["frames"], config.frame_tokens, config.video_dim),
            "audio": (counts["clips"], config.audio_dim)}  # fmt: skip
    per_item = {"image": (), "video": (counts["frames"],), "audio": (counts["clips"],)}
    cached, raw = {}, {}
    for kind, rows in owners.items():
        n = len(rows)
        cached[kind] = (torch.randn(n, *item[kind]).half(), rows)
        raw[kind] = (torch.randn(n, *per_item[kind], *encoders[kind].input_shape), rows)
    return cached, raw


def _cached_media(cached: dict, device: torch.device) -> dict:
    return {kind: (f.to(device), rows.to(device)) for kind, (f, rows) in cached.items()}


def _encoded_media(raw: dict, encoders: dict[str, Encoder], device: torch.device) -> dict:
    # encode() runs under inference mode; its outputs must be cloned before autograd may save them.
    return {
        kind: (encoders[kind].encode(x).clone(), rows.to(device)) for kind, (x, rows) in raw.items()
    }


def _engine(model: GroundingModel, batch: int, device: torch.device) -> Any:
    """The training path's engine: `deepspeed_config` of `ground.train.setup`, ZeRO-2, AdamW."""
    import deepspeed

    from ground.train.setup import deepspeed_config

    # lr and decay leave the step time alone; the other keys are the recipes' (config.yaml).
    spec = SimpleNamespace(
        hp={"batch_size": batch, "grad_accum": 1, "lr": 2e-5, "weight_decay": 0.0},
        common={"precision": "auto", "zero_stage": 2},
    )
    config = deepspeed_config(spec, device)
    engine, _, _, _ = deepspeed.initialize(
        model=model.to(device),
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=config,
    )
    return engine


def _time(
    engine: Any, text: dict, media: Callable[[], dict], steps: int, warmup: int,
    device: torch.device,
) -> tuple[list[float], int | None, float]:  # fmt: skip
    """(seconds of each timed optimizer step, peak device bytes or None on CPU, last loss)."""
    from ground.train.loop import to_device  # the copy the training loop makes

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times, loss = [], torch.zeros(())
    for step in range(warmup + steps):
        _sync(device)
        started = time.perf_counter()
        batch = to_device(text | {"media": {}}, device) | {"media": media()}
        loss = engine(**batch).loss
        engine.backward(loss)
        engine.step()
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return times, peak, loss.detach().float().item()


def _summary(
    times: list[float], peak: int | None, loss: float, tokens: int, flops_per_token: int,
    device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    seconds = statistics.median(times)
    return {
        "seconds_per_step": seconds,
        "step_seconds": times,
        "tokens_per_s": tokens / seconds,
        "peak_memory_gib": None if peak is None else peak / 2**30,
        "mfu": _mfu(flops_per_token * tokens / seconds, device),
        "last_loss": loss,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _count_forwards(encoders: dict[str, Encoder]) -> dict[str, int]:
    """A counter that every encoder forward (vision tower or audio model) increments."""
    calls = {"n": 0}

    def hook(*_: Any) -> None:
        calls["n"] += 1

    for encoder in encoders.values():
        getattr(encoder.model, "vision_model", encoder.model).register_forward_hook(hook)
    return calls


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _flops_per_token(model: GroundingModel) -> int:
    """6 x trained + 4 x frozen parameters (forward 2, backward 4 or 2), embedding table excluded."""
    table = model.llm.get_input_embeddings().weight
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad and p is not table)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad and p is not table)
    return 6 * trained + 4 * frozen


def _mfu(flops_per_s: float, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return None if peak is None else flops_per_s / peak


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
