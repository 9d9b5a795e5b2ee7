"""How expensive a grid cell is, for claiming the expensive ones first (a shorter makespan).

Before any trial has run, the cost is the paper's rule of thumb (:func:`cell_cost`). As cells finish,
workers refit it to the wall times actually seen: ``log(time) = log(prior) + X·w``, with X the log of
epochs, data multiplier, batch size and GPUs (+1) and the augmentation mode (live, live_cpu), and ``w`` a ridge fit that
starts at 0 (the prior) and moves only as far as the evidence pushes. Waiting cells get the new costs.
"""

from __future__ import annotations

import logging
import math
import random
import time

import numpy as np

from tornadostudy.study.storage import retrying

__all__ = ["CostRefiner", "cell_cost", "fit_costs"]

log = logging.getLogger(__name__)

MIN_FINISHED = 6  # fewer finished cells than this say too little to move the prior
COST_TOLERANCE = 0.01  # a refit moving a cost by less than this leaves the row alone
RIDGE = 1.0  # pull towards the prior; a few dozen finished cells outweigh it


def cell_cost(params: dict) -> float:
    """Relative cost of a cell before anything ran: samples seen, cheaper per sample at larger
    batches (the paper's wall times fall roughly as batch^-0.4)."""
    return params["epochs"] * params["data_multiplier"] * math.pow(128 / params["batch_size"], 0.4)


def _features(params: dict) -> list[float]:
    return [
        1.0,
        math.log(params["epochs"]),
        math.log(params["data_multiplier"]),
        math.log(params["batch_size"]),
        math.log(1 + params.get("num_gpus", 0)),
        1.0 if params.get("augmentation") == "live" else 0.0,
        1.0 if params.get("augmentation") == "live_cpu" else 0.0,
    ]


def fit_costs(finished: list[tuple[dict, float]], waiting: list[dict]) -> list[float]:
    """New costs for ``waiting`` cells from ``finished`` (params, seconds) pairs."""
    x = np.array([_features(p) for p, _ in finished])
    y = np.array([math.log(max(s, 1e-3)) - math.log(cell_cost(p)) for p, s in finished])
    # Ridge on the slopes only: the intercept (a time unit) is free.
    penalty = RIDGE * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    w = np.linalg.solve(x.T @ x + penalty, x.T @ y)
    return [cell_cost(p) * math.exp(float(np.dot(_features(p), w))) for p in waiting]


class CostRefiner:
    """A worker's periodic refit: at most every ``every_s``, and only when the number of finished
    cells grew by a quarter since this worker's last fit (so the work per study is logarithmic)."""

    def __init__(self, cells, study: str, every_s: float = 120.0) -> None:
        self.cells, self.study, self.every_s = cells, study, every_s
        # Array tasks start together: a random phase keeps their refits (reads of every cell) apart.
        self._next = time.monotonic() + every_s * random.uniform(0.5, 1.5)
        self._fitted_on = 0

    def maybe_refit(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every_s * random.uniform(0.5, 1.5)
        done = retrying(lambda: self.cells.counts(self.study)["complete"], what="count finished cells")
        if done < MIN_FINISHED or done < 1.25 * self._fitted_on:
            return False
        return self.refit()

    def refit(self) -> bool:
        finished, waiting = self.cells.durations(self.study), self.cells.waiting_params(self.study)
        usable = [(p, s) for p, s in finished if p is not None and s > 0]
        waiting = [(c, p, old) for c, p, old in waiting if p is not None]
        if len(usable) < MIN_FINISHED or not waiting:
            return False
        try:
            costs = fit_costs(usable, [p for _, p, _ in waiting])
        except (KeyError, ValueError, np.linalg.LinAlgError) as exc:  # odd params: keep the prior
            log.warning("could not refit cell costs: %s", exc)
            return False
        # Only costs that moved are written: workers refitting on the same finished cells find them written
        # already, and take no row locks (an update locks its rows until it commits, and claims skip them).
        changed = {
            c: cost
            for (c, _, old), cost in zip(waiting, costs, strict=True)
            if not math.isclose(cost, old, rel_tol=COST_TOLERANCE)
        }
        self.cells.set_costs(self.study, changed)
        self._fitted_on = len(usable)
        log.info(
            "refitted the costs of %d waiting cells on %d finished ones (%d moved)",
            len(waiting),
            len(usable),
            len(changed),
        )
        return True
