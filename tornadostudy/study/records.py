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
local datetimes, value types); ``tests/test_study_records.py`` checks that against Optuna's own writes. On
PostgreSQL the start, the completion and the run's id are written in plain SQL instead
(``_start_trial_postgres``, ``_complete_trial_postgres``, ``record_run``), one round trip each rather than the
ORM's ~4-7, committed by the server (``CellTable.execute_alone``), with nothing to compile: creations queue on
Optuna's study lock, and a worker's first trial ran while 63 others started on the same CPUs. So a write that
must not happen (the cell is no longer the worker's) is made to write nothing, not rolled back afterwards. Their
values take Optuna's stored forms from ``optuna_rows``, so a grid worker there imports neither Optuna nor the
ORM. The integration tests make the same checks against Optuna's writes there.
Failures and interruptions (``worker._fail``/``_abandon``) and a reaper's closes go through ``fail_trial``: it
closes a trial with its reason only if it is still RUNNING, in one transaction (on PostgreSQL one statement),
so a trial its worker completes meanwhile is neither failed nor marked with a reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tornadostudy.study import optuna_rows
from tornadostudy.study.cells import CellTable

__all__ = ["complete_trial", "fail_trial", "record_run", "record_trial", "start_trial", "warm_up"]


def _models():
    from optuna.storages._rdb import models

    return models


def _session(cells: CellTable):
    # The cell table's engine: on PostgreSQL the same pooled connection Optuna uses, on SQLite one
    # connection to the same file, so the trial and its cell commit in one transaction.
    from sqlalchemy.orm import Session

    return Session(bind=cells.engine, expire_on_commit=False)


def warm_up(cells: CellTable, *, grid: bool) -> None:
    """SQLAlchemy's one-time set-up of Optuna's models and of a session (~30 ms of CPU), done before a worker
    claims its first cell: inside that trial, while other workers starting on the same CPUs keep them busy,
    those milliseconds took a second or more. None for a ``grid`` worker on PostgreSQL, whose trials are
    written in plain SQL (its rare failures load the models when they happen)."""
    if grid and cells.postgres:
        return
    from sqlalchemy.orm import configure_mappers

    _models()
    configure_mappers()
    _session(cells).close()


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
    grid: Mapping[str, Sequence[Any]],
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
    hold: tuple[str, int, str] | None = None,
) -> tuple[int, int] | None:
    """Create a RUNNING grid trial with its parameters and attributes in one transaction: (trial_id, number).
    Each parameter's distribution is categorical over its ``grid`` values, as Optuna's GridSampler records it.
    With ``hold`` (study, cell, worker) the trial's number goes on the cell in the same transaction, and
    nothing is created (None) when the worker no longer holds the cell.

    The parameters' distributions are the spec's, the same for every trial of the study, so the
    per-parameter compatibility look-ups Optuna makes against earlier trials are skipped."""
    try:
        if cells.postgres:
            return _start_trial_postgres(cells, study_id, params, grid, user_attrs, system_attrs, hold)
        with _session(cells) as session, session.begin():
            return _start_trial_sqlite(session, cells, study_id, params, grid, user_attrs, system_attrs, hold)
    except _Refused:
        return None


# CellTable.held's condition in plain SQL: the cell runs, and is this worker's.
_HELD = "study = :cell_study AND cell = :cell AND state = 'running' AND worker = :worker"
# A user attribute written again (a key set earlier, or a retried write) replaces its value, as Optuna's does.
_REPLACE_ATTR = "ON CONFLICT (trial_id, key) DO UPDATE SET value_json = EXCLUDED.value_json"


def _start_trial_postgres(cells, study_id, params, grid, user_attrs, system_attrs, hold):
    """The same rows as ``_start_trial_sqlite`` writes, in one round trip that takes and gives back Optuna's
    study lock.

    Creations in a study queue on that lock (trials are numbered by counting): the ORM wrote a trial in ~7
    round trips while it held it, and 64 workers starting together waited 0.75-2 s for their first trial on
    2 cores. Here three statements go as one message, committed by the server before it answers
    (``CellTable.execute_alone``), so the lock is held for the server's work only, not while the client
    wakes up to send COMMIT. The first takes the study's lock, as Optuna's own creations do; the second the
    cell's row, if the worker still holds the cell; the third, whose snapshot is taken after both, inserts
    the trial numbered by the count of the study's trials (all committed: every creator takes the lock
    first), its parameters and attributes, and puts its number on the cell — all only if the cell is the
    worker's, which nobody can change while its row is locked. Otherwise nothing is written and no row
    comes back. Plain SQL: nothing to compile, which on a busy machine's first trial took seconds (the
    names are Optuna's schema, the values its stored forms: ``optuna_rows``)."""
    values: dict[str, Any] = {"study_id": study_id, "state": optuna_rows.RUNNING, "start": optuna_rows.stored_now()}
    statements = ["SELECT study_id FROM studies WHERE study_id = :study_id FOR UPDATE"]
    held = ""
    if hold is not None:
        values.update(cell_study=hold[0], cell=hold[1], worker=hold[2])
        statements.append(f"SELECT cell FROM {cells.table.name} WHERE {_HELD} FOR UPDATE")
        held = f"WHERE EXISTS (SELECT 1 FROM {cells.table.name} WHERE {_HELD})"
    parts = [
        "new_trial AS (INSERT INTO trials (number, study_id, state, datetime_start) "
        f"SELECT (SELECT count(*) FROM trials WHERE study_id = :study_id), :study_id, :state, :start {held} "
        "RETURNING trial_id, number)"
    ]
    rows = [(name, optuna_rows.categorical_index(grid[name], value), optuna_rows.categorical_json(grid[name]))
            for name, value in params.items()]  # fmt: skip
    parts += _insert_rows("trial_params", "param_name, param_value, distribution_json", rows, "p", values,
                          casts=("{}", "CAST({} AS DOUBLE PRECISION)", "{}"))  # fmt: skip
    for table, attrs, tag in (("trial_user_attributes", user_attrs, "u"),
                              ("trial_system_attributes", system_attrs, "s")):  # fmt: skip
        parts += _insert_rows(table, "key, value_json", [(k, json.dumps(v)) for k, v in attrs.items()], tag, values)
    if hold is not None:
        parts.append(f"cell_row AS (UPDATE {cells.table.name} SET trial_number = new_trial.number, run_id = NULL "
                     f"FROM new_trial WHERE {_HELD} RETURNING cell)")  # fmt: skip
    statements.append(f"WITH {', '.join(parts)} SELECT trial_id, number FROM new_trial")
    row = cells.execute_alone(cells.sa.text("; ".join(statements)), values, consume=lambda result: result.first())
    if row is None:
        raise _Refused  # the cell is no longer this worker's: nothing was written
    return row.trial_id, row.number


def _insert_rows(table: str, columns: str, rows: list[tuple], tag: str, values: dict, casts=None,
                 source: str = "new_trial", suffix: str = "") -> list[str]:  # fmt: skip
    """A data-modifying ``WITH`` part that inserts ``rows`` into ``table`` for the trial of the ``source``
    part (its trial id first, then each row's values, bound into ``values``; no rows when that part
    returned none); ``casts`` wraps each value's placeholder (a ``VALUES`` list's strings are text, not the column's
    type); ``suffix`` ends the INSERT (``ON CONFLICT …``)."""
    if not rows:
        return []
    casts = casts or ("{}",) * len(rows[0])
    tuples = []
    for i, row in enumerate(rows):
        values.update({f"{tag}{i}_{j}": value for j, value in enumerate(row)})
        tuples.append("(" + ", ".join(cast.format(f":{tag}{i}_{j}") for j, cast in enumerate(casts)) + ")")
    names = ", ".join(f"c{j}" for j in range(len(casts)))
    return [f"{tag}_rows AS (INSERT INTO {table} (trial_id, {columns}) SELECT {source}.trial_id, {names} "
            f"FROM {source}, (VALUES {', '.join(tuples)}) AS v({names}){suffix})"]  # fmt: skip


def _start_trial_sqlite(session, cells, study_id, params, grid, user_attrs, system_attrs, hold):
    import optuna
    from optuna.distributions import CategoricalDistribution, distribution_to_json

    models = _models()
    distributions = {name: CategoricalDistribution(grid[name]) for name in params}
    # SQLite (PostgreSQL: _start_trial_postgres): the flush's write takes the database's write lock, which
    # serialises creations as Optuna's study lock does.
    trial = models.TrialModel(study_id=study_id, number=None, state=optuna.trial.TrialState.RUNNING,
                              datetime_start=dt.datetime.now())  # fmt: skip
    session.add(trial)
    session.flush()  # the write lock, before the count
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
    if cells.postgres:  # one statement: the thread shares the worker's CPUs with its first trial
        statement = cells.sa.text(
            f"WITH cell_row AS (UPDATE {cells.table.name} SET run_id = :run_id WHERE study = :cell_study "
            "AND cell = :cell AND trial_number = :number RETURNING cell) INSERT INTO trial_user_attributes "
            f"(trial_id, key, value_json) VALUES (:trial_id, :key, :value) {_REPLACE_ATTR}"
        )
        binds = {"run_id": run_id, "cell_study": study, "cell": cell, "number": number, "trial_id": trial_id,
                 "key": "mlflow_run_id", "value": json.dumps(run_id)}  # fmt: skip
        cells.execute_alone(statement, binds, consume=lambda result: None)
        return
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
    try:
        if cells.postgres:
            _complete_trial_postgres(cells, study, cell, worker, trial_id, number, values, user_attrs)
        else:
            _complete_trial_sqlite(cells, study, cell, worker, trial_id, number, values, user_attrs)
    except _Refused:
        # A retry of a transaction that did commit (its answer was lost) finds its own work done.
        return cells.completed_by(study, cell, worker, number)
    return True


def _complete_trial_postgres(cells, study, cell, worker, trial_id, number, values, user_attrs):
    """The rows ``_complete_trial_sqlite`` writes, in one round trip (the ORM made ~7 and compiled its flush on
    a worker's first trial, which took seconds on a busy machine), committed by the server
    (``CellTable.execute_alone``). The first statement locks the cell's row while this worker holds it, the
    second the trial's (the order the SQLite path writes them in); the third, whose snapshot is taken after
    both, completes both only if the cell is the worker's and the trial RUNNING, which nobody can change
    while the rows are locked: a reaper's ``fail_trial`` holding the trial's row makes it wait. Anything
    less writes nothing."""
    binds: dict[str, Any] = {"cell_study": study, "cell": cell, "worker": worker, "number": number,
                             "trial_id": trial_id, "running": optuna_rows.RUNNING, "complete": optuna_rows.COMPLETE,
                             "completed_at": optuna_rows.stored_now()}  # fmt: skip
    running = "EXISTS (SELECT 1 FROM trials WHERE trial_id = :trial_id AND state = :running)"
    parts = [
        f"cell_row AS (UPDATE {cells.table.name} SET state = 'complete', trial_number = :number, "
        f"finished_at = {cells.now_sql}, heartbeat_at = {cells.now_sql} WHERE {_HELD} AND {running} RETURNING cell)",
        "trial_row AS (UPDATE trials SET state = :complete, datetime_complete = :completed_at "
        "WHERE trial_id = :trial_id AND state = :running AND EXISTS (SELECT 1 FROM cell_row) RETURNING trial_id)",
    ]
    attrs = [(key, json.dumps(value)) for key, value in user_attrs.items()]
    parts += _insert_rows("trial_user_attributes", "key, value_json", attrs, "u", binds, source="trial_row",
                          suffix=f" {_REPLACE_ATTR}")  # fmt: skip
    rows = [(objective, *optuna_rows.stored_value(value)) for objective, value in enumerate(values)]
    parts += _insert_rows("trial_values", "objective, value, value_type", rows, "v", binds,
                          casts=("CAST({} AS INTEGER)", "CAST({} AS DOUBLE PRECISION)",
                                 f"CAST({{}} AS {optuna_rows.VALUE_TYPE})"), source="trial_row")  # fmt: skip
    statement = cells.sa.text(
        f"SELECT cell FROM {cells.table.name} WHERE {_HELD} FOR UPDATE; "
        "SELECT trial_id FROM trials WHERE trial_id = :trial_id FOR UPDATE; "
        f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM trial_row) AS completed"
    )
    if cells.execute_alone(statement, binds, consume=lambda result: result.scalar_one()) != 1:
        raise _Refused  # nothing was written


def _complete_trial_sqlite(cells, study, cell, worker, trial_id, number, values, user_attrs):
    import optuna

    models = _models()
    with _session(cells) as session, session.begin():
        done = session.execute(
            cells.held(study, cell, worker).values(state="complete", trial_number=number, finished_at=cells.now,
                                                   heartbeat_at=cells.now)
        ).rowcount  # fmt: skip
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


def fail_trial(cells: CellTable, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
    """Mark a RUNNING trial FAIL with ``user_attrs`` (its reason), all or nothing. False when it is not
    RUNNING any more (its worker completed or closed it): then nothing is written."""
    if cells.postgres:
        return _fail_trial_postgres(cells, trial_id, user_attrs)
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


def _fail_trial_postgres(cells: CellTable, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
    """The rows ``fail_trial`` writes through the ORM, in one statement committed by the server: the trial's
    update waits for a completion that holds its row and then finds it no longer RUNNING, and the attributes
    go in only with the update. A reaper between trials, where 64 workers finishing together found a trial
    completed since it looked, loaded Optuna and the ORM for it (~0.2 s on a busy machine)."""
    binds: dict[str, Any] = {"trial_id": trial_id, "running": optuna_rows.RUNNING, "fail": optuna_rows.FAIL,
                             "completed_at": optuna_rows.stored_now()}  # fmt: skip
    parts = ["trial_row AS (UPDATE trials SET state = :fail, datetime_complete = :completed_at "
             "WHERE trial_id = :trial_id AND state = :running RETURNING trial_id)"]  # fmt: skip
    attrs = [(key, json.dumps(value)) for key, value in user_attrs.items()]
    parts += _insert_rows("trial_user_attributes", "key, value_json", attrs, "u", binds, source="trial_row",
                          suffix=f" {_REPLACE_ATTR}")  # fmt: skip
    statement = cells.sa.text(f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM trial_row) AS failed")
    return cells.execute_alone(statement, binds, consume=lambda result: result.scalar_one()) == 1
