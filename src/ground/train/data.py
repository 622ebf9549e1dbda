"""Training samples of one stage: conversation records -> token ids, labels and cached features.

    >>> records = load_records([Path("results/convert/refcoco.jsonl")], tasks={"rec"})
    >>> features = FeatureLookup({"image": Path("results/features/image.index.jsonl")},
    ...                          Path("cache/features"))
    >>> dataset = StageDataset(records, tokenizer, {"image": 576, "video": 64, "audio": 8},
    ...                        2048, features)
    >>> dataset.rejected                  # [{"id", "reason"}]: too long or malformed, reported
    >>> loader = DataLoader(dataset, batch_size=16, collate_fn=Collate(tokenizer.pad_token_id))
    ...                     # ground.train.packing: padded or packed rows

Every sample is tokenized once, at construction, piece by piece (see `ground.model.template`):
tokens never straddle a trained/untrained boundary, so labels line up exactly, and the first
piece tokenizes exactly as `inference_prompt` does at generation time. Media are never decoded
here: `__getitem__` only reads features cached by the feature step.

Samples are kept compact, one PATCH id per media span, and expanded in `__getitem__`: a 576-patch
image would otherwise cost 576 stored ids per sample, gigabytes per rank at the 7B recipe's
million records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ground.common.jsonl import read_jsonl
from ground.features.store import FeatureStore
from ground.model.template import MEDIA_TAGS, MEDIA_TOKENS, RECORD_FIELD, prompt_pieces

log = logging.getLogger(__name__)
IGNORE = -100
MAX_REJECTED = 0.05  # a larger share means broken data or a too small max_length: stop
# Prefix that makes a piece tokenize as it does in the middle of a text (see `_vocab`).
ANCHOR = "\n"
_ONE = dict.fromkeys(MEDIA_TAGS, 1)
_CHUNK = 1024  # records per fast-tokenizer batch call


class SampleTooLong(ValueError):
    """A sample whose media would be cut by `max_length`, or with no answer token left."""


@dataclass(frozen=True)
class _Vocab:
    """What encoding needs to know about a tokenizer, probed once."""

    bos: int
    patch: dict[int, str]  # PATCH id -> modality
    end: frozenset[int]  # END ids: the last token of each media span
    anchor: list[int] | None  # ids of ANCHOR if pieces after the first need it, else None


@dataclass(frozen=True)
class _Sample:
    id: str
    ids: np.ndarray  # int32, compact: one PATCH per media span
    trained: np.ndarray  # bool, same length
    media: dict[str, str]  # modality -> media path
    length: int  # expanded length


def load_records(paths: list[Path], tasks: set[str] | None = None) -> list[dict[str, Any]]:
    """Conversation records of JSONL files, in file order, keeping `tasks` only (None: all)."""
    records = []
    for path in paths:
        for number, record in read_jsonl(path):
            if not isinstance(record, dict) or not {"id", "task", "conversations"} <= set(record):
                raise ValueError(f"{path}:{number}: expected an object with id, task, conversations")
            if tasks is None or record["task"] in tasks:
                records.append(record)
    return records


class FeatureLookup:
    """Cached features by media path: the feature step's index + one FeatureStore per modality."""

    def __init__(self, index_files: Mapping[str, Path], store_root: Path) -> None:
        unknown = set(index_files) - set(MEDIA_TAGS)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; known: {sorted(MEDIA_TAGS)}")
        self.keys = {m: _read_index(Path(p)) for m, p in index_files.items()}
        self.stores = {m: FeatureStore(Path(store_root) / m) for m in index_files}

    def has(self, modality: str, media: str) -> bool:
        key = self.keys.get(modality, {}).get(str(Path(media)))
        return key is not None and key in self.stores[modality]

    def load(self, modality: str, media: str) -> torch.Tensor:
        # The index holds str(Path(...)) of each media path: normalise the same way.
        key = self.keys.get(modality, {}).get(str(Path(media)))
        if key is None or key not in self.stores[modality]:
            raise KeyError(f"no cached {modality} features for {media}")
        return self.stores[modality].load(key)


def _read_index(path: Path) -> dict[str, str]:
    keys = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
            keys[entry["media"]] = entry["key"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: expected {{'media', 'key'}} ({err!r})") from err
    return keys


def encode_sample(
    record: dict[str, Any], tokenizer: Any, n_tokens: Mapping[str, int], max_length: int
) -> dict[str, list[int]]:
    """`input_ids` (BOS first) and `labels` (IGNORE where not trained) of one record.

    Raises ValueError naming the record if it is malformed, SampleTooLong if truncation to
    `max_length` would cut a media span or leave no answer token.
    """
    _check_counts([record], n_tokens)
    vocab = _vocab(tokenizer)
    outcome = _encode_batch([record], tokenizer, vocab, n_tokens, max_length)[0]
    if isinstance(outcome, ValueError):
        raise outcome
    input_ids, labels = _expand(outcome, vocab.patch, n_tokens)
    return {"input_ids": input_ids.tolist(), "labels": labels.tolist()}


class StageDataset(Dataset):
    """Encoded samples of one stage; items are {"id", "input_ids", "labels", "media"}."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        tokenizer: Any,
        n_tokens: Mapping[str, int],
        max_length: int,
        features: FeatureLookup,
        *,
        max_rejected: float = MAX_REJECTED,
    ) -> None:
        if not records:
            raise ValueError("no records to train on")
        _check_counts(records, n_tokens)
        self._vocab = _vocab(tokenizer)
        self.n_tokens = dict(n_tokens)
        self.features = features
        self.samples: list[_Sample] = []
        self.rejected: list[dict[str, str]] = []
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            for record, outcome in zip(
                chunk, _encode_batch(chunk, tokenizer, self._vocab, n_tokens, max_length)
            ):
                reason = _reason(outcome, features)
                if reason is None:
                    self.samples.append(outcome)
                else:
                    self.rejected.append({"id": str(record.get("id", "?")), "reason": reason})
        _check_rejected(len(records), self.rejected, max_rejected)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lengths(self) -> list[int]:
        """Token count of each sample (media expanded), e.g. for tokens-per-second figures."""
        return [s.length for s in self.samples]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        input_ids, labels = _expand(sample, self._vocab.patch, self.n_tokens)
        media = {m: self.features.load(m, path) for m, path in sample.media.items()}
        return {"id": sample.id, "input_ids": input_ids, "labels": labels, "media": media}


def record_media(record: dict[str, Any]) -> dict[str, str]:
    """modality -> media path of a record; ValueError unless each one has exactly one tag."""
    record_id = record.get("id", "?")
    humans = [t["value"] for t in record["conversations"][::2]]
    media = {}
    for modality, field in RECORD_FIELD.items():
        path = record.get(field)
        if path is not None and (not isinstance(path, str) or not path):
            raise ValueError(f"record {record_id}: {field!r} must be a media path, got {path!r}")
        tags = sum(h.count(MEDIA_TAGS[modality]) for h in humans)
        if tags != (1 if path else 0):
            raise ValueError(
                f"record {record_id}: {tags} {MEDIA_TAGS[modality]} tags for "
                f"{'one' if path else 'no'} {field!r} field"
            )
        if path:
            media[modality] = path
    return media


def _vocab(tokenizer: Any) -> _Vocab:
    """Probe the tokenizer: BOS, the media token ids, and whether pieces need the anchor.

    SentencePiece-style tokenizers (LLaMA's) put a word-boundary marker before every text they
    encode; a piece encoded alone would then start with a space it does not have in the training
    text. Encoding ANCHOR + piece and dropping ANCHOR's ids gives the piece as it is mid-text.
    """
    if tokenizer.bos_token_id is None:
        raise ValueError("the tokenizer has no BOS token; samples start with one")
    ids = {}
    for triple in MEDIA_TOKENS.values():
        for token in triple:
            encoded = tokenizer(token, add_special_tokens=False)["input_ids"]
            if len(encoded) != 1 or encoded[0] == tokenizer.unk_token_id:
                raise ValueError(f"the tokenizer does not know {token} as one token: {encoded}")
            ids[token] = encoded[0]
    patch = {ids[t[1]]: m for m, t in MEDIA_TOKENS.items()}
    end = frozenset(ids[t[2]] for t in MEDIA_TOKENS.values())
    anchor = tokenizer(ANCHOR, add_special_tokens=False)["input_ids"]
    probe = "0 Human"
    alone = tokenizer(probe, add_special_tokens=False)["input_ids"]
    anchored = tokenizer(ANCHOR + probe, add_special_tokens=False)["input_ids"][len(anchor) :]
    return _Vocab(tokenizer.bos_token_id, patch, end, None if alone == anchored else list(anchor))


def _encode_batch(
    records: list[dict[str, Any]], tokenizer: Any, vocab: _Vocab, n_tokens: Mapping[str, int],
    max_length: int,
) -> list[_Sample | ValueError]:  # fmt: skip
    """A _Sample per record, or the error that rejects it; one tokenizer call for all pieces."""
    prepared: list[tuple[list[tuple[str, bool]], dict[str, str]] | ValueError] = []
    texts: list[str] = []
    for record in records:
        record_id = str(record.get("id", "?"))
        try:
            pieces = prompt_pieces(record.get("conversations"), n_tokens=_ONE, record_id=record_id)
            prepared.append((pieces, record_media(record)))
        except ValueError as err:
            prepared.append(err)
            continue
        # Pieces after the first are anchored so that they tokenize as they do mid-text.
        texts += [
            t if n == 0 or vocab.anchor is None else ANCHOR + t for n, (t, _) in enumerate(pieces)
        ]
    encoded = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
    outcomes: list[_Sample | ValueError] = []
    for record, item in zip(records, prepared):
        if isinstance(item, ValueError):
            outcomes.append(item)
            continue
        pieces, media = item
        piece_ids = [list(next(encoded)) for _ in pieces]  # taken even if assembling fails
        try:
            sample = _assemble(str(record["id"]), pieces, piece_ids, vocab, n_tokens, max_length)
            outcomes.append(replace(sample, media=media))
        except ValueError as err:
            outcomes.append(err)
    return outcomes


def _assemble(
    record_id: str, pieces: list[tuple[str, bool]], piece_ids: list[list[int]], vocab: _Vocab,
    n_tokens: Mapping[str, int], max_length: int,
) -> _Sample:  # fmt: skip
    """BOS + pieces, truncated to max_length (counted in expanded tokens) unless that cuts media;
    the caller fills in the media."""
    ids, trained = [vocab.bos], [False]
    for number, ((_, flag), encoded) in enumerate(zip(pieces, piece_ids)):
        if number and vocab.anchor is not None:
            if encoded[: len(vocab.anchor)] != vocab.anchor:
                raise ValueError(f"record {record_id}: piece {number} merges with {ANCHOR!r}")
            encoded = encoded[len(vocab.anchor) :]
        ids += encoded
        trained += [flag] * len(encoded)
    compact, mask = np.array(ids, dtype=np.int32), np.array(trained, dtype=bool)
    ends = np.cumsum(_repeats(compact, vocab.patch, n_tokens))  # expanded end of each compact id
    if ends[-1] > max_length:
        media_end = int(ends[np.isin(compact, list(vocab.end))].max(initial=0))
        if media_end > max_length:
            raise SampleTooLong(
                f"record {record_id}: a media span ends at token {media_end} > max_length {max_length}"
            )
        keep = int(np.searchsorted(ends, max_length, side="right"))
        compact, mask = compact[:keep], mask[:keep]
    if not mask.any():
        raise SampleTooLong(f"record {record_id}: no answer token within max_length {max_length}")
    return _Sample(record_id, compact, mask, {}, int(min(ends[-1], max_length)))


def _repeats(ids: np.ndarray, patch: dict[int, str], n_tokens: Mapping[str, int]) -> np.ndarray:
    """How many tokens each compact id stands for: n_tokens at PATCH ids, else 1."""
    repeats = np.ones(len(ids), dtype=np.int64)
    for patch_id, modality in patch.items():
        repeats[ids == patch_id] = n_tokens.get(modality, 1)
    return repeats


def _expand(
    sample: _Sample, patch: dict[int, str], n_tokens: Mapping[str, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length input_ids and labels of a compact sample."""
    repeats = torch.from_numpy(_repeats(sample.ids, patch, n_tokens))
    input_ids = torch.from_numpy(sample.ids).long().repeat_interleave(repeats)
    trained = torch.from_numpy(sample.trained).repeat_interleave(repeats)
    return input_ids, torch.where(trained, input_ids, IGNORE)


def _reason(outcome: _Sample | ValueError, features: FeatureLookup) -> str | None:
    """Why a sample is rejected, or None if it can be trained on."""
    if isinstance(outcome, SampleTooLong):
        return f"too long: {outcome}"
    if isinstance(outcome, ValueError):
        return f"malformed: {outcome}"
    for modality, path in outcome.media.items():
        if not features.has(modality, path):
            return (
                f"missing features: record {outcome.id}: no cached {modality} features for {path}"
            )
    return None


def _check_counts(records: list[dict[str, Any]], n_tokens: Mapping[str, int]) -> None:
    """A modality the records use without a token count is a configuration error, not bad data."""
    used = {m for r in records for m, field in RECORD_FIELD.items() if r.get(field)}
    missing = sorted(m for m in used if int(n_tokens.get(m, 0)) < 1)
    if missing:
        raise ValueError(f"the records use {missing} but n_tokens has no count for it: {n_tokens}")


def _check_rejected(total: int, rejected: list[dict[str, str]], max_share: float) -> None:
    if not rejected:
        return
    log.warning("%d of %d records rejected, first: %s", len(rejected), total, rejected[0]["reason"])
    if len(rejected) > max_share * total:
        reasons = "; ".join(r["reason"] for r in rejected[:3])
        raise ValueError(
            f"{len(rejected)} of {total} records rejected (more than {max_share:.0%}): {reasons}"
        )
