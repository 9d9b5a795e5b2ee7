"""A trial's Optuna record and its cell, written together in short transactions.

Optuna's RDBStorage writes a trial one item at a time: ``create_new_trial`` with a template looks the
trial up again and checks the study's earlier records for every parameter and attribute (~30
statements), and every later attribute or state change is a transaction of its own. A worker only needs
three moments, each one transaction on the study database together with its cell:

- **start**: the trial, RUNNING, with its parameters and labels (numbered as Optuna numbers trials), and
  its number on the cell — only while the worker still holds the cell (``record_trial`` does the last
  part for trials that Optuna's samplers create);
- **complete**: the results, the objective values and COMPLETE, with the cell's completion — so a cell is
  complete exactly when its trial is, and a worker presumed lost (cell handed on, or trial closed by a
  reaper) changes nothing;
- and, from the thread that delivers tracking writes, whenever MLflow has made the trial's run: its id,
  on the trial and on the cell (``record_run``).

The rows are Optuna's own ORM models, so what is stored is what Optuna itself would store (naive UTC or
local datetimes, value types); ``tests/test_study_records.py`` checks that against Optuna's own writes.
Failures and interruptions are rare and keep going through Optuna's API (``worker._fail``/``_abandon``),
except a reaper's: ``fail_trial`` closes a trial with its reason only if it is still RUNNING, in one
transaction, so a trial its worker completes meanwhile is neither failed nor marked with a reason.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tornadostudy.study.cells import CellTable

__all__ = ["complete_trial", "fail_trial", "record_run", "record_trial", "start_trial"]


def _models():
    from optuna.storages._rdb import models

    return models


def _session(cells: CellTable):
    # The cell table's engine: on PostgreSQL the same pooled connection Optuna uses, on SQLite one
    # connection to the same file, so the trial and its cell commit in one transaction.
    from sqlalchemy.orm import Session

    return Session(bind=cells.engine, expire_on_commit=False)


class _Refused(Exception):
    """Raised inside a transaction to roll it back: the worker no longer holds the cell or the trial."""


def _running_trial(session, trial_id: int):
    """The trial row, locked (PostgreSQL) while this transaction decides; None unless it is RUNNING."""
    import optuna

    models = _models()
    trial = session.get(models.TrialModel, trial_id, with_for_update=True)
    return trial if trial is not None and trial.state == optuna.trial.TrialState.RUNNING else None


def _put_attrs(session, trial_id: int, attrs: Mapping[str, Any], model, replace: bool = True) -> None:
    """Write attributes as Optuna does (JSON). ``replace``: first delete any of the same key, so a retried
    transaction (commit done, answer lost) cannot break the (trial, key) uniqueness; a new trial has none."""
    if not attrs:
        return
    if replace:
        session.query(model).filter(model.trial_id == trial_id, model.key.in_(list(attrs))).delete(
            synchronize_session=False
        )
    session.add_all(model(trial_id=trial_id, key=k, value_json=json.dumps(v)) for k, v in attrs.items())


def start_trial(
    cells: CellTable,
    study_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, Any],
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
    hold: tuple[str, int, str] | None = None,
) -> tuple[int, int] | None:
    """Create a RUNNING trial with its parameters and attributes in one transaction: (trial_id, number).
    With ``hold`` (study, cell, worker) the trial's number goes on the cell in the same transaction, and
    nothing is created (None) when the worker no longer holds the cell.

    The parameters' distributions are the spec's, the same for every trial of the study, so the
    per-parameter compatibility look-ups Optuna makes against earlier trials are skipped."""
    try:
        with _session(cells) as session, session.begin():
            return _start_trial(session, cells, study_id, params, distributions, user_attrs, system_attrs, hold)
    except _Refused:
        return None


def _start_trial(session, cells, study_id, params, distributions, user_attrs, system_attrs, hold):
    import optuna
    from optuna.distributions import distribution_to_json

    models = _models()
    if cells.postgres:
        # Optuna's own lock: trial numbers are counted, so creations in one study are serialised.
        session.get(models.StudyModel, study_id, with_for_update=True)
    trial = models.TrialModel(study_id=study_id, number=None, state=optuna.trial.TrialState.RUNNING,
                              datetime_start=dt.datetime.now())  # fmt: skip
    session.add(trial)
    session.flush()  # SQLite: the first write takes the database's write lock before the count
    trial.number = trial.count_past_trials(session)
    if hold is not None and session.execute(_on_cell(cells, *hold, trial.number)).rowcount != 1:
        raise _Refused
    session.add_all(
        models.TrialParamModel(trial_id=trial.trial_id, param_name=name, distribution_json=distribution_to_json(
            distributions[name]), param_value=distributions[name].to_internal_repr(value))
        for name, value in params.items()
    )  # fmt: skip
    _put_attrs(session, trial.trial_id, user_attrs, models.TrialUserAttributeModel, replace=False)
    _put_attrs(session, trial.trial_id, system_attrs, models.TrialSystemAttributeModel, replace=False)
    return trial.trial_id, trial.number


def _on_cell(cells: CellTable, study: str, cell: int, worker: str, number: int):
    """The trial's number on the cell while the worker holds it; the cell's run is the new trial's (none yet)."""
    return cells.held(study, cell, worker).values(trial_number=number, run_id=None)


def record_trial(cells: CellTable, study: str, cell: int, worker: str, trial_id: int, number: int) -> bool:
    """Record a trial made through Optuna's API on its cell; False (nothing written) when the cell is no
    longer this worker's or the trial was closed meanwhile (both mean: presumed lost, discard)."""
    try:
        with _session(cells) as session, session.begin():
            # A write first: on SQLite it takes the write lock, so what is read next is current.
            held = session.execute(_on_cell(cells, study, cell, worker, number)).rowcount
            if held != 1 or _running_trial(session, trial_id) is None:
                raise _Refused
    except _Refused:
        return False
    return True


def record_run(cells: CellTable, study: str, cell: int, trial_id: int, number: int, run_id: str) -> None:
    """The trial's MLflow run id, on the trial (whatever its state by now) and on its cell while the cell
    is still that trial's. Called by the delivery thread once the run is made."""
    models = _models()
    t = cells.table
    with _session(cells) as session, session.begin():
        session.execute(t.update().where((t.c.study == study) & (t.c.cell == cell) & (t.c.trial_number == number))
                        .values(run_id=run_id))  # fmt: skip
        _put_attrs(session, trial_id, {"mlflow_run_id": run_id}, models.TrialUserAttributeModel)


def complete_trial(
    cells: CellTable,
    study: str,
    cell: int,
    worker: str,
    trial_id: int,
    number: int,
    values: Sequence[float],
    user_attrs: Mapping[str, Any],
) -> bool:
    """Store the results and values, mark the trial COMPLETE and the cell complete, all or nothing.
    False when this worker no longer holds the cell or the trial was closed: its result must not count."""
    import optuna

    models = _models()
    now = time.time()
    try:
        with _session(cells) as session, session.begin():
            done = session.execute(
                cells.held(study, cell, worker).values(
                    state="complete", trial_number=number, finished_at=now, heartbeat_at=now
                )
            ).rowcount
            trial = _running_trial(session, trial_id) if done == 1 else None
            if trial is None:
                raise _Refused
            _put_attrs(session, trial_id, user_attrs, models.TrialUserAttributeModel)
            for objective, value in enumerate(values):
                stored, value_type = models.TrialValueModel.value_to_stored_repr(value)
                session.add(models.TrialValueModel(trial_id=trial_id, objective=objective, value=stored,
                                                   value_type=value_type))  # fmt: skip
            trial.state = optuna.trial.TrialState.COMPLETE
            trial.datetime_complete = dt.datetime.now()
    except _Refused:
        # A retry of a transaction that did commit (its answer was lost) finds its own work done.
        return cells.completed_by(study, cell, worker, number)
    return True


def fail_trial(cells: CellTable, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
    """Mark a RUNNING trial FAIL with ``user_attrs`` (its reason), all or nothing. False when it is not
    RUNNING any more (its worker completed or closed it): then nothing is written."""
    import optuna

    models = _models()
    with _session(cells) as session, session.begin():
        trial = _running_trial(session, trial_id)
        if trial is None:
            return False
        _put_attrs(session, trial_id, user_attrs, models.TrialUserAttributeModel)
        trial.state = optuna.trial.TrialState.FAIL
        trial.datetime_complete = dt.datetime.now()
    return True
