"""``tornadostudy export``: every trial of a study as one tidy table (one row per trial, one column per field).

The rows come from Optuna's public API, so failed, stopped and running trials are there too, each with its
state and reason; a completed trial's parameters and metrics are those stored on its cell.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tornadostudy.study.handle import StudyHandle

__all__ = ["trial_table", "write_trial_table"]

FIRST = (
    "trial",
    "state",
    "cell",
    "attempt",
    "worker",
    "gpu_ids",
    "mlflow_run_id",
    "started",
    "completed",
    "duration_s",
    "fail_reason",
)


def trial_table(handle: StudyHandle):
    """A pandas DataFrame: one row per trial, the columns of FIRST, then parameters, then metrics."""
    import pandas as pd

    cells = {r["cell"]: r for r in handle.cells.rows(handle.name)}
    params = [*handle.spec.constants, *handle.spec.search]
    rows, metric_names = [], set()
    for t in handle.study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        cell = cells.get(attrs.get("cell"))
        results = json.loads(cell["results"]) if cell and cell["results"] and cell["trial_number"] == t.number else {}
        on_cell = json.loads(cell["params"]) if cell and cell["params"] else {}
        chosen = {**handle.spec.constants, **on_cell, **(results.get("params") or {}), **t.params}
        metrics = results.get("metrics") or attrs.get("metrics") or {}
        metric_names |= set(metrics)
        started, completed = t.datetime_start, t.datetime_complete
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "cell": attrs.get("cell"),
                "attempt": attrs.get("attempt"),
                "worker": attrs.get("worker"),
                "gpu_ids": attrs.get("gpu_ids", ""),
                "mlflow_run_id": attrs.get("mlflow_run_id") or (cell["run_id"] if results else None),
                "started": started.isoformat() if started else None,
                "completed": completed.isoformat() if completed else None,
                "duration_s": (completed - started).total_seconds() if started and completed else math.nan,
                "fail_reason": attrs.get("fail_reason", ""),
                **{p: chosen.get(p) for p in params},
                **metrics,
            }
        )
    objectives = [o.metric for o in handle.spec.objectives]
    ordered_metrics = sorted(metric_names, key=lambda m: (m not in objectives, not m.startswith("test_"), m))
    columns = [*FIRST, *params, *ordered_metrics]
    return pd.DataFrame(rows, columns=columns)


def write_trial_table(handle: StudyHandle, folder: Path) -> list[Path]:
    """``trials.csv`` and ``trials.parquet`` in ``folder``."""
    table = trial_table(handle)
    folder.mkdir(parents=True, exist_ok=True)
    csv, parquet = folder / "trials.csv", folder / "trials.parquet"
    table.to_csv(csv, index=False)
    table.to_parquet(parquet, index=False)
    return [csv, parquet]
