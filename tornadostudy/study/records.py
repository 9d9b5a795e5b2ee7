"""A trial's Optuna record, following its cell: the cells table is the only commit point.

A cell is complete exactly when one compare-and-set on its row succeeds: ``running``, held by this worker
→ ``complete``, with the trial's results (objective values, metrics, info) stored on the row. Optuna's trial
then follows, idempotently, through Optuna's public storage API (``set_trial_user_attr``,
``set_trial_state_values``). A worker killed between the two leaves a cell that is complete and a trial that
is still RUNNING: a reaper completes that trial from the results on the cell (:func:`follow_cell`). A worker
presumed lost (its cell handed on) fails the compare-and-set and changes nothing.

A grid trial is made as ``Study.ask`` makes one: a bare ``create_new_trial``, then its attributes and
parameters one call each (for a grid trial, GridSampler's own ``grid_id`` and ``search_space``, so Optuna's
tools see the grid point as taken). Optuna numbers a new trial under a lock on the study's row, held until
the creating transaction commits: a template carrying the attributes and parameters would hold it for some
twenty statements, and every other worker starting a trial would queue behind them. The trial is then
recorded on the cell only while the worker still holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tornadostudy.study.cells import CellTable
from tornadostudy.study.storage import retrying

__all__ = ["complete_trial", "fail_trial", "follow_cell", "record_run", "record_trial", "start_trial"]

log = logging.getLogger(__name__)


def _finished_error():
    from optuna.exceptions import UpdateFinishedTrialError

    return UpdateFinishedTrialError


def start_trial(
    storage,
    cells: CellTable,
    study_id: int,
    params: Mapping[str, Any],
    grid: Mapping[str, Sequence],
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
    hold: tuple[str, int, str],
) -> tuple[int, int] | None:
    """Create a RUNNING grid trial, each parameter categorical over its ``grid`` values as GridSampler records
    it, and put its number on the cell ``hold`` = (study, cell, worker): (trial_id, number), or None when the
    worker no longer holds the cell (the new trial is then failed at once).

    Each step is retried on its own through a database outage, so an outage after the trial is made finishes
    that trial rather than making another. ``user_attrs`` are written in their order before anything else:
    the caller names the worker before the cell, so a trial that names its cell names its owner. A worker killed
    before the cell records the trial leaves a RUNNING trial that the reaper fails (recovery.py)."""
    from optuna.distributions import CategoricalDistribution

    trial_id = retrying(lambda: storage.create_new_trial(study_id), what="create the trial")

    def label() -> int:
        # Each write replaces the same value when retried.
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for key, value in system_attrs.items():
            storage.set_trial_system_attr(trial_id, key, value)
        for name, value in params.items():
            distribution = CategoricalDistribution(list(grid[name]))
            storage.set_trial_param(trial_id, name, distribution.to_internal_repr(value), distribution)
        return storage.get_trial_number_from_id(trial_id)

    number = retrying(label, what="label the trial")
    if not retrying(lambda: record_trial(storage, cells, *hold, trial_id, number), what="record the trial"):
        return None
    return trial_id, number


def record_trial(storage, cells: CellTable, study: str, cell: int, worker: str, trial_id: int, number: int) -> bool:
    """Put a new trial's number on its cell while the worker holds it. False when the cell is no longer this
    worker's (presumed lost): the trial is failed with that reason, and the caller discards it."""
    if cells.record_trial(study, cell, worker, number):
        return True
    fail_trial(storage, trial_id, {"fail_reason": "cell was handed on before its trial started"})
    return False


def record_run(storage, cells: CellTable, study: str, cell: int, trial_id: int, number: int, run_id: str) -> None:
    """The trial's MLflow run id: on its cell (while the cell is that trial's), and on the trial while it runs
    (a finished trial cannot change; its run is found through the cell or by its run key)."""
    cells.record_run(study, cell, number, run_id)
    try:
        storage.set_trial_user_attr(trial_id, "mlflow_run_id", run_id)
    except _finished_error():
        pass


def complete_trial(
    storage,
    cells: CellTable,
    study: str,
    cell: int,
    worker: str,
    trial_id: int,
    number: int,
    values: Sequence[float],
    results: Mapping[str, Any],
) -> bool:
    """Complete the cell (the commit point), then its trial. False when the cell is not this worker's any
    more: its result must not count, and nothing was written."""
    if not cells.complete(study, cell, worker, number, {**results, "values": list(values)}):
        return False
    _follow(storage, trial_id, number, values, results, cells.run_id(study, cell, number))
    return True


def _follow(
    storage, trial_id: int, number: int, values: Sequence[float], results: Mapping[str, Any], run_id: str | None = None
) -> None:
    import optuna

    # The run id too, when the run was made before the trial finished (as it is unless MLflow was away): the
    # trial cannot change once it is complete.
    attrs = {key: results[key] for key in ("metrics", "info") if key in results}
    if run_id:
        attrs["mlflow_run_id"] = run_id
    try:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, list(values))
    except _finished_error():
        state = storage.get_trial(trial_id).state
        if state != optuna.trial.TrialState.COMPLETE:
            log.warning("trial %d is %s although its cell completed with it", number, state.name)


def follow_cell(storage, trial_id: int, number: int, results: Mapping[str, Any], run_id: str | None = None) -> None:
    """Complete a RUNNING trial whose cell completed with it (its worker died in between), from the cell."""
    _follow(storage, trial_id, number, results.get("values", []), results, run_id)


def fail_trial(storage, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
    """Mark a RUNNING trial FAIL with ``user_attrs`` (its reason). False when it is not RUNNING any more (its
    worker completed or closed it, or a reaper did): a finished trial is left as it is."""
    import optuna

    try:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    except _finished_error():
        return False
    return True
