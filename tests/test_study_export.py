"""`tornadostudy export`: one row per trial, read back by pandas with the right types."""

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec

pytestmark = pytest.mark.slow


def test_every_trial_is_one_row_with_numbers_as_numbers(study_env):
    import pandas as pd

    folder, env = study_env
    spec = write_sim_spec(folder, "ex", search="batch_size = [64, 128, 256]\nepochs = [1, 2]", fail_probability=0.3)
    assert run_cli("create", str(spec), env=env, cwd=folder).returncode == 0
    (result,) = wait_all(start_workers("ex", 1, env))
    assert result[0] == 0, result[2][-500:]
    done = run_cli("export", "ex", "--out", str(folder / "out"), env=env, cwd=folder)
    assert done.returncode == 0 and "trials.parquet" in done.stdout, done.stderr

    table = pd.read_csv(folder / "out" / "trials.csv")
    from tornadostudy.study.handle import StudyHandle

    trials = StudyHandle.open("ex", env["TORNADOSTUDY_STORAGE"]).study.get_trials(deepcopy=False)
    assert len(table) == len(trials) and sorted(table["trial"]) == sorted(t.number for t in trials)
    assert list(table.columns[:11]) == [
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
    ]
    complete = table[table["state"] == "COMPLETE"]
    assert sorted(complete["cell"]) == list(range(6))
    for column in ("batch_size", "epochs", "wall_time_s", "test_auc", "test_bss", "time_steady_epochs_s"):
        assert pd.api.types.is_numeric_dtype(table[column]), column
    assert complete["test_auc"].notna().all() and complete["mlflow_run_id"].notna().all()
    failed = table[table["state"] == "FAIL"]
    assert (failed["fail_reason"].str.contains("simulated failure")).all()
    assert pd.read_parquet(folder / "out" / "trials.parquet").shape == table.shape
