"""The order a trial reads its training rows in: every epoch is whole passes over the set.

An epoch of a set of ``n`` rows read ``passes`` times (1 for a pre-augmented set, k for live augmentation)
is ``passes`` fresh permutations of the rows, one after another, cut into batches of ``batch_size``; the
epoch's last batch holds what is left and may be smaller. So an epoch sees exactly ``passes × n`` samples,
each row ``passes`` times, never more.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = ["batch_rows", "steps_per_epoch"]


def steps_per_epoch(rows: int, passes: int, batch_size: int) -> int:
    return math.ceil(rows * passes / batch_size)


def batch_rows(n: int, batch_size: int, seed: int, passes: int = 1) -> Iterator[np.ndarray]:
    """Endless batches of row numbers, epoch after epoch. A batch's rows are in ascending order: kinder to a
    memory-mapped array, and the same batch."""
    rng = np.random.default_rng(seed)
    while True:
        order = np.concatenate([rng.permutation(n) for _ in range(passes)])
        for start in range(0, len(order), batch_size):
            yield np.sort(order[start : start + batch_size])
