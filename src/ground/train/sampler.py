"""In which order a stage sees its records, reproducibly and resumably.

    >>> sampler = ResumableSampler(len(records), batch_size=16, seed=7, world_size=8, rank=3,
    ...                            start_batch=120)                  # continue after 120 batches
    >>> DataLoader(dataset, batch_size=16, sampler=sampler, collate_fn=...)

Which records a stage has is the assemble_mixture step's business (`ground.mixture.run`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

# Length grouping sorts windows of this many global batches of the shuffled order.
GROUP_WINDOW = 50


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A permutation of range(n), the same for the same (seed, epoch) on every machine."""
    if n < 0 or seed < 0 or epoch < 0:
        raise ValueError(f"n, seed and epoch must be >= 0, got {n}, {seed}, {epoch}")
    return np.random.default_rng([seed, epoch]).permutation(n).tolist()


def grouped_order(order: list[int], lengths: list[int], window: int, seed: int, epoch: int) -> list[int]:
    """`order` with samples of similar length side by side: each window of `window` positions
    sorted by length (longest first, ties by position), then the window's whole batches of
    `window // GROUP_WINDOW` shuffled, so that a window does not always start long. The same
    for the same inputs on every machine."""
    batch = max(1, window // GROUP_WINDOW)
    rng = np.random.default_rng([seed, epoch, 1])
    grouped: list[int] = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda i: -lengths[i])
        whole = len(part) // batch * batch  # a last, partial batch stays last (batches stay aligned)
        chunks = [part[k : k + batch] for k in range(0, whole, batch)]
        grouped += [i for c in rng.permutation(len(chunks)).tolist() for i in chunks[c]] + part[whole:]
    return grouped


class ResumableSampler(Sampler[int]):
    """Indices of one rank's batches of one epoch, from batch `start_batch` on.

    Global batch k is positions [k * B * W, (k + 1) * B * W) of `epoch_order` (B the batch size,
    W the world size); rank r takes its r-th slice of B, the epoch's micro batch (chunk)
    k * W + r. The order is padded by wrapping around to whole optimizer steps (A = `accum`
    batches each), so every rank runs ceil(n / (B * W * A)) * A batches of exactly B (ranks must
    take the same number of steps); only those wrapped-around repeats are shared by ranks.
    Optimizer step s therefore sees positions [s * B * W * A, (s + 1) * B * W * A) in chunks of
    B, whatever W and A are, as long as their product (the global batch) is the same.
    A run killed after k batches and started again with start_batch=k continues where it was.
    With `lengths` (of every sample), the epoch's order is `grouped_order`'s, in windows of
    GROUP_WINDOW global batches.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        world_size: int = 1,
        rank: int = 0,
        start_batch: int = 0,
        epoch: int = 0,
        accum: int = 1,
        lengths: list[int] | None = None,
    ) -> None:
        if n < 1 or batch_size < 1 or world_size < 1 or accum < 1:
            raise ValueError(
                f"n, batch_size, world_size and accum must be >= 1: {n}, {batch_size}, "
                f"{world_size}, {accum}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.batches = math.ceil(n / (batch_size * world_size * accum)) * accum
        if not 0 <= start_batch <= self.batches:
            raise ValueError(f"start_batch {start_batch} is not in 0..{self.batches}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.world_size, self.rank, self.start_batch = world_size, rank, start_batch
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths for {n} samples")
        self.lengths, self.accum = lengths, accum

    def __len__(self) -> int:
        return (self.batches - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(self.n, self.seed, self.epoch)
        if self.lengths is not None:
            window = GROUP_WINDOW * self.batch_size * self.world_size * self.accum
            order = grouped_order(order, self.lengths, window, self.seed, self.epoch)
        step = self.batch_size * self.world_size
        for batch in range(self.start_batch, self.batches):
            first = batch * step + self.rank * self.batch_size
            yield from (order[i % self.n] for i in range(first, first + self.batch_size))

    def chunk(self, batch: int) -> int:
        """The epoch's micro-batch number of this rank's `batch`-th batch (see the class)."""
        return batch * self.world_size + self.rank


def chunk_seed(seed: int, chunk: int) -> int:
    """A torch seed for one micro batch of one epoch (seed + epoch), the same on every rank."""
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])
