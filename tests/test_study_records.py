"""A trial's Optuna record follows its cell (records.py): the cell is the commit point, Optuna's public API
writes the trial, and what is stored is what Optuna itself stores for the same trial.

SQLite here; the same checks on PostgreSQL, with concurrent creators, are in tests/integration.
"""

import math

import optuna
import pytest

from tornadostudy.study import records
from tornadostudy.study.cells import CellTable

GRID = {"lr": [0.001, 0.01], "epochs": [5, 10]}
DISTS = {k: optuna.distributions.CategoricalDistribution(v) for k, v in GRID.items()}
PARAMS = {"lr": 0.01, "epochs": 5}


class Book:
    """A study, its Optuna storage and its cell table on one database (one engine, as a worker has)."""

    def __init__(self, url: str) -> None:
        self.storage = optuna.storages.RDBStorage(url)
        optuna.create_study(study_name="s", storage=self.storage, directions=["maximize", "minimize"])
        self.study_id = self.storage.get_study_id_from_name("s")
        self.cells = CellTable(self.storage.engine)
        self.cells.create_schema()
        self.cells.insert("s", [(i, PARAMS, None, 1.0) for i in range(40)])

    def start(self, worker: str = "w1"):
        claim = self.cells.claim("s", 0, worker)
        attrs = {"worker": worker, "attempt": claim.attempt, "cell": claim.cell}
        trial_id, number = records.start_trial(
            self.storage,
            self.cells,
            self.study_id,
            PARAMS,
            GRID,
            attrs,
            {"grid_id": claim.cell, "search_space": GRID},
            hold=("s", claim.cell, worker),
        )
        return claim.cell, trial_id, number

    def complete(self, cell, worker, trial_id, number, values=(1.0, 2.0), results=None):
        return records.complete_trial(
            self.storage, self.cells, "s", cell, worker, trial_id, number, list(values), results or {"metrics": {}}
        )

    def cell(self, cell: int) -> dict:
        return self.cells.rows("s", {cell})[0]


@pytest.fixture
def book(tmp_path):
    return Book(f"sqlite:///{tmp_path}/study.db")


def check_record_matches_optuna(book: Book) -> None:
    cell, trial_id, number = book.start()
    template = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        params=PARAMS,
        distributions=DISTS,
        user_attrs={"worker": "w1", "attempt": 1, "cell": cell},
        system_attrs={"grid_id": cell, "search_space": GRID},
    )
    reference_id = book.storage.create_new_trial(book.study_id, template_trial=template)
    ours, reference = book.storage.get_trial(trial_id), book.storage.get_trial(reference_id)
    for field in ("state", "params", "distributions", "user_attrs", "system_attrs", "values"):
        assert getattr(ours, field) == getattr(reference, field), field
    assert (number, reference.number) == (0, 1), "numbered as Optuna numbers trials"
    assert book.storage.get_trial_id_from_study_id_trial_number(book.study_id, number) == trial_id

    assert (book.cell(cell)["trial_number"], book.cell(cell)["run_id"]) == (number, None)
    for _ in range(2):  # the second: a delivery retried after its commit's answer was lost
        records.record_run(book.storage, book.cells, "s", cell, trial_id, number, "run-1")
    assert book.storage.get_trial(trial_id).user_attrs["mlflow_run_id"] == "run-1"
    assert (book.cell(cell)["trial_number"], book.cell(cell)["run_id"]) == (number, "run-1")

    results = {"metrics": {"test_accuracy": 0.9}, "info": {"epochs_run": 5}}
    assert book.complete(cell, "w1", trial_id, number, [0.9, math.inf], results)
    book.storage.set_trial_state_values(reference_id, optuna.trial.TrialState.COMPLETE, [0.9, math.inf])
    ours, reference = book.storage.get_trial(trial_id), book.storage.get_trial(reference_id)
    assert ours.state == reference.state == optuna.trial.TrialState.COMPLETE
    assert ours.values == reference.values == [0.9, math.inf]
    assert ours.user_attrs["metrics"] == {"test_accuracy": 0.9} and ours.user_attrs["info"] == {"epochs_run": 5}
    assert ours.datetime_start <= ours.datetime_complete
    assert book.cell(cell)["state"] == "complete"
    assert optuna.load_study(study_name="s", storage=book.storage).best_trials[0].number in (0, 1)


def test_the_record_is_what_optuna_itself_stores(book, eastern_time):
    check_record_matches_optuna(book)


def check_only_the_holder_writes(book: Book) -> None:
    cell, trial_id, number = book.start("w1")
    assert (
        records.start_trial(book.storage, book.cells, book.study_id, PARAMS, GRID, {}, {}, hold=("s", cell, "w2"))
        is None
    )
    (refused,) = [t for t in book.storage.get_all_trials(book.study_id) if t.number != number]
    assert refused.state == optuna.trial.TrialState.FAIL, "a trial whose cell is not its worker's is failed"
    assert book.cell(cell)["trial_number"] == number

    assert not book.complete(cell, "w2", trial_id, number)
    trial = book.storage.get_trial(trial_id)
    assert trial.state == optuna.trial.TrialState.RUNNING and "metrics" not in trial.user_attrs
    assert book.cell(cell)["state"] == "running"

    assert book.complete(cell, "w1", trial_id, number)
    assert book.complete(cell, "w1", trial_id, number), "a retry of a completion that committed finds it done"
    assert book.cells.counts("s")["complete"] == 1


def test_only_the_holder_of_the_cell_starts_and_completes(book):
    check_only_the_holder_writes(book)


def check_a_reapers_hand_on_wins_over_a_late_completion(book: Book) -> None:
    cell, trial_id, number = book.start("w1")
    assert [r["cell"] for r in book.cells.reap_stale("s", 0, 3)] == [cell]  # what a reaper does: hand it on
    assert records.fail_trial(book.storage, trial_id, {"fail_reason": "worker lost"})
    trial = book.storage.get_trial(trial_id)
    assert (trial.state, trial.user_attrs["fail_reason"]) == (optuna.trial.TrialState.FAIL, "worker lost")
    assert not records.record_trial(book.storage, book.cells, "s", cell, "w1", trial_id, number)
    assert not book.complete(cell, "w1", trial_id, number)
    assert book.cell(cell)["state"] == "waiting", "the late completion changed nothing"


def test_a_cell_handed_on_is_not_completed_by_its_old_worker(book):
    check_a_reapers_hand_on_wins_over_a_late_completion(book)


def check_a_completion_wins_over_a_late_reaper(book: Book) -> None:
    cell, trial_id, number = book.start("w1")
    assert book.complete(cell, "w1", trial_id, number)
    assert not records.fail_trial(book.storage, trial_id, {"fail_reason": "worker lost before its trial was recorded"})
    trial = book.storage.get_trial(trial_id)
    assert trial.state == optuna.trial.TrialState.COMPLETE and "fail_reason" not in trial.user_attrs


def test_a_reaper_leaves_a_trial_its_worker_completed_as_it_is(book):
    check_a_completion_wins_over_a_late_reaper(book)


def check_a_trial_follows_its_completed_cell(book: Book) -> None:
    """The worker died between completing its cell and its trial: the trial follows from the cell."""
    cell, trial_id, number = book.start("w1")
    assert book.cells.complete("s", cell, "w1", number, {"values": [0.5, 7.0], "metrics": {"test_auc": 0.5}})
    assert book.storage.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING
    stored = book.cells.results("s", cell)
    records.follow_cell(book.storage, trial_id, number, stored)
    records.follow_cell(book.storage, trial_id, number, stored)  # idempotent
    trial = book.storage.get_trial(trial_id)
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.values == [0.5, 7.0]
    assert trial.user_attrs["metrics"] == {"test_auc": 0.5}


def test_a_trial_follows_its_completed_cell(book):
    check_a_trial_follows_its_completed_cell(book)


def check_a_late_run_stays_off_a_cell_that_moved_on(book: Book) -> None:
    cell, first_id, first = book.start("w1")
    assert book.cells.fail("s", cell, "w1", "boom", True, 3) == "waiting"
    records.fail_trial(book.storage, first_id, {"fail_reason": "boom"})
    assert book.start("w2")[0] == cell  # the retry holds the cell now
    records.record_run(book.storage, book.cells, "s", cell, first_id, first, "run-of-the-first")
    assert book.cell(cell)["run_id"] is None and book.cell(cell)["trial_number"] == first + 1
    assert "mlflow_run_id" not in book.storage.get_trial(first_id).user_attrs, "a finished trial does not change"


def test_a_run_made_late_stays_off_a_cell_that_moved_on(book):
    check_a_late_run_stays_off_a_cell_that_moved_on(book)


def test_trial_numbers_follow_on_from_trials_optuna_made(book):
    book.storage.create_new_trial(book.study_id)
    numbers = [book.start()[2] for _ in range(3)]
    assert numbers == [1, 2, 3]
