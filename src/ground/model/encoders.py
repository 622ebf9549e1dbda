"""The three frozen encoders of the feature-caching step, behind one interface.

    >>> from pathlib import Path
    >>> import torch
    >>> from ground.demo.encoders import create_tiny_encoders
    >>> from ground.model.encoders import load_encoder
    >>> paths = create_tiny_encoders(Path("resources/demo/models"), seed=0)
    >>> image = load_encoder("image", paths["image"])
    >>> image.encode(torch.zeros(2, 3, 64, 64)).shape      # 7B: [2, 576, 1024] at 336 px
    torch.Size([2, 64, 64])
    >>> image.identity                                      # changes when any weight changes

| kind  | model class (transformers)        | features per input                               |
|-------|-----------------------------------|--------------------------------------------------|
| image | CLIPVisionModel                   | penultimate hidden states, CLS dropped [P, D]     |
| video | Blip2VisionModelWithProjection    | Q-Former outputs of the query tokens [32, 768]    |
| audio | ImageBindAudioModel (ours)        | normalised ImageBind embedding x 20 [1024]        |

The 7B recipe and the tiny demo use the same classes; only the checkpoints differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    Blip2VisionModelWithProjection,
    CLIPVisionModel,
    PreTrainedModel,
)

from ground.model.imagebind import ImageBindAudioModel

# OpenAI CLIP normalisation; BLIP-2 (LAVIS) normalises video frames with the same numbers.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
_CHUNK = 1 << 20


def _encode_image(model: CLIPVisionModel, pixels: torch.Tensor) -> torch.Tensor:
    # LLaVA / GroundingGPT take layer -2 (the last layer is tuned for CLIP's contrastive head)
    # and drop CLS so that every LLM token is one image patch
    out = model(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[-2][:, 1:]


def _encode_frames(model: Blip2VisionModelWithProjection, pixels: torch.Tensor) -> torch.Tensor:
    # Blip2VisionModelWithProjection is the smallest transformers class holding BLIP-2's
    # `vision_model`, `query_tokens` and `qformer` under the names Blip2ForConditionalGeneration
    # checkpoints use, so real BLIP-2 weights load by key without the language model; its
    # `vision_projection` (ITM head) is unused, and its forward would apply it, hence this path.
    # `last_hidden_state` already went through `post_layernorm`, which is LAVIS's `ln_vision`.
    image = model.vision_model(pixel_values=pixels).last_hidden_state
    queries = model.query_tokens.expand(image.shape[0], -1, -1)
    mask = torch.ones(image.shape[:-1], dtype=torch.long, device=image.device)
    out = model.qformer(
        query_embeds=queries, encoder_hidden_states=image, encoder_attention_mask=mask
    )
    return out.last_hidden_state[:, : queries.shape[1]]


def _encode_audio(model: ImageBindAudioModel, mel: torch.Tensor) -> torch.Tensor:
    return model(mel).audio_embeds


_KINDS: dict[str, tuple[type[PreTrainedModel], Callable[..., torch.Tensor]]] = {
    "image": (CLIPVisionModel, _encode_image),
    "video": (Blip2VisionModelWithProjection, _encode_frames),
    "audio": (ImageBindAudioModel, _encode_audio),
}


@dataclass
class Encoder:
    """A frozen encoder; `identity` fingerprints the checkpoint for the feature cache."""

    kind: str
    model: PreTrainedModel
    identity: str
    device: torch.device
    dtype: torch.dtype
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one input: (3, S, S) pixels, or (1, mel, frames) for audio."""
        config = self.model.config
        if self.kind == "audio":
            return (1, config.num_mel_bins, config.target_length)
        size = config.vision_config.image_size if self.kind == "video" else config.image_size
        return (3, size, size)

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """[..., *input_shape] -> [..., *features] (see the module table), float32 on `device`.

        Leading dimensions are flattened for the model and restored, so a video's frames
        [N, T, 3, S, S] give [N, T, 32, 768] and audio clips [N, 3, 1, 128, 204] give [N, 3, 1024].
        float32 whatever the model dtype: the cache decides how to store them.
        """
        rank = len(self.input_shape)
        if batch.ndim <= rank or tuple(batch.shape[-rank:]) != self.input_shape:
            raise ValueError(
                f"{self.kind} encoder expects [..., {', '.join(map(str, self.input_shape))}], "
                f"got {list(batch.shape)}"
            )
        leading = batch.shape[:-rank]
        forward = _KINDS[self.kind][1]
        self.model.eval()
        with torch.inference_mode():
            inputs = batch.reshape(-1, *self.input_shape).to(self.device, self.dtype)
            features = forward(self.model, inputs)
        return features.float().reshape(*leading, *features.shape[1:])


def checkpoint_identity(kind: str, path: Path) -> str:
    """sha256 (16 hex digits) over the kind, config.json and every weight file, by name and
    content; files are streamed, so multi-GB checkpoints hash in constant memory."""
    files = [path / "config.json"] + sorted(
        p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    )
    digest = hashlib.sha256(f"kind={kind}\n".encode())
    for file in files:
        digest.update(f"file={file.name}\n".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def load_encoder(
    kind: str, path: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Encoder:
    """Load the `kind` ("image", "video" or "audio") encoder saved under `path`, frozen."""
    if kind not in _KINDS:
        raise ValueError(f"unknown encoder kind {kind!r}; expected one of {sorted(_KINDS)}")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json of a {kind} encoder")
    identity = checkpoint_identity(kind, path)
    model_class = _KINDS[kind][0]
    extra = {"attn_implementation": "sdpa"} if kind == "image" else {}
    model = model_class.from_pretrained(path, dtype=dtype, **extra)
    model.requires_grad_(False).eval().to(device)
    return Encoder(kind, model, identity, torch.device(device), dtype)
