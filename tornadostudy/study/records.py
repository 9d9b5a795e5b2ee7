"""A trial's Optuna record, following its cell: the cells table is the only commit point.

A cell is complete exactly when one compare-and-set on its row succeeds: ``running``, held by this worker
→ ``complete``, with the trial's results (objective values, metrics, info) stored on the row. Optuna's trial
then follows, idempotently, through Optuna's public storage API (``set_trial_user_attr``,
``set_trial_state_values``). A worker killed between the two leaves a cell that is complete and a trial that
is still RUNNING: a reaper completes that trial from the results on the cell (:func:`follow_cell`). A worker
presumed lost (its cell handed on) fails the compare-and-set and changes nothing.

Trials are created with ``create_new_trial`` and a template holding the parameters, their distributions
and the attributes (for a grid trial, GridSampler's own ``grid_id`` and ``search_space``, so Optuna's tools
see the grid point as taken), then recorded on the cell only while the worker still holds it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tornadostudy.study.cells import CellTable

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
    worker no longer holds the cell (the new trial is then failed at once)."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    template = optuna.trial.FrozenTrial(
        number=-1,
        trial_id=-1,
        state=optuna.trial.TrialState.RUNNING,
        value=None,
        intermediate_values={},
        datetime_start=dt.datetime.now(),
        datetime_complete=None,
        params=dict(params),
        distributions={name: CategoricalDistribution(list(grid[name])) for name in params},
        user_attrs=dict(user_attrs),
        system_attrs=dict(system_attrs),
    )
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    number = storage.get_trial_number_from_id(trial_id)
    if not record_trial(storage, cells, *hold, trial_id, number):
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
