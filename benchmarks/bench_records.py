"""Trial records: a worker's database work per trial, tornadostudy vs Optuna's own storage API.

``bench_orchestration.py`` measures the machinery with 64 workers on one small machine, where the wait for
a CPU hides what each step costs. This one times the three database moments of every trial one at a time,
in one process per side, on the same grid point, attributes and results:

- **start**: the RUNNING trial with its grid parameters, the labels tornadostudy puts on it (worker, attempt,
  cell) and GridSampler's own system attributes (grid_id, search_space). Optuna:
  ``storage.create_new_trial(study_id, template_trial=…)``. tornadostudy: ``records.start_trial`` with the
  cell held, which also puts the trial's number on its cell.
- **record run**: the trial's MLflow run id, once the run is made (a worker's delivery thread does it while
  the trial trains). Optuna: ``set_trial_user_attr``. tornadostudy: ``records.record_run``, on the cell too.
- **complete**: the results (metrics, info) as user attributes, the objective value and COMPLETE. Optuna:
  ``set_trial_user_attr`` twice and ``set_trial_state_values``. tornadostudy: ``records.complete_trial``,
  which also completes the cell, only while the worker holds it.

tornadostudy's side writes more (the cell in every step; its claim, untimed here, comes before each start). Each side
runs in a fresh interpreter and opens its study as a worker does (``records.warm_up`` too, for
tornadostudy, before its first claim: the ORM's set-up on SQLite, nothing on PostgreSQL, as for a grid
worker), so the first trial pays SQLAlchemy's first-use compiles as a worker's first trial does. Reported
per step: the first trial and the median of the later ones, wall / CPU ms.

    python benchmarks/bench_records.py                       # PostgreSQL, 200 trials per side
    python benchmarks/bench_records.py --quick               # 10 trials per side
    python benchmarks/bench_records.py --database sqlite     # a SQLite file (the laptop default)
    python benchmarks/bench_records.py --delay-ms 1          # PostgreSQL a network away (a relay, ~2 ms RTT)

``--delay-ms D`` puts a TCP relay between both sides and PostgreSQL that holds every chunk D ms in each
direction, as a database on another node would: what each round trip costs then shows (the measured round trip
of a ``SELECT 1`` is printed). On one machine a round trip costs ~0.05 ms and hides it.

Needs PostgreSQL for the default (``TORNADOSTUDY_TEST_POSTGRES``, default
postgresql://postgres@127.0.0.1:5432/postgres). Prints ``ratio=`` (Optuna ÷ tornadostudy: the later trials'
wall time, the three steps together)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_orchestration import _admin_sql, _database, _round_trip_ms  # shared with it

# A grid point of the paper's kind, with the results a trial stores.
GRID = {"epochs": [5, 10, 15], "learning_rate": [0.0001, 0.001, 0.01], "data_multiplier": [1, 2, 4],
        "num_gpus": [1, 2, 4], "batch_size": [128, 256, 512, 1024, 2048, 4096]}  # fmt: skip
POINT = {"epochs": 5, "learning_rate": 0.001, "data_multiplier": 1, "num_gpus": 1, "batch_size": 128}
RESULTS = {
    "metrics": {"test_accuracy": 0.91, "test_auc": 0.95, "test_loss": 0.24, "wall_time_s": 20.3,
                "first_epoch_s": 6.1, "steady_epoch_s": 3.5},
    "info": {"epochs_run": 5, "per_replica_batch_size": 128, "backend": "jax"},
}  # fmt: skip
STUDY = "records"
STEPS = ("start", "record run", "complete")


def _timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, (1000 * (time.perf_counter() - wall), 1000 * (time.process_time() - cpu))


def _child(side: str, url: str, trials: int) -> dict:
    """One side's trials in this (fresh) process: the timings of each trial's three steps."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k: optuna.distributions.CategoricalDistribution(v) for k, v in GRID.items()}
    storage = optuna.storages.RDBStorage(url)
    study_id = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")._study_id
    steps: dict[str, list] = {step: [] for step in STEPS}
    if side == "optuna":
        for i in range(trials):
            labels = {"worker": "w1", "attempt": 1, "cell": i}
            template = optuna.trial.create_trial(
                state=optuna.trial.TrialState.RUNNING, params=POINT, distributions=distributions, user_attrs=labels,
                system_attrs={"grid_id": i, "search_space": GRID},
            )  # fmt: skip
            trial_id, took = _timed(lambda t=template: storage.create_new_trial(study_id, template_trial=t))
            steps["start"].append(took)
            run_id = f"run-{i}"
            steps["record run"].append(_timed(lambda t=trial_id, r=run_id: storage.set_trial_user_attr(
                t, "mlflow_run_id", r))[1])  # fmt: skip

            def complete(trial_id=trial_id):
                for key, value in RESULTS.items():
                    storage.set_trial_user_attr(trial_id, key, value)
                storage.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [0.91])

            steps["complete"].append(_timed(complete)[1])
        return steps

    from tornadostudy.study import records
    from tornadostudy.study.cells import CellTable
    from tornadostudy.study.storage import make_engine

    cells = CellTable(make_engine(url))  # the engine a worker's cell table has (its pool, its pings)
    cells.create_schema()
    records.warm_up(cells, grid=True)
    cells.insert(STUDY, [(i, POINT, None, 1.0) for i in range(trials)])
    for _ in range(trials):
        claim = cells.claim(STUDY, 0, "w1")
        labels = {"worker": "w1", "attempt": claim.attempt, "cell": claim.cell}
        started, took = _timed(lambda c=claim, a=labels: records.start_trial(
            cells, study_id, POINT, GRID, a, {"grid_id": c.cell, "search_space": GRID},
            hold=(STUDY, c.cell, "w1")))  # fmt: skip
        steps["start"].append(took)
        trial_id, number = started
        steps["record run"].append(_timed(lambda c=claim, t=trial_id, n=number: records.record_run(
            cells, STUDY, c.cell, t, n, f"run-{c.cell}"))[1])  # fmt: skip
        done, took = _timed(lambda c=claim, t=trial_id, n=number: records.complete_trial(
            cells, STUDY, c.cell, "w1", t, n, [0.91], RESULTS))  # fmt: skip
        if not done:  # the worker holds its cell: a refusal would be a bug, not a timing
            raise RuntimeError(f"trial {number} of cell {claim.cell} was not completed")
        steps["complete"].append(took)
    return steps


def _run_side(side: str, url: str, trials: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", side, url, str(trials)], capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{side} side failed: {(out.stderr.strip().splitlines() or ['(no output)'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pair(times) -> str:
    wall, cpu = times
    return f"{wall:.1f} / {cpu:.1f}"


def _median(times: list) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=200, help="trials per side (--quick: 10)")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="PostgreSQL through a relay holding each chunk this long each way")  # fmt: skip
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "URL", "TRIALS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, url, trials = args.child
        print(json.dumps(_child(side, url, int(trials))))
        return 0
    trials = 10 if args.quick else args.trials
    if args.delay_ms and args.database != "postgresql":
        raise SystemExit("--delay-ms is for PostgreSQL (a server a network away)")
    made: list[str] = []
    results = {}
    where = args.database
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for side in ("optuna", "tornadostudy"):  # one fresh database per side
                url = _database(made, args.delay_ms) if args.database == "postgresql" else f"sqlite:///{tmp}/{side}.db"
                if args.delay_ms:
                    rtt = _round_trip_ms(url)
                    where = f"postgresql through a relay ({args.delay_ms:g} ms each way; SELECT 1: {rtt:.2f} ms)"
                results[side] = _run_side(side, url, trials)
    finally:
        if made:
            _admin_sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in made))
    print(f"database: {where}; {trials} trials per side, each side in a fresh process; wall / CPU ms")
    header = ["side"] + [h for step in STEPS for h in (f"{step}: first", "later")] + ["trial later"]
    widths = [14] + [max(len(h) + 2, 15) for h in header[1:]]

    def line(cells) -> str:
        return "".join(f"{c:>{w}}" if i else f"{c:{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(line(header))
    later = {}
    for side, r in results.items():
        medians = [_median(r[step][1:]) for step in STEPS]
        later[side] = (sum(m[0] for m in medians), sum(m[1] for m in medians))
        print(line([side, *(p for step, m in zip(STEPS, medians, strict=True) for p in (_pair(r[step][0]), _pair(m))),
                    _pair(later[side])]))  # fmt: skip
    print("'later': the median of every trial but the first; tornadostudy also writes the cell in every step")
    print(f"ratio={later['optuna'][0] / max(later['tornadostudy'][0], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
