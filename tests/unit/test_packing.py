"""Packed batches (ground.train.packing) on the tiny GroundingModel of test_model: the same loss
per sample as padded rows, no attention across samples, several media items in one row.

.venv/bin/pytest tests/unit/test_packing.py -q
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_model import SHAPES, span
from test_model import model as model  # noqa: F401 (a fixture)

from ground.model.grounding import GroundingModel
from ground.train.data import IGNORE
from ground.train.packing import Collate, pack_rows
from ground.train.sampler import ResumableSampler, grouped_order

TOLERANCE = 1e-5  # float32: packed and padded rows differ only in summation order


def test_pack_rows_fits_each_row_and_keeps_every_sample_once() -> None:
    lengths = [7, 3, 5, 2, 8, 1, 4]
    rows = pack_rows(lengths, 10)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows)
    assert all(row == sorted(row) for row in rows)
    assert len(rows) == 3 and rows == pack_rows(lengths, 10)  # 30 tokens, first fit: 3 rows
    with pytest.raises(ValueError, match="does not fit a row of 6"):
        pack_rows(lengths, 6)


def samples(model: GroundingModel) -> list[dict]:
    """Five samples: image, audio + video, text, two more images (labels on their answers)."""
    torch.manual_seed(3)
    token_rows = [
        [1, 5, *span(model, "image"), 6, 7, 12],
        [1, *span(model, "audio"), *span(model, "video"), 8, 13, 14],
        [1, 9, 10, 11, 15],
        [1, *span(model, "image"), 16, 17],
        [1, 18, *span(model, "image"), 19, 20, 21],
    ]
    media = [{"image"}, {"audio", "video"}, set(), {"image"}, {"image"}]
    items = []
    for i, (ids, kinds) in enumerate(zip(token_rows, media)):
        labels = [IGNORE] * (len(ids) - 3) + ids[-3:]
        features = {m: torch.randn(SHAPES[m]) for m in kinds}
        items.append({"id": f"s{i}", "input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                      "media": features})  # fmt: skip
    return items


def per_sample_losses(model: GroundingModel, batch: dict, items: list[dict]) -> dict[str, torch.Tensor]:
    """Each sample's summed token loss, located by walking the rows in the collated order."""
    kwargs = {k: v for k, v in batch.items() if k not in ("ids",) and v is not None}
    logits = model(**kwargs).logits
    found, order = {}, iter(batch["ids"])
    lengths = {item["id"]: len(item["input_ids"]) for item in items}
    for row in range(batch["input_ids"].shape[0]):
        start = 0
        positions = batch.get("position_ids")
        while start < batch["input_ids"].shape[1] and (batch["labels"][row, start:] != IGNORE).any():
            if positions is None and start > 0:
                break
            sample = next(order)
            n = lengths[sample]
            target = batch["labels"][row, start + 1 : start + n]
            found[sample] = F.cross_entropy(logits[row, start : start + n - 1], target,
                                            ignore_index=IGNORE, reduction="sum")  # fmt: skip
            start += n
    return found


def test_packed_rows_give_the_padded_rows_loss_per_sample(model: GroundingModel) -> None:
    items = samples(model)
    padded = Collate(0)(items)
    packed = Collate(0, packing=True, max_length=40)(items)
    assert packed["input_ids"].shape[0] < padded["input_ids"].shape[0]
    assert packed["attention_mask"] is None and padded["attention_mask"] is not None
    assert sorted(packed["media"]["image"][1].tolist()) != sorted(set(packed["media"]["image"][1].tolist()))
    with torch.no_grad():
        a, b = per_sample_losses(model, padded, items), per_sample_losses(model, packed, items)
        mean = {name: model(**{k: v for k, v in batch.items() if k != "ids" and v is not None}).loss
                for name, batch in (("padded", padded), ("packed", packed))}  # fmt: skip
    assert set(a) == set(b) == {item["id"] for item in items}
    for sample in a:
        assert torch.allclose(a[sample], b[sample], atol=TOLERANCE, rtol=TOLERANCE), sample
    assert torch.allclose(mean["padded"], mean["packed"], atol=TOLERANCE, rtol=TOLERANCE)


def test_no_attention_crosses_a_sample_boundary(model: GroundingModel) -> None:
    items = samples(model)
    collate = Collate(0, packing=True, max_length=40)
    batch = collate(items)
    changed = [dict(item) for item in items]
    first_row = [i for i in batch["ids"]][0]
    victim = next(i for i, item in enumerate(changed) if item["id"] == first_row)
    changed[victim] = changed[victim] | {"input_ids": changed[victim]["input_ids"].clone()}
    changed[victim]["input_ids"][-1] = 30  # another last token of one sample
    if changed[victim]["media"]:
        changed[victim]["media"] = {m: f + 1.0 for m, f in changed[victim]["media"].items()}
    other = collate(changed)
    assert torch.equal(batch["position_ids"], other["position_ids"])
    with torch.no_grad():
        logits = {name: model(**{k: v for k, v in b.items() if k != "ids" and v is not None}).logits
                  for name, b in (("before", batch), ("after", other))}  # fmt: skip
    differs = (logits["before"] - logits["after"]).abs().amax(dim=-1) > 0  # [rows, positions]
    positions = batch["position_ids"]
    starts = (positions == 0).nonzero().tolist()
    spans = {}
    for (row, start), sample in zip(starts, batch["ids"]):
        n = len(next(item for item in items if item["id"] == sample)["input_ids"])
        spans[sample] = (row, start, n)
    row, start, n = spans[first_row]
    assert differs[row, start : start + n].any()  # the changed sample itself moved
    outside = differs.clone()
    outside[row, start : start + n] = False
    assert not outside.any(), "a change in one sample moved another sample's logits"


def test_length_grouping_is_deterministic_and_resumes_in_the_same_order() -> None:
    lengths = [(i * 37) % 101 for i in range(300)]
    full = list(ResumableSampler(300, 4, seed=5, accum=2, lengths=lengths))
    assert full == list(ResumableSampler(300, 4, seed=5, accum=2, lengths=lengths))
    resumed = list(ResumableSampler(300, 4, seed=5, accum=2, lengths=lengths, start_batch=10))
    assert resumed == full[40:]
    assert sorted(set(full)) == list(range(300))
    batches = [full[k : k + 8] for k in range(0, 296, 8)]  # global batches of 8 in a window
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    plain = list(ResumableSampler(300, 4, seed=5, accum=2))
    plain_spread = sum(max(lengths[i] for i in plain[k : k + 8]) - min(lengths[i] for i in plain[k : k + 8])
                       for k in range(0, 296, 8)) / 37  # fmt: skip
    assert spread < plain_spread / 4
    assert grouped_order([2, 0, 1], [1, 5, 3], 3, 0, 0) in ([0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1],
                                                             [1, 0, 2], [2, 1, 0])  # fmt: skip


def test_worker_processes_give_the_same_batches(model: GroundingModel) -> None:
    from torch.utils.data import DataLoader

    from ground.train.loop import loader_options

    items = samples(model) * 4
    collate = Collate(0, packing=True, max_length=40)

    def batches(workers: int) -> list[dict]:
        sampler = ResumableSampler(len(items), 4, seed=1, start_batch=1)
        options = loader_options(workers, torch.device("cpu"))
        return list(DataLoader(items, batch_size=4, sampler=sampler, collate_fn=collate, **options))

    inline, ahead = batches(0), batches(2)
    assert len(inline) == len(ahead) == 4
    for a, b in zip(inline, ahead):
        assert a["ids"] == b["ids"] and torch.equal(a["input_ids"], b["input_ids"])
        assert torch.equal(a["position_ids"], b["position_ids"]) and a["tokens"] == b["tokens"]
