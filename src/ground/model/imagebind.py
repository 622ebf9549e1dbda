"""ImageBind-huge's audio branch as a `transformers` model, loadable from the official checkpoint.

    >>> import torch
    >>> from ground.model.imagebind import (
    ...     ImageBindAudioConfig, ImageBindAudioModel, load_imagebind_audio_weights)
    >>> model = ImageBindAudioModel(ImageBindAudioConfig())          # huge: D=768, 12 blocks
    >>> load_imagebind_audio_weights(model, ".checkpoints/imagebind_huge.pth")
    >>> model.save_pretrained("resources/encoders/audio_encoder")    # safetensors + config.json
    >>> model = ImageBindAudioModel.from_pretrained("resources/encoders/audio_encoder").eval()
    >>> model(torch.randn(2, 1, 128, 204)).audio_embeds.shape         # norm of each row: 20
    torch.Size([2, 1024])

The official model (facebookresearch/ImageBind, imagebind/models/imagebind_model.py) keeps the
six modalities in `ModuleDict`s; our sub-modules carry the same inner names, so an official key
maps to ours by swapping one prefix (`OFFICIAL_PREFIXES`). Forward pass, as in the official code:
Conv2d patch stem (no bias) + LayerNorm(eps 1e-5), CLS token, learned position embedding, pre-norm
blocks with `nn.MultiheadAttention(add_bias_kv=True)` and LayerNorm(eps 1e-6), head LayerNorm ->
CLS -> Linear(no bias), then L2 normalisation times a fixed logit scale of 20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from huggingface_hub.dataclasses import strict
from safetensors.torch import load_file
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

# official prefix -> ours; every audio key of imagebind_huge.pth starts with one of these.
OFFICIAL_PREFIXES = {
    "modality_preprocessors.audio.": "preprocessor.",
    "modality_trunks.audio.": "trunk.",
    "modality_heads.audio.": "head.",
    "modality_postprocessors.audio.": "postprocessor.",
}


class ImageBindWeightsError(ValueError):
    """An ImageBind checkpoint whose audio keys do not match the model; the message lists them."""


@strict
class ImageBindAudioConfig(PreTrainedConfig):
    """Sizes of the audio branch; the defaults are imagebind_huge's."""

    model_type = "imagebind_audio"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    projection_dim: int = 1024
    mlp_ratio: int = 4
    num_mel_bins: int = 128
    target_length: int = 204
    patch_kernel: int = 16
    patch_stride: int = 10
    logit_scale: float = 20.0
    max_logit_scale: float = 100.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        super().__post_init__(**kwargs)

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(frequency, time) patches of the stem: 12 x 19 for a 128 x 204 log-mel."""
        return tuple(
            (size - self.patch_kernel) // self.patch_stride + 1
            for size in (self.num_mel_bins, self.target_length)
        )

    @property
    def num_patches(self) -> int:
        freq, time = self.patch_grid
        return freq * time


@dataclass
class ImageBindAudioOutput(ModelOutput):
    """`audio_embeds` [B, projection_dim] (L2-normalised x 20); `last_hidden_state` [B, 1+P, D]."""

    audio_embeds: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


class _PatchStem(nn.Module):
    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            1,
            config.hidden_size,
            kernel_size=config.patch_kernel,
            stride=config.patch_stride,
            bias=False,
        )
        # default eps (1e-5): the official stem's LayerNorm is built without eps, unlike the rest
        self.norm_layer = nn.LayerNorm(config.hidden_size)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        patches = self.proj(mel).flatten(2).transpose(1, 2)  # [B, D, F, T] -> [B, F*T, D]
        return self.norm_layer(patches)


class _PositionEmbedding(nn.Module):
    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.hidden_size))


class ImageBindAudioPreprocessor(nn.Module):
    """Log-mel -> tokens. `rgbt_stem` is the official name: the audio stem is stored under it."""

    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__()
        self.rgbt_stem = _PatchStem(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.pos_embedding_helper = _PositionEmbedding(config)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(mel)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat((cls, tokens), dim=1) + self.pos_embedding_helper.pos_embed


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ImageBindAudioBlock(nn.Module):
    """Pre-norm transformer block. The official trunk wraps it in DropPath (rate up to 0.1) that
    stays on in training; a frozen encoder must be deterministic, so there is none here."""

    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        # batch_first only changes the call layout, not the parameters or the maths
        self.attn = nn.MultiheadAttention(
            dim, config.num_attention_heads, bias=True, add_bias_kv=True, batch_first=True
        )
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, config.mlp_ratio * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class ImageBindAudioTrunk(nn.Module):
    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ImageBindAudioBlock(config) for _ in range(config.num_hidden_layers)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return tokens


class _SelectCls(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class _L2Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1, p=2)


class _LogitScale(nn.Module):
    """Fixed (non-learnable) scale, kept as the persistent buffer the checkpoint stores."""

    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__()
        self.max_logit_scale = config.max_logit_scale
        self.register_buffer("log_logit_scale", torch.tensor(math.log(config.logit_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=self.max_logit_scale) * x


class ImageBindAudioModel(PreTrainedModel):
    """Log-mel [B, 1, 128, 204] -> ImageBind audio embedding [B, 1024] with norm 20."""

    config_class = ImageBindAudioConfig
    base_model_prefix = "imagebind_audio"
    main_input_name = "input_features"
    _no_split_modules: ClassVar[list[str]] = ["ImageBindAudioBlock"]

    def __init__(self, config: ImageBindAudioConfig) -> None:
        super().__init__(config)
        self.preprocessor = ImageBindAudioPreprocessor(config)
        self.trunk = ImageBindAudioTrunk(config)
        # Sequential indices 0 and 2 are the official key names (index 1 selects the CLS token)
        self.head = nn.Sequential(
            nn.LayerNorm(config.hidden_size, eps=1e-6),
            _SelectCls(),
            nn.Linear(config.hidden_size, config.projection_dim, bias=False),
        )
        self.postprocessor = nn.Sequential(_L2Normalize(), _LogitScale(config))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ImageBindAudioPreprocessor):
            # the official "openclip" initialisation of the CLS token and position embedding
            scale = self.config.hidden_size**-0.5
            init.normal_(module.cls_token, std=scale)
            init.normal_(module.pos_embedding_helper.pos_embed, std=scale)
        elif isinstance(module, _LogitScale):
            init.constant_(module.log_logit_scale, math.log(self.config.logit_scale))

    def forward(self, input_features: torch.Tensor, **kwargs) -> ImageBindAudioOutput:
        expected = (1, self.config.num_mel_bins, self.config.target_length)
        if input_features.ndim != 4 or tuple(input_features.shape[1:]) != expected:
            # the official model would interpolate the position embedding; nothing here needs it
            raise ValueError(
                f"expected log-mel input [B, {', '.join(map(str, expected))}], "
                f"got {list(input_features.shape)}"
            )
        hidden = self.trunk(self.preprocessor(input_features))
        embeds = self.postprocessor(self.head(hidden))
        return ImageBindAudioOutput(audio_embeds=embeds, last_hidden_state=hidden)


def official_audio_key_shapes(config: ImageBindAudioConfig) -> dict[str, tuple[int, ...]]:
    """Every audio tensor of an official ImageBind checkpoint with this config, and its shape.

    Read off imagebind/models/{imagebind_model,multimodal_preprocessors,transformer,helpers}.py:
    a one-layer `PatchEmbedGeneric` stem stores its Conv2d as `proj` (no `.1`: only the vision
    stem, `PadIm2Video` + Conv3d, is a Sequential); the audio trunk has no pre-transformer
    LayerNorm; drop-path, CLS selection and normalisation have no tensors.
    """
    d, hidden = config.hidden_size, config.mlp_ratio * config.hidden_size
    pre, trunk = "modality_preprocessors.audio.", "modality_trunks.audio.blocks"
    shapes: dict[str, tuple[int, ...]] = {
        f"{pre}cls_token": (1, 1, d),
        f"{pre}rgbt_stem.proj.weight": (d, 1, config.patch_kernel, config.patch_kernel),
        f"{pre}rgbt_stem.norm_layer.weight": (d,),
        f"{pre}rgbt_stem.norm_layer.bias": (d,),
        f"{pre}pos_embedding_helper.pos_embed": (1, config.num_patches + 1, d),
    }
    for i in range(config.num_hidden_layers):
        block = {
            "attn.in_proj_weight": (3 * d, d),
            "attn.in_proj_bias": (3 * d,),
            "attn.bias_k": (1, 1, d),
            "attn.bias_v": (1, 1, d),
            "attn.out_proj.weight": (d, d),
            "attn.out_proj.bias": (d,),
            "norm_1.weight": (d,),
            "norm_1.bias": (d,),
            "mlp.fc1.weight": (hidden, d),
            "mlp.fc1.bias": (hidden,),
            "mlp.fc2.weight": (d, hidden),
            "mlp.fc2.bias": (d,),
            "norm_2.weight": (d,),
            "norm_2.bias": (d,),
        }
        shapes.update({f"{trunk}.{i}.{name}": shape for name, shape in block.items()})
    shapes["modality_heads.audio.0.weight"] = (d,)
    shapes["modality_heads.audio.0.bias"] = (d,)
    shapes["modality_heads.audio.2.weight"] = (config.projection_dim, d)
    shapes["modality_postprocessors.audio.1.log_logit_scale"] = ()
    return shapes


def official_to_local(key: str) -> str:
    """`modality_trunks.audio.blocks.0.norm_1.weight` -> `trunk.blocks.0.norm_1.weight`."""
    for official, local in OFFICIAL_PREFIXES.items():
        if key.startswith(official):
            return local + key[len(official) :]
    raise KeyError(f"{key} is not an ImageBind audio key")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ImageBind checkpoint")
    if path.suffix == ".safetensors":
        return load_file(path)
    # mmap: the huge checkpoint holds all six modalities (4.5 GB); only audio is read
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict):
        raise ImageBindWeightsError(f"{path}: not a state dict (got {type(state).__name__})")
    return state


def _listing(title: str, keys: list[str], limit: int = 20) -> str:
    shown = "\n    ".join(keys[:limit])
    more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"  {title} ({len(keys)}):\n    {shown}{more}"


def load_imagebind_audio_weights(
    model: ImageBindAudioModel, state_dict_or_path: dict[str, torch.Tensor] | str | Path
) -> None:
    """Copy the audio tensors of an official ImageBind state dict (or .pth/.safetensors file)
    into `model` by name; other modalities' keys are ignored. Any missing, unexpected or
    mis-shaped audio key raises `ImageBindWeightsError` naming it, before anything is copied."""
    source = state_dict_or_path
    if not isinstance(source, dict):
        source = _read_state_dict(Path(source))
    expected = official_audio_key_shapes(model.config)
    audio = {k: v for k, v in source.items() if k.startswith(tuple(OFFICIAL_PREFIXES))}
    missing = [k for k in expected if k not in audio]
    unexpected = [k for k in audio if k not in expected]
    misshaped = [
        f"{k}: checkpoint {list(audio[k].shape)}, model {list(shape)}"
        for k, shape in expected.items()
        if k in audio and tuple(audio[k].shape) != shape
    ]
    problems = [
        _listing(title, keys)
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        )
        if keys
    ]
    if problems:
        raise ImageBindWeightsError(
            "ImageBind audio weights do not match the model "
            f"(hidden {model.config.hidden_size}, {model.config.num_hidden_layers} blocks):\n"
            + "\n".join(problems)
        )
    local = {official_to_local(k): v for k, v in audio.items()}
    model.load_state_dict(local, strict=True)
