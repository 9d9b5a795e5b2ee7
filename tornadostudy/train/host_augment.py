"""Live augmentation on the CPU, batch by batch, in host worker processes (``augmentation = "live_cpu"``).

This is the paper's set-up: Keras's ImageDataGenerator transformed each batch in CPU processes while the
model trained, so the accelerator waited for the host whenever augmenting a batch took longer than a
training step. Here a pool of processes each opens the prepared 1× training set (memory-mapped, so the
processes share the page cache instead of copies), augments the rows it is given with the same transforms as
``data prepare`` (tornadostudy/data/augment.py) and returns the batch; the trainer keeps a few batches in
flight, in order, so training and augmentation overlap as they did with ImageDataGenerator's queue.

The processes are spawned, never forked: the trainer's process runs TensorFlow's or JAX's threads, which a
fork would copy in an undefined state.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tornadostudy.train.batches import batch_rows

__all__ = ["HostAugmenter", "default_workers"]

log = logging.getLogger(__name__)

# In each augmenting process: the opened sets, by (folder, set multiplier).
_OPEN: dict[tuple[str, int], tuple[np.ndarray, object]] = {}


def default_workers() -> int:
    """One augmenting process per CPU this worker may use, less one for the training loop (at least one)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


def _augment_rows(folder: str, set_multiplier: int, rows: np.ndarray, seed: int) -> np.ndarray:
    """Runs in an augmenting process: the rows of the set, randomly transformed (seeded by ``seed``)."""
    from tornadostudy.data.augment import AugmentConfig, augment_numpy
    from tornadostudy.data.prepared import PreparedData

    key = (folder, set_multiplier)
    if key not in _OPEN:
        data = PreparedData.open(Path(folder))
        x, _ = data.train(set_multiplier)
        config = AugmentConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.manifest["augmentation"].items()}
        )
        _OPEN[key] = (x, (config, data.mean, data.scale))
    x, (config, mean, scale) = _OPEN[key]
    return augment_numpy(np.asarray(x[rows]), np.random.default_rng(seed), config, mean, scale)


class HostAugmenter:
    """A pool of augmenting processes for one prepared folder; one per trainer, reused by its trials."""

    def __init__(self, folder: Path, workers: int = 0) -> None:
        self.folder = str(Path(folder).resolve())
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            log.info("starting %d host augmentation process(es)", self.workers)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def batches(
        self, y: np.ndarray, set_multiplier: int, *, batch_size: int, passes: int, seed: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless augmented batches (x, y) of the set, in :func:`batch_rows` order, epoch after epoch."""
        pool = self._executor()
        ahead = 2 * self.workers  # batches in flight: enough to keep every process busy
        pending: collections.deque[tuple[Future, np.ndarray]] = collections.deque()
        order = batch_rows(len(y), batch_size, seed, passes)
        draw = np.random.default_rng([seed, 1])
        try:
            while True:
                while len(pending) < ahead:
                    rows = next(order)
                    seed_of_batch = int(draw.integers(2**63))
                    pending.append((pool.submit(_augment_rows, self.folder, set_multiplier, rows, seed_of_batch), rows))
                future, rows = pending.popleft()
                yield future.result(), y[rows]
        finally:
            for future, _ in pending:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
