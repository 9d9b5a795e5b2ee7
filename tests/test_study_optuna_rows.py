"""Optuna's stored forms (study/optuna_rows.py), each checked against the installed Optuna's own code."""

import datetime as dt
import math
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.storages._rdb import models

from tornadostudy.study import optuna_rows

CHOICES = [
    [32, 64, 128],
    [1e-2, 1e-3, 1e-05],
    ["pre", "live"],
    [True, False],
    [None, 1, "a", 2.5],
    [4096],
]


@pytest.mark.parametrize("choices", CHOICES)
def test_a_grid_parameter_is_stored_as_optuna_stores_its_categorical_distribution(choices):
    assert optuna_rows.categorical_json(choices) == distribution_to_json(CategoricalDistribution(choices))
    for value in choices:
        ours = optuna_rows.categorical_index(choices, value)
        assert ours == CategoricalDistribution(choices).to_internal_repr(value) and isinstance(ours, float)


def test_nan_which_index_cannot_find_is_indexed_by_optunas_own_comparison():
    choices = [0.5, math.nan, 1.0]
    expected = CategoricalDistribution(choices).to_internal_repr(math.nan)
    assert optuna_rows.categorical_index(choices, math.nan) == expected == 1


def test_state_names_and_the_value_type_are_optunas():
    assert optuna_rows.RUNNING == optuna.trial.TrialState.RUNNING.name
    assert optuna_rows.COMPLETE == optuna.trial.TrialState.COMPLETE.name
    assert optuna_rows.FAIL == optuna.trial.TrialState.FAIL.name
    assert optuna_rows.VALUE_TYPE == models.TrialValueModel.__table__.c.value_type.type.name


@pytest.mark.parametrize("value", [0.25, -3.0, 0.0, math.inf, -math.inf])
def test_objective_values_are_stored_as_optuna_stores_them(value):
    stored, kind = models.TrialValueModel.value_to_stored_repr(value)
    assert optuna_rows.stored_value(value) == (stored, kind.name)


def test_datetimes_follow_the_installed_optunas_convention(eastern_time):
    optuna_rows._stores_utc.cache_clear()
    try:
        assert optuna_rows._stores_utc() == optuna_rows._model_stores_utc()
        now = dt.datetime.now()
        probe = models.TrialModel(datetime_start=now)
        column = models.TrialModel.__table__.c["datetime_start"]
        optunas = getattr(probe, models.TrialModel.__mapper__.get_property_by_column(column).key)
        assert abs((optuna_rows.stored_now() - optunas).total_seconds()) < 60, "an hours-long offset: UTC vs local"
    finally:
        optuna_rows._stores_utc.cache_clear()


def test_reading_the_convention_does_not_import_optuna():
    code = ("import sys; from tornadostudy.study import optuna_rows; optuna_rows.stored_now(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'sqlalchemy')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
