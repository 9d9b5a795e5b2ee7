"""The tracking wrapper's settings and writes, against a local MLflow store."""

import pytest

from tornadostudy.tracking import Tracker, _pool_settings


@pytest.mark.parametrize(
    "given, expected",
    [
        ({}, {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "1", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "2",
              "MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE": "300"}),
        ({"TORNADOSTUDY_DB_POOL": "0"}, {"TORNADOSTUDY_DB_POOL": "0", "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}),
        # A pool class of the user's own must not be combined with pool sizes (MLflow would refuse to start).
        ({"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}, {"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}),
    ],
)  # fmt: skip
def test_pool_settings_for_logging_straight_to_postgresql(given, expected):
    environ = dict(given)
    _pool_settings(environ)
    assert environ == expected


def test_final_metrics_and_tags_arrive_in_one_call(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    experiment, _ = tracker.ensure_experiment("s")
    run_id = tracker.start_trial_run(experiment, None, "trial", {"batch_size": 128}, {"cell": 3})
    calls = []
    original = tracker.client.log_batch
    tracker.client.log_batch = lambda *a, **k: calls.append(k) or original(*a, **k)
    assert tracker.log_final(run_id, {"test_auc": 0.8, "wall_time_s": 12.0}, {"info.trainer": "simulate"})
    run = tracker.client.get_run(run_id)
    assert len(calls) == 1 and run.data.metrics == {"test_auc": 0.8, "wall_time_s": 12.0}
    assert run.data.tags["info.trainer"] == "simulate" and run.data.params == {"batch_size": "128"}
    experiment_tags = tracker.client.get_experiment(experiment).tags
    assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs
    assert tracker.curve(run_id, "test_auc") == [(0, 0.8)]
