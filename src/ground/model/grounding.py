"""GroundingGPT: an LLM whose PATCH-token embeddings are replaced by adapted cached features.

    >>> model, tokenizer = GroundingModel.from_base("resources/demo/models/llm", cfg)  # stage 1
    >>> trainable = model.set_trainable(1)          # sorted names of the parameters that train
    >>> out = model(input_ids, attention_mask, labels,
    ...             media={"image": (features, owners)})   # features [N, P, Di], owners [N]
    >>> out.loss.backward()
    >>> model.save_pretrained(out_dir); tokenizer.save_pretrained(out_dir / "llm")
    >>> model = GroundingModel.from_pretrained(out_dir)                                 # stage 2, 3
    >>> new_ids = model.generate(input_ids, attention_mask, media, max_new_tokens=64)

`media[modality] = (features, owners)`: the stacked cached features of that modality's items and
`owners[i]`, the batch row of item i; a row that holds several items of a modality (packed rows,
`ground.train.packing`) lists them in the order of their PATCH spans in it. Modalities: "image"
[N, P, Di], "video" [N, F, Q, Dv], "audio" [N, C, Da]. Only the adapters of the modalities present
run. Each row must hold exactly as many PATCH tokens of a modality as the adapter makes
(`tokens_per_media()`) for each item it owns, and none for a modality it has no item of.

Checkpoint layout (`save_pretrained(dir)`):

    dir/llm/                    the LLM (`save_pretrained`, safetensors, resized vocabulary);
                                the caller saves the tokenizer here too
    dir/adapters.safetensors    the ModuleDict `adapters` state: image.fc1.weight, video.qformer...,
                                video.query_tokens, video.position.weight, audio.proj.bias, ...
    dir/grounding.json          {"format_version": 1, "config": GroundingConfig fields,
                                 "token_ids": {"<im_patch>": id, ...}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from ground.model.adapters import build_adapters, tokens_per_media
from ground.model.config import MODALITIES, GroundingConfig
from ground.model.tokens import BOUNDARY_TOKENS, MEDIA_TOKENS, SPECIAL_TOKENS, add_special_tokens

FORMAT_VERSION = 1
Media = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


class GroundingModel(nn.Module):
    """`llm` (any Hugging Face causal LM) + `adapters` (image, video, audio) + `config` + `token_ids`."""

    def __init__(self, llm: Any, config: GroundingConfig, token_ids: Mapping[str, int]) -> None:
        super().__init__()
        width = llm.get_input_embeddings().weight.shape[1]
        if width != config.llm_hidden:
            raise ValueError(f"config.llm_hidden {config.llm_hidden} != the LLM's width {width}")
        if sorted(token_ids) != sorted(SPECIAL_TOKENS):
            raise ValueError(
                f"token_ids must name exactly {SPECIAL_TOKENS}, got {sorted(token_ids)}"
            )
        self.llm = llm
        self.config = config
        self.token_ids = {t: int(token_ids[t]) for t in SPECIAL_TOKENS}
        self.adapters = build_adapters(config)
        self._patch_ids = {m: self.token_ids[MEDIA_TOKENS[m][1]] for m in MODALITIES}
        self._mask_hook: torch.utils.hooks.RemovableHandle | None = None

    def tokens_per_media(self) -> dict[str, int]:
        return tokens_per_media(self.config)

    # -- forward ---------------------------------------------------------------------------------

    def embed_inputs(self, input_ids: torch.Tensor, media: Media | None = None) -> torch.Tensor:
        """Token embeddings [B, L, H] with every PATCH position replaced by its adapter output."""
        media = {m: v for m, v in (media or {}).items() if v[0].shape[0] > 0}
        unknown = sorted(set(media) - set(MODALITIES))
        if unknown:
            raise ValueError(f"unknown media modalities {unknown}; expected some of {MODALITIES}")
        owners = {m: _owner_rows(m, *media[m], input_ids.shape[0]) for m in media}
        masks = {m: input_ids == self._patch_ids[m] for m in MODALITIES}
        _check_patch_counts(masks, owners, self.tokens_per_media())
        embeds = self.llm.get_input_embeddings()(input_ids)
        for modality, (features, rows) in media.items():
            values = self.adapters[modality](features)
            # masked_scatter fills the masked positions in row-major order: sort items by row,
            # keeping a row's items in their order.
            ordered = values[rows.argsort(stable=True)].to(embeds.dtype)
            embeds = embeds.masked_scatter(masks[modality].unsqueeze(-1), ordered)
        return embeds

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        media: Media | None = None,
        **llm_kwargs: Any,
    ) -> Any:
        """The LLM's output (loss where labels != -100, logits) on the spliced embeddings; packed
        rows pass `position_ids` and no attention mask (`ground.train.packing`)."""
        if labels is not None:
            # Scoring or training never reuses a KV cache; keeping one would hold every layer's
            # keys and values alive and undo activation checkpointing's savings.
            llm_kwargs.setdefault("use_cache", False)
        embeds = self.embed_inputs(input_ids, media)
        return self.llm(
            inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **llm_kwargs
        )

    @torch.no_grad()
    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, media: Media | None = None,
        **generate_kwargs: Any,
    ) -> torch.Tensor:  # fmt: skip
        """Generated ids only (the LLM is given embeddings, so the prompt is not echoed)."""
        embeds = self.embed_inputs(input_ids, media)
        return self.llm.generate(
            inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs
        )

    # -- training --------------------------------------------------------------------------------

    def set_trainable(self, stage: int) -> list[str]:
        """Freeze/unfreeze for a stage; returns the sorted names of the trainable parameters.

        Stage 1: every adapter parameter, plus the input-embedding rows of the six START/END
        tokens. The embedding weight is marked trainable as a whole and a gradient hook zeroes
        every other row's gradient, so those rows stay put ONLY under an optimizer with weight
        decay 0 (the recipe's): AdamW with decay would still shrink them. lm_head stays frozen
        (for an LLM with tied input/output embeddings the six rows then train in both roles).
        Stages 2 and 3: everything (LLM and adapters).
        """
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        if self._mask_hook is not None:
            self._mask_hook.remove()
            self._mask_hook = None
        self.llm.requires_grad_(stage > 1)
        self.adapters.requires_grad_(True)
        if stage == 1:
            weight = self.llm.get_input_embeddings().weight
            weight.requires_grad_(True)
            self._mask_hook = weight.register_hook(
                _keep_rows([self.token_ids[t] for t in BOUNDARY_TOKENS])
            )
        return sorted(name for name, p in self.named_parameters() if p.requires_grad)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the LLM's layer activations in backward (non-reentrant torch checkpoint)."""
        # transformers 5 renamed gradient_checkpointing_enable (now a deprecated alias).
        self.llm.activation_checkpointing_enable()

    # -- checkpoints -----------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the checkpoint layout of the module docstring (the tokenizer is the caller's)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.llm.save_pretrained(directory / "llm")
        state = {k: v.detach().contiguous() for k, v in self.adapters.state_dict().items()}
        save_file(state, str(directory / "adapters.safetensors"), metadata={"format": "pt"})
        meta = {
            "format_version": FORMAT_VERSION,
            "config": asdict(self.config),
            "token_ids": self.token_ids,
        }
        (directory / "grounding.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        dtype: torch.dtype | None = None,
        attn_implementation: str | None = None,
    ) -> GroundingModel:
        """Load a `save_pretrained` checkpoint; dtype None keeps the LLM's saved dtype."""
        directory = Path(directory)
        meta = json.loads((directory / "grounding.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory}/grounding.json: format_version {meta.get('format_version')} "
                             f"is not {FORMAT_VERSION}")  # fmt: skip
        config = GroundingConfig.from_dict(meta["config"])
        llm = _load_llm(directory / "llm", dtype, attn_implementation)
        # The fresh adapters are overwritten at once: do not let building them move the global RNG.
        with torch.random.fork_rng(devices=[]):
            model = cls(llm, config, meta["token_ids"])
        model.adapters.load_state_dict(load_file(str(directory / "adapters.safetensors")))
        return model.to(llm.dtype)

    @classmethod
    def from_base(
        cls, llm_dir: str | Path, config: GroundingConfig, dtype: torch.dtype | None = None,
        attn_implementation: str | None = None,
    ) -> tuple[GroundingModel, Any]:  # fmt: skip
        """A base LLM + tokenizer with the media tokens added and fresh adapters (stage 1's start).

        Nothing is frozen yet: call `set_trainable(stage)`.
        """
        tokenizer = AutoTokenizer.from_pretrained(llm_dir)
        llm = _load_llm(Path(llm_dir), dtype, attn_implementation)
        ids = add_special_tokens(tokenizer, llm)
        return cls(llm, config, ids).to(llm.dtype), tokenizer


def _load_llm(path: Path, dtype: torch.dtype | None, attn_implementation: str | None) -> Any:
    kwargs: dict[str, Any] = {"dtype": dtype if dtype is not None else "auto"}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def _owner_rows(
    modality: str, features: torch.Tensor, owners: torch.Tensor, batch: int
) -> list[int]:
    """owners as a list; ValueError unless one batch row per feature item."""
    rows = owners.tolist()
    if owners.dim() != 1 or len(rows) != features.shape[0]:
        raise ValueError(
            f"{modality}: owners {list(owners.shape)} do not match {features.shape[0]} items"
        )
    if not all(0 <= r < batch for r in rows):
        raise ValueError(f"{modality}: owners {rows} must be rows of a batch of {batch}")
    return rows


def _check_patch_counts(
    masks: Mapping[str, torch.Tensor], owners: Mapping[str, list[int]], per_item: Mapping[str, int]
) -> None:
    """Every row holds per_item[m] PATCH tokens per item of modality m it owns (none without)."""
    modalities = list(masks)
    counts = torch.stack([masks[m].sum(dim=1) for m in modalities], dim=1).tolist()  # one sync
    for row, row_counts in enumerate(counts):
        for modality, have in zip(modalities, row_counts):
            items = owners.get(modality, []).count(row)
            want = per_item[modality] * items
            if have != want:
                owned = f"its {modality} item makes" if items == 1 else f"its {items} {modality} items make"
                why = f"{owned} {want}" if items else f"it has no {modality} item"
                raise ValueError(f"row {row}: {have} {modality} PATCH tokens, but {why}")


def _keep_rows(ids: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gradient hook that zeroes the gradient of every embedding row not in `ids`."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
        keep[ids] = 1
        return grad * keep

    return hook
