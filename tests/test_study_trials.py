"""The trial records behind reports, read from the completed cells, agree with Optuna's own trials."""

import math

import pytest

from tests.conftest import run_cli, write_sim_spec
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.trials import (
    completed_trials,
    fill_run_ids,
    report_params,
    report_skill,
)
from tornadostudy.tracking import Tracker


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def _via_optuna(handle) -> list[dict]:
    """The same records through Optuna's API."""
    import optuna

    out = []
    for trial in handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = {"trial": trial.number, "cell": trial.user_attrs.get("cell")}
        record.update(handle.spec.constants)
        record.update(trial.params)
        record.update(trial.user_attrs.get("metrics", {}))
        info = trial.user_attrs.get("info", {})
        record.update(
            {k: info[k] for k in ("train_samples", "train_positive_fraction", "hardware", "versions") if k in info}
        )
        out.append(record)
    return out


@pytest.mark.slow
def test_cell_records_equal_optunas_and_skip_unfinished_trials(study_env):
    folder, env = study_env
    spec = write_sim_spec(
        folder,
        search='batch_size = [128, 256]\naugmentation = ["pre", "live"]\nlearning_rate = [0.001, 0.01]',
        extra_study="repeats = 2",
    )
    assert run_cli("create", str(spec), env=env).returncode == 0
    assert run_cli("worker", "sim", "--max-trials", "13", env=env).returncode == 0
    handle = StudyHandle.open("sim", env["TORNADOSTUDY_STORAGE"])
    handle.study.ask()  # a RUNNING trial is not in the report
    bulk, reference = completed_trials(handle), _via_optuna(handle)
    assert len(bulk) == 13
    # The run id is on the cell: the run is made while the trial trains and may be recorded after it finished.
    assert all(r.pop("run_id") for r in bulk)
    for a, b in zip(bulk, reference, strict=True):
        assert _same(a, b), (a, b)
    first = bulk[0]
    assert isinstance(first["batch_size"], int) and first["augmentation"] in ("pre", "live")
    assert first["wall_time_s"] > 0 and "test_accuracy" in first
    params = report_params(handle)
    assert {"batch_size", "augmentation", "learning_rate", *handle.spec.constants} == set(params)
    assert "repeat" not in params and "repeat" in first, "repeats are averaged, not a configuration"
    assert report_skill(handle) == handle.spec.objectives[0].metric == "test_auc"  # the default objective


@pytest.mark.slow
def test_a_trial_without_a_recorded_run_id_gets_its_run_by_its_key(study_env):
    """A worker killed after completing a trial but before its delivery thread made the run leaves the trial
    without ``mlflow_run_id``; the run is made later (by an adopter) and found by the trial's run key."""
    folder, env = study_env
    assert run_cli("create", str(write_sim_spec(folder, search="batch_size = [128, 256]")), env=env).returncode == 0
    assert run_cli("worker", "sim", env=env).returncode == 0
    handle = StudyHandle.open("sim", env["TORNADOSTUDY_STORAGE"])
    records = completed_trials(handle)
    recorded = {r["trial"]: r["run_id"] for r in records}
    for record in records:
        record["run_id"] = None
    assert fill_run_ids(handle, records, Tracker(env["MLFLOW_TRACKING_URI"])) == 2
    assert {r["trial"]: r["run_id"] for r in records} == recorded and None not in recorded.values()


@pytest.mark.slow
def test_running_trials_are_optunas_running_trials(study_env):
    """What a reaper reads: numbers, start times and user attributes."""
    import optuna

    from tornadostudy.study.trials import running_trials

    folder, env = study_env
    assert run_cli("create", str(write_sim_spec(folder, search="batch_size = [128, 256]")), env=env).returncode == 0
    assert run_cli("worker", "sim", "--max-trials", "1", env=env).returncode == 0  # one COMPLETE: not listed
    handle = StudyHandle.open("sim", env["TORNADOSTUDY_STORAGE"])
    labelled, bare = handle.study.ask(), handle.study.ask()
    for key, value in {"cell": 1, "worker": "w", "mlflow_run_id": "r"}.items():
        labelled.set_user_attr(key, value)
    reference = handle.storage.get_all_trials(handle.study_id, states=(optuna.trial.TrialState.RUNNING,))
    ours = running_trials(handle)
    assert sorted(ours) == [labelled.number, bare.number] == sorted(t.number for t in reference)
    for trial in reference:
        mine = ours[trial.number]
        assert (mine.number, mine.datetime_start, mine.user_attrs) == (
            trial.number,
            trial.datetime_start,
            trial.user_attrs,
        )
