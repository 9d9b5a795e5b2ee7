"""Multi-objective studies (e.g. accuracy vs wall time, as in paper-6.1.toml)."""

import pytest

from tests.conftest import start_workers, wait_all, write_sim_spec
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle


@pytest.mark.slow
def test_two_objectives_are_reported_in_spec_order(study_env):
    folder, env = study_env
    path = write_sim_spec(folder, search="batch_size = [128, 1024]")
    path.write_text(
        path.read_text() + '\n[[objective]]\nmetric = "test_accuracy"\ndirection = "maximize"\n'
        '\n[[objective]]\nmetric = "wall_time_s"\ndirection = "minimize"\n'
    )
    spec = load_spec(path)
    create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err
    handle = StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"])
    assert [d.name for d in handle.study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for trial in handle.study.trials:
        metrics = trial.user_attrs["metrics"]
        assert trial.values == [metrics["test_accuracy"], metrics["wall_time_s"]]
    assert len(handle.study.best_trials) >= 1
