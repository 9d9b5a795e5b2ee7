"""Completed trials as plain records (params + metrics), read in bulk for reports."""

from __future__ import annotations

from typing import Any

from tornadostudy.study.handle import StudyHandle

__all__ = ["completed_trials"]


def completed_trials(handle: StudyHandle) -> list[dict[str, Any]]:
    import optuna

    records = []
    for trial in handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = {"trial": trial.number, "cell": trial.user_attrs.get("cell")}
        record.update(handle.spec.constants)
        record.update(trial.params)
        record.update(trial.user_attrs.get("metrics", {}))
        records.append(record)
    return records
