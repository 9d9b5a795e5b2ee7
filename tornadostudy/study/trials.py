"""Completed trials as plain records (params + metrics) for reports, and the RUNNING trials a reaper looks at.

A cell completes with its trial's results on its row (the commit point: tornadostudy/study/records.py), so a
report reads every completed trial from the cells table in one query of the project's own table, whatever the
study's size. The RUNNING trials come from Optuna's public storage API, filtered by state.
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
    "fill_run_ids",
    "report_params",
    "report_skill",
    "running_trials",
]

# What a report takes from a trial's info: what it trained on, and on what.
_REPORT_INFO = ("train_samples", "train_positive_fraction", "hardware", "versions")


def completed_trials(handle: StudyHandle) -> list[dict[str, Any]]:
    """One dict per completed cell, in trial order: trial, cell, run_id, constants, params, final metrics."""
    records = []
    for row in sorted(handle.cells.rows(handle.name), key=lambda r: r["trial_number"] or 0):
        if row["state"] != "complete" or not row["results"]:
            continue
        results = json.loads(row["results"])
        params = results.get("params") or (json.loads(row["params"]) if row["params"] else {})
        record = {
            "trial": row["trial_number"],
            "cell": row["cell"],
            "run_id": row["run_id"],
            **handle.spec.constants,
            **params,
            **results.get("metrics", {}),
        }
        info = results.get("info", {})
        record.update({k: info[k] for k in _REPORT_INFO if k in info})
        records.append(record)
    return records


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial as a reaper looks at it: who runs it (its user attributes) and since when. Its storage
    id is looked up (``StudyHandle.trial_id``) only for a trial the reaper closes: most RUNNING trials are live
    workers' and need none."""

    number: int
    datetime_start: dt.datetime | None  # as Optuna stored it (naive)
    user_attrs: dict[str, Any]


def running_trials(handle: StudyHandle) -> dict[int, RunningTrial]:
    """The study's RUNNING trials by number."""
    import optuna

    trials = handle.storage.get_all_trials(handle.study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return {t.number: RunningTrial(t.number, t.datetime_start, dict(t.user_attrs)) for t in trials}


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


def report_params(handle: StudyHandle) -> list[str]:
    """The parameters that define a configuration (repeats of one configuration are averaged)."""
    return [p for p in (*handle.spec.constants, *handle.spec.search) if p != "repeat"]


def report_skill(handle: StudyHandle) -> str:
    """The study's first skill objective (not a time), else test accuracy as in the paper."""
    for objective in handle.spec.objectives:
        if objective.metric.startswith("test_"):
            return objective.metric
    return "test_accuracy"
