"""Answers of a checkpoint to evaluation questions: batched decoding (greedy by default) with a KV cache.

    >>> from ground.eval.infer import predict
    >>> predict(Path("results/train/stage3/model"), records, lookup,
    ...         Path("cache/eval/demo_tg-1a2b.partial.jsonl"), batch_size=16, max_new_tokens=32)
    {"demo_video-test-test_00000-temporal_grounding-0": "{0.25, 0.81}", ...}

The question is the first human turn of each record, put in the training template
(`ground.model.template.inference_prompt`, byte-identical to training; `prompt_format="release"`:
the release's inference prompt) after BOS. `temperature` > 0 samples (the release's demo: 0.2),
each batch seeded from `seed` and its record ids, so a rerun or a resumed run draws the same. Each batch's
media features go through the adapters once, before decoding: the LLM then generates from the
spliced embeddings with its KV cache, so nothing is re-encoded per generated token (the reference
code re-ran its video encoder for every token). Prompts are left-padded, batches are made of
prompts of similar length, and decoding stops at the training stop string `###`.

Resumable: every finished batch is appended (flushed and fsynced) to `partial` as
`{"id", "answer"}` lines; a rerun reads the answers already there (a torn last line is dropped)
and decodes only the rest.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import AutoTokenizer

from ground.model.grounding import GroundingModel
from ground.model.template import STOP, inference_prompt
from ground.train.data import FeatureLookup, record_media


def read_partial(path: Path) -> dict[str, str]:
    """Answers already decoded; a torn last line (a killed run) is ignored and cut off."""
    answers: dict[str, str] = {}
    if not path.is_file():
        return answers
    good = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
                answers[str(entry["id"])] = str(entry["answer"])
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                break  # only the last line can be torn: everything after it is unknown
            good += len(line)
    if good < path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return answers


def load_model(checkpoint: Path, device: str, precision: str) -> tuple[GroundingModel, Any]:
    """The checkpoint in eval mode on `device` and its tokenizer (left padding for batching)."""
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(precision)
    if dtype is None:  # auto
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = GroundingModel.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint / "llm")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def question(record: dict[str, Any]) -> str:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], dict):
        raise ValueError(f"record {record.get('id')}: no conversation to ask")
    return str(turns[0].get("value"))


def prompt_ids(
    record: dict[str, Any], tokenizer: Any, n_tokens: dict[str, int], fmt: str = "training"
) -> list[int]:
    text = inference_prompt(question(record), n_tokens, fmt)
    return [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]


def cut_answer(text: str) -> str:
    """The answer up to the stop string (a model may run on past it within one token)."""
    return text.split(STOP, 1)[0].strip()


@torch.no_grad()
def answer_batch(
    model: GroundingModel,
    tokenizer: Any,
    records: list[dict[str, Any]],
    lookup: FeatureLookup,
    max_new_tokens: int,
    decoding: dict[str, Any] | None = None,
) -> list[str]:
    """Answers to the records' questions (one left-padded batch); `decoding`: prompt_format,
    temperature (0: greedy), seed."""
    decoding = {"prompt_format": "training", "temperature": 0.0, "seed": 0} | (decoding or {})
    device = next(model.parameters()).device
    n_tokens = model.tokens_per_media()
    encoded = [prompt_ids(r, tokenizer, n_tokens, decoding["prompt_format"]) for r in records]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(records), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    media = {}
    paths = [record_media(r) for r in records]
    for modality in ("image", "video", "audio"):
        rows = [row for row, m in enumerate(paths) if modality in m]
        if rows:
            feats = torch.stack([lookup.load(modality, paths[row][modality]) for row in rows])
            media[modality] = (feats.to(device), torch.tensor(rows, device=device))
    sampling = _sampling(decoding, records)
    out = model.generate(
        input_ids.to(device),
        attention_mask.to(device),
        media,
        max_new_tokens=max_new_tokens,
        **sampling,
        pad_token_id=tokenizer.pad_token_id,
        stop_strings=[STOP],
        tokenizer=tokenizer,
    )
    return [cut_answer(t) for t in tokenizer.batch_decode(out, skip_special_tokens=True)]


def _sampling(decoding: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """generate() arguments: greedy, or sampling at the temperature with a per-batch seed."""
    temperature = float(decoding["temperature"])
    if temperature <= 0:
        return {"do_sample": False}
    ids = "\0".join(str(r["id"]) for r in records)
    torch.manual_seed(int(decoding["seed"]) * 1_000_003 + zlib.crc32(ids.encode()))
    return {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}


def predict(
    checkpoint: Path,
    records: list[dict[str, Any]],
    lookup: FeatureLookup,
    partial: Path,
    *,
    batch_size: int = 16,
    max_new_tokens: int = 32,
    device: str = "cpu",
    precision: str = "auto",
    decoding: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Answers by record id for every record, resuming from `partial` (see module docstring)."""
    ids = [str(r["id"]) for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("evaluation records have duplicate ids")
    partial.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(ids)
    answers = {k: v for k, v in read_partial(partial).items() if k in wanted}
    todo = [r for r in records if str(r["id"]) not in answers]
    if not todo:
        return {i: answers[i] for i in ids}
    model, tokenizer = load_model(Path(checkpoint), device, precision)
    # Similar prompt lengths in one batch keep left padding (wasted compute) small; the template
    # and media spans are the same for every question of a benchmark, so the question decides.
    todo.sort(key=lambda r: len(question(r)))
    with open(partial, "a", encoding="utf-8") as out, tqdm(
        total=len(records), initial=len(records) - len(todo), desc="answers", unit="q"
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = answer_batch(model, tokenizer, batch, lookup, max_new_tokens, decoding)
            for record, text in zip(batch, texts):
                answers[str(record["id"])] = text
                out.write(json.dumps({"id": record["id"], "answer": text}) + "\n")
            out.flush()
            os.fsync(out.fileno())
            bar.update(len(batch))
    return {i: answers[i] for i in ids}


def pick_device(device: str) -> str:
    """`auto` -> cuda when a GPU is visible, else cpu."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"
