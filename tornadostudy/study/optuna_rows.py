"""What Optuna stores for a grid trial, for the rows records.py writes in plain SQL on PostgreSQL.

A grid worker on PostgreSQL never calls Optuna's API: its trials are started, completed and (by a reaper)
failed in plain SQL. With these few stored forms it does not import Optuna, SQLAlchemy's ORM or Optuna's
models either: ~0.17 s less CPU per worker process (docs/cluster.md). Each form is Optuna's own since before
the oldest Optuna this package accepts (pyproject.toml); ``tests/test_study_optuna_rows.py`` checks each
against the installed Optuna's code, and the records' tests compare whole trials with Optuna's own writes, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "COMPLETE",
    "FAIL",
    "RUNNING",
    "VALUE_TYPE",
    "categorical_index",
    "categorical_json",
    "rdb_source",
    "stored_now",
    "stored_value",
]

# optuna.trial.TrialState's names: the trials.state column stores the name (a SQLAlchemy Enum).
RUNNING, COMPLETE, FAIL = "RUNNING", "COMPLETE", "FAIL"
# PostgreSQL's enum type of trial_values.value_type: SQLAlchemy names it after Optuna's TrialValueType.
VALUE_TYPE = "trialvaluetype"


def categorical_json(choices: Sequence[Any]) -> str:
    """``optuna.distributions.distribution_to_json`` of a ``CategoricalDistribution(choices)``."""
    return json.dumps({"name": "CategoricalDistribution", "attributes": {"choices": list(choices)}})


def categorical_index(choices: Sequence[Any], value: Any) -> float:
    """``CategoricalDistribution(choices).to_internal_repr(value)``: the value's index among the choices."""
    try:
        return float(list(choices).index(value))
    except ValueError:  # NaN is not equal to itself: Optuna's own comparison decides (rare; imports Optuna)
        from optuna.distributions import CategoricalDistribution

        return float(CategoricalDistribution(choices).to_internal_repr(value))


def stored_value(value: float) -> tuple[float | None, str]:
    """``TrialValueModel.value_to_stored_repr``: an infinity is stored as NULL and its sign."""
    if value == math.inf:
        return None, "INF_POS"
    if value == -math.inf:
        return None, "INF_NEG"
    return value, "FINITE"


def stored_now() -> dt.datetime:
    """Now, as Optuna's RDB storage stores a trial's start and completion: naive UTC where the installed Optuna
    stores UTC (since 2026, optuna/optuna#6776), naive local time before."""
    now = dt.datetime.now()
    return now.astimezone(dt.UTC).replace(tzinfo=None) if _stores_utc() else now


def rdb_source() -> Path | None:
    """The folder of the installed Optuna's RDB storage source (its models, its migration scripts), found
    without importing Optuna; None when Optuna is not installed as a folder."""
    spec = importlib.util.find_spec("optuna")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "storages" / "_rdb"


@functools.cache
def _stores_utc() -> bool:
    """Whether the installed Optuna stores trial datetimes as UTC, read from its models' source (whose UTC columns
    are ``_datetime_start_utc``), as storage.py reads its migration scripts; where that source cannot be read, by
    asking Optuna's model itself (which imports Optuna and the ORM)."""
    source = rdb_source()
    if source is not None:
        try:
            text = (source / "models.py").read_text(encoding="utf-8")
        except OSError:
            text = ""
        if "class TrialModel" in text:
            return "_datetime_start_utc" in text
    return _model_stores_utc()


def _model_stores_utc() -> bool:
    from optuna.storages._rdb import models

    local = dt.datetime(2000, 1, 1, 12, 0)
    probe = models.TrialModel(datetime_start=local)  # the public attribute converts, where Optuna does
    column = models.TrialModel.__table__.c["datetime_start"]
    stored = getattr(probe, models.TrialModel.__mapper__.get_property_by_column(column).key)
    return stored == local.astimezone(dt.UTC).replace(tzinfo=None) != local
