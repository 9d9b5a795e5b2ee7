"""A wall-time model of the paper's runs, fitted to its Tables 2-7 and 9: the ``simulate`` trainer's
``profile = "paper"`` and ``tornadostudy plan``.

For each (GPUs, augmentation) the paper measured, the wall time of a trial is modelled as

    t = c_trial + c_step · steps + c_sample · samples

with ``steps = epochs · ceil(k·n / batch)`` optimizer steps and ``samples = epochs · k · n`` samples seen
(``n``: the 1x training set, the paper's 138,963). ``c_trial`` is start-up and testing, ``c_step`` the cost
of a step whatever its size (launches, synchronisation between GPUs, the Python loop), ``c_sample`` the
cost of a sample (the arithmetic, and on the CPU node the augmentation). The three are fitted by
non-negative least squares on the relative error (each row divided by its measured time), one fit per
group, from every wall time the paper printed for that group (Tables 3 and 5 count as 1 GPU, see
:mod:`tornadostudy.paper`). Groups the paper did not run are derived, and the docs say so:

* ``live_cpu`` on 2-4 GPUs: the group's ``pre`` time times the 1-GPU live/pre ratio of the same cell;
* on-device ``live``: as ``pre`` on GPUs (the warp runs in the compiled step), as ``live_cpu`` on the CPU
  node (there the device *is* the CPU);
* more than 4 GPUs: the 4-GPU fit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tornadostudy.paper import PAPER_TRAIN_SAMPLES, paper_rows

__all__ = ["fitted_groups", "paper_seconds"]


def _features(epochs: int, batch_size: int, multiplier: int, n_train: int) -> list[float]:
    steps = epochs * math.ceil(multiplier * n_train / batch_size)
    return [1.0, float(steps), float(epochs * multiplier * n_train)]


@functools.cache
def fitted_groups() -> dict[tuple[int, str], tuple[float, float, float]]:
    """(num_gpus, augmentation) → (c_trial, c_step, c_sample), fitted to the paper's wall times."""
    from scipy.optimize import nnls

    groups: dict[tuple[int, str], list] = {}
    for r in paper_rows():
        if r.metric == "wall_time_s":
            groups.setdefault((r.num_gpus, r.augmentation), []).append(r)
    out = {}
    for key, rows in sorted(groups.items()):
        x = np.array([_features(r.epochs, r.batch_size, r.data_multiplier, PAPER_TRAIN_SAMPLES) for r in rows])
        y = np.array([r.value for r in rows])
        coef, _ = nnls(x / y[:, None], np.ones(len(y)))
        out[key] = tuple(float(c) for c in coef)
    return out


def _group_seconds(gpus: int, augmentation: str, features: list[float]) -> float:
    return float(np.dot(fitted_groups()[(gpus, augmentation)], features))


def paper_seconds(
    *,
    epochs: int,
    batch_size: int,
    data_multiplier: int,
    num_gpus: int,
    augmentation: str,
    n_train: int = PAPER_TRAIN_SAMPLES,
) -> float:
    """Modelled wall time (s) of one trial on the paper's hardware, for a 1x training set of ``n_train``."""
    gpus = min(num_gpus, 4)
    features = _features(epochs, batch_size, data_multiplier, n_train)
    if augmentation == "live":
        augmentation = "live_cpu" if gpus == 0 else "pre"
    if (gpus, augmentation) in fitted_groups():
        return _group_seconds(gpus, augmentation, features)
    # live_cpu on 2-4 GPUs: pre there, times the 1-GPU cost of moving augmentation to the host.
    ratio = _group_seconds(1, "live_cpu", features) / _group_seconds(1, "pre", features)
    return _group_seconds(gpus, "pre", features) * ratio
