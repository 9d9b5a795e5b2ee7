"""Completed trials as plain records (params + metrics), read in bulk for reports.

Optuna's ``get_trials`` builds a full FrozenTrial per trial (every attribute, intermediate value and
system attribute): ~35 s for 20,000 trials on SQLite. A report needs three columns of three tables,
so it reads those with three queries over Optuna's schema (stable since Optuna 3) instead. A reaper's
look at the RUNNING trials (``running_trials``) reads them the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from tornadostudy.study.handle import StudyHandle

__all__ = [
    "RunningTrial",
    "completed_trials",
    "completed_trials_via_optuna",
    "fill_run_ids",
    "report_params",
    "report_skill",
    "running_trials",
]


_REPORT_ATTRS = ("cell", "mlflow_run_id", "metrics", "info")
# What a report takes from a trial's info: what it trained on, and on what.
_REPORT_INFO = ("train_samples", "train_positive_fraction", "hardware", "versions")


def completed_trials(handle: StudyHandle) -> list[dict[str, Any]]:
    """One dict per COMPLETE trial: trial, cell, run_id, constants, params, final metrics."""
    import sqlalchemy as sa
    from optuna.distributions import json_to_distribution

    query = {
        "trials": "SELECT trial_id, number FROM trials WHERE study_id = :s AND state = 'COMPLETE' ORDER BY number",
        "params": "SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p "
        "JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = :s AND t.state = 'COMPLETE'",
        "attrs": "SELECT a.trial_id, a.key, a.value_json FROM trial_user_attributes a JOIN trials t "
        "ON t.trial_id = a.trial_id WHERE t.study_id = :s AND t.state = 'COMPLETE' AND a.key IN :keys",
    }
    with handle.cells.engine.connect() as conn:
        trials = conn.execute(sa.text(query["trials"]), {"s": handle.study_id}).all()
        params = conn.execute(sa.text(query["params"]), {"s": handle.study_id}).all()
        attrs = conn.execute(
            sa.text(query["attrs"]).bindparams(sa.bindparam("keys", expanding=True)),
            {"s": handle.study_id, "keys": list(_REPORT_ATTRS)},
        ).all()
    by_id: dict[int, dict[str, Any]] = {}
    for trial_id, number in trials:
        by_id[trial_id] = {"trial": number, "cell": None, "run_id": None, **handle.spec.constants}
    distributions: dict[str, Any] = {}
    for trial_id, name, internal, dist_json in params:
        if dist_json not in distributions:
            distributions[dist_json] = json_to_distribution(dist_json)
        by_id[trial_id][name] = distributions[dist_json].to_external_repr(internal)
    for trial_id, key, value_json in attrs:
        value = json.loads(value_json)
        if key == "metrics":
            by_id[trial_id].update(value)
        elif key == "info":
            by_id[trial_id].update({k: value[k] for k in _REPORT_INFO if k in value})
        else:
            by_id[trial_id]["run_id" if key == "mlflow_run_id" else key] = value
    return list(by_id.values())


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial as a reaper looks at it: who runs it (its user attributes) and since when."""

    trial_id: int
    number: int
    datetime_start: dt.datetime | None  # as Optuna stored it (naive)
    user_attrs: dict[str, Any]


def running_trials(handle: StudyHandle) -> dict[int, RunningTrial]:
    """The study's RUNNING trials by number, in one query filtered in the database, without opening Optuna's
    storage (every worker looks once before its first claim)."""
    import sqlalchemy as sa

    query = sa.text(
        "SELECT t.trial_id, t.number, t.datetime_start, a.key, a.value_json FROM trials t LEFT JOIN "
        "trial_user_attributes a ON a.trial_id = t.trial_id WHERE t.study_id = :s AND t.state = 'RUNNING'"
    ).columns(datetime_start=sa.DateTime)  # SQLite stores text: read it back as a datetime, as Optuna does
    with handle.cells.engine.connect() as conn:
        rows = conn.execute(query, {"s": handle.study_id}).all()
    found: dict[int, RunningTrial] = {}
    for trial_id, number, start, key, value_json in rows:
        trial = found.setdefault(number, RunningTrial(trial_id, number, start, {}))
        if key is not None:
            trial.user_attrs[key] = json.loads(value_json)
    return found


def fill_run_ids(handle: StudyHandle, records: list[dict[str, Any]], tracker) -> int:
    """Give records without a run id theirs, found by the trial's run key. The id reaches the trial from the
    worker's delivery thread once MLflow has made the run, and a worker that died first never recorded it.
    Returns how many were filled."""
    from tornadostudy.tracking import trial_run_key

    missing = [r for r in records if r.get("run_id") is None]
    if not missing:
        return 0
    by_key = tracker.runs_by_key(handle.experiment_id)
    for record in missing:
        record["run_id"] = by_key.get(trial_run_key(handle.study_id, record["trial"]))
    return sum(record["run_id"] is not None for record in missing)


def completed_trials_via_optuna(handle: StudyHandle) -> list[dict[str, Any]]:
    """The same records through Optuna's API (the slow reference the bulk reader is tested against)."""
    import optuna

    records = []
    for trial in handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = {"trial": trial.number, "cell": trial.user_attrs.get("cell"),
                  "run_id": trial.user_attrs.get("mlflow_run_id")}  # fmt: skip
        record.update(handle.spec.constants)
        record.update(trial.params)
        record.update(trial.user_attrs.get("metrics", {}))
        records.append(record)
    return records


def report_params(handle: StudyHandle) -> list[str]:
    """The parameters that define a configuration (repeats of one configuration are averaged)."""
    return [p for p in (*handle.spec.constants, *handle.spec.search) if p != "repeat"]


def report_skill(handle: StudyHandle) -> str:
    """The study's first skill objective (not a time), else test accuracy as in the paper."""
    for objective in handle.spec.objectives:
        if objective.metric.startswith("test_"):
            return objective.metric
    return "test_accuracy"
