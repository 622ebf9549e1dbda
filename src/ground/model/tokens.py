"""The nine media tokens GroundingGPT adds to the LLM's vocabulary.

    >>> ids = add_special_tokens(tokenizer, llm)   # {"<im_patch>": 32000, ..., "<so_end>": 32008}
    >>> start, patch, end = MEDIA_TOKENS["video"]  # ("<vi_start>", "<vi_patch>", "<vi_end>")

A prompt holds START + PATCH * n + END per media item; the model replaces the PATCH embeddings
by adapter outputs, and learns the START/END rows (from stage 1 on). The tokens are added in the
reference's order, so the 7B recipe gets the reference's ids 32000..32008.
"""

from __future__ import annotations

from typing import Any

import torch

SPECIAL_TOKENS = (
    "<im_patch>", "<im_start>", "<im_end>",
    "<vi_patch>", "<vi_start>", "<vi_end>",
    "<so_patch>", "<so_start>", "<so_end>",
)  # fmt: skip
MEDIA_TOKENS = {
    "image": ("<im_start>", "<im_patch>", "<im_end>"),
    "video": ("<vi_start>", "<vi_patch>", "<vi_end>"),
    "audio": ("<so_start>", "<so_patch>", "<so_end>"),
}
# Rows of the input embeddings that train in stage 1 (PATCH rows are always overwritten).
BOUNDARY_TOKENS = tuple(t for start, _, end in MEDIA_TOKENS.values() for t in (start, end))


def token_ids(tokenizer: Any) -> dict[str, int]:
    """Ids of the nine tokens in `tokenizer`; ValueError if any is missing."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"the tokenizer lacks the media tokens {missing}")
    return {t: int(vocab[t]) for t in SPECIAL_TOKENS}


def add_special_tokens(tokenizer: Any, llm: Any) -> dict[str, int]:
    """Add the nine tokens (in order, ids len(tokenizer)..+8) and their embedding rows.

    New rows of the input embeddings and of the output head are set to the mean of the rows
    before them (the reference's initialisation). A tokenizer that already has all nine tokens
    is left alone; one that has only some of them is an error (its ids would be out of order).
    """
    vocab = tokenizer.get_vocab()
    present = [t for t in SPECIAL_TOKENS if t in vocab]
    rows = llm.get_input_embeddings().weight.shape[0]
    if present:
        if len(present) != len(SPECIAL_TOKENS):
            raise ValueError(f"the tokenizer has only some media tokens: {present}")
        ids = token_ids(tokenizer)
        if max(ids.values()) >= rows:
            raise ValueError(f"media token ids {ids} exceed the LLM's {rows} embedding rows")
        return ids
    first = len(tokenizer)
    if first > rows:
        raise ValueError(f"the tokenizer has {first} tokens but the LLM only {rows} embedding rows")
    tokenizer.add_special_tokens(
        {"extra_special_tokens": list(SPECIAL_TOKENS)}, replace_extra_special_tokens=False
    )
    ids = token_ids(tokenizer)
    if list(ids.values()) != list(range(first, first + len(SPECIAL_TOKENS))):
        raise ValueError(f"media tokens got ids {ids}, expected {first}..{first + 8} in order")
    # An LLM whose table is padded past the tokenizer (rows > first) keeps its size: the new
    # ids then reuse padding rows, which are re-initialised like fresh ones.
    llm.resize_token_embeddings(max(len(tokenizer), rows), mean_resizing=False)
    new = list(ids.values())
    inputs = llm.get_input_embeddings().weight
    _init_mean(inputs, first, new)
    outputs = llm.get_output_embeddings()
    if outputs is not None and outputs.weight is not inputs:  # tied heads share the rows
        _init_mean(outputs.weight, first, new)
    return ids


@torch.no_grad()
def _init_mean(weight: torch.Tensor, first: int, rows: list[int]) -> None:
    """weight[rows] = mean of weight[:first]; averaged in fp32 so fp16/bf16 tables lose nothing."""
    weight[rows] = weight[:first].float().mean(dim=0).to(weight.dtype)
