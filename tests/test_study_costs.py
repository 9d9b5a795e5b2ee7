"""Cell costs: the prior, the refit to finished cells' wall times, and the waiting cells' new order."""

import itertools
import time

import numpy as np
import pytest

from tornadostudy.study.cells import CellTable
from tornadostudy.study.costs import MIN_FINISHED, CostRefiner, cell_cost, fit_costs
from tornadostudy.study.storage import make_engine

AXES = ((5, 10, 15), (1, 2, 4), (128, 512, 2048), (1, 4), ("pre", "live"))
GRID = [
    dict(epochs=e, data_multiplier=k, batch_size=b, num_gpus=g, augmentation=a)
    for e, k, b, g, a in itertools.product(*AXES)
]


def true_seconds(p):
    """A machine unlike the prior: batch size barely matters, 4 GPUs are 3x faster, live costs 1.5x."""
    return (
        2.0
        * p["epochs"]
        * p["data_multiplier"]
        * (128 / p["batch_size"]) ** 0.1
        / (3.0 if p["num_gpus"] == 4 else 1.0)
        * (1.5 if p["augmentation"] == "live" else 1.0)
    )


def rank_corr(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_refit_orders_waiting_cells_by_the_time_they_really_take():
    rng = np.random.default_rng(0)
    order = rng.permutation(len(GRID))  # a quarter of the grid has finished, in no particular order
    finished, waiting = [GRID[i] for i in order[:27]], [GRID[i] for i in order[27:]]
    noisy = [(p, true_seconds(p) * float(np.exp(0.05 * rng.standard_normal()))) for p in finished]
    truth = [true_seconds(p) for p in waiting]
    prior = [cell_cost(p) for p in waiting]
    refit = fit_costs(noisy, waiting)
    assert rank_corr(refit, truth) > 0.95 > rank_corr(prior, truth) + 0.05
    assert fit_costs([(p, 3.0 * cell_cost(p)) for p in finished], waiting) == pytest.approx(
        [3.0 * c for c in prior], rel=1e-6
    ), "times that follow the prior leave the order alone"


def test_a_worker_refits_the_waiting_cells_in_the_database(tmp_path):
    cells = CellTable(make_engine(f"sqlite:///{tmp_path}/c.db"))
    cells.create_schema()
    cells.insert("s", [(i, p, p["num_gpus"], cell_cost(p)) for i, p in enumerate(GRID)])
    refiner = CostRefiner(cells, "s", every_s=0)
    assert not refiner.maybe_refit(), "nothing finished yet: the prior stays"
    now = time.time()
    with cells.engine.begin() as conn:
        for i, p in list(enumerate(GRID))[:: len(GRID) // (MIN_FINISHED * 3) + 1]:
            conn.execute(
                cells.table.update()
                .where(cells.table.c.cell == i)
                .values(state="complete", claimed_at=now, finished_at=now + true_seconds(p))
            )
    assert refiner.maybe_refit()
    rows = {r["cell"]: r for r in cells.rows("s")}
    waiting = [c for c, r in rows.items() if r["state"] == "waiting"]
    assert rank_corr([rows[c]["cost"] for c in waiting], [true_seconds(GRID[c]) for c in waiting]) > 0.9
    done = [c for c, r in rows.items() if r["state"] == "complete"]
    assert all(rows[c]["cost"] == pytest.approx(cell_cost(GRID[c])) for c in done), "only waiting cells change"
    assert not refiner.maybe_refit(), "no new evidence since the last fit"
    # Another worker refitting on the same finished cells finds every cost written already: it writes no row.
    written = []
    cells.set_costs = lambda study, costs: written.append(dict(costs))
    assert CostRefiner(cells, "s", every_s=0).refit()
    assert written == [{}]
    # The prior cannot tell live from pre (a tie, broken by cell id: pre); the refit knows live is slower.
    claim = cells.claim("s", 4, "w1")
    assert (claim.params["epochs"], claim.params["data_multiplier"], claim.params["augmentation"]) == (15, 4, "live")
