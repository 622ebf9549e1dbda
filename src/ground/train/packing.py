"""Packed batches: several samples share one row, and attention never crosses a sample's edge.

    >>> loader = DataLoader(dataset, batch_size=16, sampler=sampler,
    ...                     collate_fn=Collate(tokenizer.pad_token_id, packing=True, max_length=512))
    >>> batch = next(iter(loader))      # input_ids [R, L] with R <= 16 rows, position_ids [R, L]
    >>> batch["tokens"]                 # the samples' own tokens (R x L less the padding)

A micro batch keeps its samples (the sampler's, as unpacked), laid first-fit by decreasing length
into rows of at most `max_length` tokens, each sample with its own position ids from 0. The batch
has no attention mask: from position ids that restart, `transformers` builds the block-diagonal
causal mask itself (exact, on CPU's sdpa and eager kernels) and FlashAttention-2 runs its varlen
kernel, so a sample attends only to itself. Padding at a row's end is one more block, labelled
-100. A sample's first label is -100 (its BOS), so the loss at a boundary, the previous sample's
last token predicting this one's BOS, is never counted: the loss is the same, per token, as
unpacked. A row holds several items of a modality; they follow each other, in row order, as the
model splices them (`ground.model.grounding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ground.model.template import MEDIA_TAGS
from ground.train.data import IGNORE


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` per row: first fit, longest first (ties in order), each row's total
    at most `capacity`; a row's samples keep their batch order."""
    if any(n > capacity for n in lengths):
        raise ValueError(f"a sample of {max(lengths)} tokens does not fit a row of {capacity}")
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([])
            room.append(capacity)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return [sorted(row) for row in rows]


def collate(batch: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-padded rows, one sample each; media[m] = (features of the samples that have m,
    stacked; their rows)."""
    return Collate(pad_id)(batch)


@dataclass(frozen=True)
class Collate:
    """A DataLoader's `collate_fn` (picklable, for worker processes): right-padded rows, one
    sample each, or with `packing` the packed rows of the module docstring."""

    pad_id: int
    packing: bool = False
    max_length: int = 2048

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        if self.pad_id is None:
            raise ValueError("the tokenizer has no pad token id")
        if self.packing:
            rows = pack_rows([len(item["input_ids"]) for item in batch], self.max_length)
        else:
            rows = [[i] for i in range(len(batch))]
        return _rows(batch, rows, self.pad_id, packed=self.packing)


def _rows(batch: list[dict[str, Any]], rows: list[list[int]], pad_id: int, packed: bool) -> dict[str, Any]:
    lengths = [sum(len(batch[i]["input_ids"]) for i in row) for row in rows]
    longest = max(lengths)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), longest), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n = len(batch[i]["input_ids"])
            input_ids[r, start : start + n] = torch.as_tensor(batch[i]["input_ids"])
            labels[r, start : start + n] = torch.as_tensor(batch[i]["labels"])
            positions[r, start : start + n] = torch.arange(n)
            start += n
        positions[r, start:] = torch.arange(longest - start)  # the padding: a block of its own
    media = {}
    for modality in MEDIA_TAGS:
        owned = [(r, i) for r, row in enumerate(rows) for i in row if modality in batch[i]["media"]]
        if not owned:
            continue
        shapes = {tuple(batch[i]["media"][modality].shape) for _, i in owned}
        if len(shapes) > 1:
            ids = [batch[i]["id"] for _, i in owned]
            raise ValueError(f"{modality} features of {ids} differ in shape: {sorted(shapes)}")
        features = torch.stack([batch[i]["media"][modality] for _, i in owned])
        media[modality] = (features, torch.tensor([r for r, _ in owned], dtype=torch.long))
    out = {"input_ids": input_ids, "labels": labels, "media": media, "tokens": sum(lengths),
           "ids": [batch[i]["id"] for row in rows for i in row]}  # fmt: skip
    if packed:
        return out | {"position_ids": positions, "attention_mask": None}
    mask = (torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]).long()
    return out | {"attention_mask": mask}
