"""A trial's record and its cell written together (records.py), checked against Optuna's own writes.

SQLite here; the same checks on PostgreSQL, with concurrent creators, are in tests/integration.
"""

import math

import optuna
import pytest

from tornadostudy.study import records
from tornadostudy.study.cells import CellTable
from tornadostudy.study.storage import make_engine

GRID = {"lr": [0.001, 0.01], "epochs": [5, 10]}
DISTS = {k: optuna.distributions.CategoricalDistribution(v) for k, v in GRID.items()}


class Book:
    """A study, its Optuna storage and its cell table on one database."""

    def __init__(self, url: str) -> None:
        self.storage = optuna.storages.RDBStorage(url)
        study = optuna.create_study(study_name="s", storage=self.storage, directions=["maximize", "minimize"])
        self.study_id = study._study_id
        self.cells = CellTable(self.storage.engine if url.startswith("postgresql") else make_engine(url))
        self.cells.create_schema()
        self.cells.insert("s", [(i, {"lr": 0.01, "epochs": 5}, None, 1.0) for i in range(40)])

    def start(self, worker: str = "w1"):
        claim = self.cells.claim("s", 0, worker)
        attrs = {"worker": worker, "attempt": claim.attempt, "cell": claim.cell}
        trial_id, number = records.start_trial(
            self.cells, self.study_id, {"lr": 0.01, "epochs": 5}, GRID, attrs,
            {"grid_id": claim.cell, "search_space": GRID}, hold=("s", claim.cell, worker),
        )  # fmt: skip
        return claim.cell, trial_id, number

    def cell(self, cell: int) -> dict:
        return self.cells.rows("s", {cell})[0]


@pytest.fixture
def book(tmp_path):
    return Book(f"sqlite:///{tmp_path}/study.db")


def check_record_matches_optuna(book: Book) -> None:
    cell, trial_id, number = book.start()
    template = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params={"lr": 0.01, "epochs": 5}, distributions=DISTS,
        user_attrs={"worker": "w1", "attempt": 1, "cell": cell}, system_attrs={"grid_id": cell, "search_space": GRID},
    )  # fmt: skip
    reference_id = book.storage.create_new_trial(book.study_id, template_trial=template)
    ours, reference = book.storage.get_trial(trial_id), book.storage.get_trial(reference_id)
    for field in ("state", "params", "distributions", "user_attrs", "system_attrs", "values"):
        assert getattr(ours, field) == getattr(reference, field), field
    assert (number, reference.number) == (0, 1), "numbered as Optuna numbers trials"
    assert abs((ours.datetime_start - reference.datetime_start).total_seconds()) < 60
    assert book.storage.get_trial_id_from_study_id_trial_number(book.study_id, number) == trial_id

    assert (book.cell(cell)["trial_number"], book.cell(cell)["run_id"]) == (number, None)
    for _ in range(2):  # the second: a delivery retried after its commit's answer was lost
        records.record_run(book.cells, "s", cell, trial_id, number, "run-1")
    assert book.storage.get_trial(trial_id).user_attrs["mlflow_run_id"] == "run-1"
    assert (book.cell(cell)["trial_number"], book.cell(cell)["run_id"]) == (number, "run-1")

    results = {"metrics": {"test_accuracy": 0.9}, "info": {"epochs_run": 5}}
    assert records.complete_trial(book.cells, "s", cell, "w1", trial_id, number, [0.9, math.inf], results)
    book.storage.set_trial_state_values(reference_id, optuna.trial.TrialState.COMPLETE, [0.9, math.inf])
    ours, reference = book.storage.get_trial(trial_id), book.storage.get_trial(reference_id)
    assert ours.state == reference.state == optuna.trial.TrialState.COMPLETE
    assert ours.values == reference.values == [0.9, math.inf]
    assert ours.user_attrs["metrics"] == {"test_accuracy": 0.9} and ours.user_attrs["info"] == {"epochs_run": 5}
    assert ours.datetime_start <= ours.datetime_complete
    assert abs((ours.datetime_complete - reference.datetime_complete).total_seconds()) < 60
    assert book.cell(cell)["state"] == "complete"
    assert optuna.load_study(study_name="s", storage=book.storage).best_trials[0].number in (0, 1)


def test_the_record_is_what_optuna_itself_stores(book, eastern_time):
    check_record_matches_optuna(book)


def test_only_the_holder_of_the_cell_starts_records_and_completes_and_nothing_is_half_written(book):
    check_only_the_holder_writes(book)


def check_only_the_holder_writes(book: Book) -> None:
    cell, trial_id, number = book.start("w1")
    assert records.start_trial(book.cells, book.study_id, {"lr": 0.01, "epochs": 5}, GRID, {}, {},
                               hold=("s", cell, "w2")) is None  # fmt: skip
    assert len(book.storage.get_all_trials(book.study_id)) == 1, "the refused trial was not created"
    assert not records.record_trial(book.cells, "s", cell, "w2", trial_id, number)
    assert book.cell(cell)["trial_number"] == number

    assert not records.complete_trial(book.cells, "s", cell, "w2", trial_id, number, [1.0, 2.0], {"metrics": {}})
    trial = book.storage.get_trial(trial_id)
    assert trial.state == optuna.trial.TrialState.RUNNING and "metrics" not in trial.user_attrs
    assert book.cell(cell)["state"] == "running"

    assert records.complete_trial(book.cells, "s", cell, "w1", trial_id, number, [1.0, 2.0], {"metrics": {}})
    assert records.complete_trial(book.cells, "s", cell, "w1", trial_id, number, [1.0, 2.0], {"metrics": {}}), (
        "a retry of a transaction that committed finds its work done"
    )
    assert book.cells.counts("s")["complete"] == 1


def test_a_trial_closed_by_a_reaper_is_not_completed_and_its_cell_stays_as_it_was(book):
    check_a_reapers_close_wins_over_a_late_completion(book)


def check_a_reapers_close_wins_over_a_late_completion(book: Book) -> None:
    cell, trial_id, number = book.start("w1")
    assert records.fail_trial(book.cells, trial_id, {"fail_reason": "worker lost"})  # what a reaper does
    trial = book.storage.get_trial(trial_id)
    assert (trial.state, trial.user_attrs["fail_reason"]) == (optuna.trial.TrialState.FAIL, "worker lost")
    assert trial.datetime_complete is not None
    assert not records.record_trial(book.cells, "s", cell, "w1", trial_id, number)
    assert not records.complete_trial(book.cells, "s", cell, "w1", trial_id, number, [1.0, 2.0], {"metrics": {}})
    assert book.storage.get_trial(trial_id).state == optuna.trial.TrialState.FAIL
    assert book.cell(cell)["state"] == "running", "the cell's completion was rolled back with the trial's"


def test_a_reaper_leaves_a_trial_its_worker_completed_meanwhile_as_it_is(book):
    check_a_completion_wins_over_a_late_reaper(book)


def check_a_completion_wins_over_a_late_reaper(book: Book) -> None:
    cell, trial_id, number = book.start("w1")
    assert records.complete_trial(book.cells, "s", cell, "w1", trial_id, number, [1.0, 2.0], {"metrics": {}})
    assert not records.fail_trial(book.cells, trial_id, {"fail_reason": "worker lost before its trial was recorded"})
    trial = book.storage.get_trial(trial_id)
    assert trial.state == optuna.trial.TrialState.COMPLETE and "fail_reason" not in trial.user_attrs


def test_a_run_made_late_is_recorded_on_its_trial_but_not_on_a_cell_that_moved_on(book):
    check_a_late_run_goes_on_its_trial_only(book)


def check_a_late_run_goes_on_its_trial_only(book: Book) -> None:
    cell, first_id, first = book.start("w1")
    assert book.cells.fail("s", cell, "w1", "boom", True, 3) == "waiting"
    book.storage.set_trial_state_values(first_id, optuna.trial.TrialState.FAIL)
    assert book.start("w2")[0] == cell  # the retry holds the cell now
    records.record_run(book.cells, "s", cell, first_id, first, "run-of-the-first")
    assert book.storage.get_trial(first_id).user_attrs["mlflow_run_id"] == "run-of-the-first"
    assert book.cell(cell)["run_id"] is None and book.cell(cell)["trial_number"] == first + 1


def test_trial_numbers_follow_on_from_trials_optuna_made(book):
    book.storage.create_new_trial(book.study_id)
    numbers = [book.start()[2] for _ in range(3)]
    assert numbers == [1, 2, 3]
