"""A worker's writes over the REST client land in a real ``mlflow server`` exactly as MLflow's own
client's do."""

import math
import time

import pytest

from tornadostudy.errors import TrackingError
from tornadostudy.mlflow_rest import RestClient
from tornadostudy.tracking import Tracker, new_run_key

pytestmark = pytest.mark.postgres


def _trial(tracker: Tracker, experiment: str, parent: str, key: str) -> str:
    run_id = tracker.start_trial_run(experiment, parent, "b128 #0", {"batch_size": 128, "learning_rate": 1e-3},
                                     {"cell": 3, "worker": "w1"}, run_key=key)  # fmt: skip
    tracker.log_metrics(run_id, {"loss": 0.7, "accuracy": 0.5}, step=1)
    tracker.log_metrics(run_id, {"loss": float("nan"), "accuracy": 0.6}, step=2)  # a diverged epoch
    tracker.log_final(run_id, {"test_auc": 0.8}, {"info.trainer": "simulate"})
    tracker.set_tags(run_id, {"resumed_from_epoch": 1})
    tracker.end_run(run_id, "FINISHED")
    return run_id


def _seen(tracker: Tracker, run_id: str) -> dict:
    run = tracker.client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k not in ("tornadostudy.run_key", "mlflow.runName")}
    curves = {key: [(m.step, "nan" if math.isnan(m.value) else m.value) for m in tracker.metric_history(run_id, key)]
              for key in ("loss", "accuracy", "test_auc")}  # fmt: skip
    return {"params": run.data.params, "tags": tags, "curves": curves, "status": run.info.status,
            "name": run.info.run_name, "ended": run.info.end_time is not None, "user": run.info.user_id}  # fmt: skip


def test_rest_writes_read_back_as_mlflows_own(mlflow_server, monkeypatch):
    lean = Tracker(mlflow_server, own_retries=True)
    assert isinstance(lean.writer, RestClient)
    monkeypatch.setenv("TORNADOSTUDY_MLFLOW_REST", "0")
    full = Tracker(mlflow_server, own_retries=True)
    assert not isinstance(full.writer, RestClient)
    experiment, _ = full.ensure_experiment("rest")
    parent = full.create_parent_run(experiment, "rest", {})
    lean_key, full_key = new_run_key(), new_run_key()
    by_lean, by_full = _trial(lean, experiment, parent, lean_key), _trial(full, experiment, parent, full_key)
    assert _seen(full, by_lean) == _seen(full, by_full)
    assert _seen(full, by_lean)["tags"]["mlflow.parentRunId"] == parent
    assert lean.runs_with_key(experiment, lean_key) == [by_lean]


def test_a_duplicate_is_deleted_and_a_write_to_a_deleted_run_is_refused_for_good(mlflow_server):
    tracker = Tracker(mlflow_server, own_retries=True)
    experiment, _ = tracker.ensure_experiment("rest-dup")
    key = new_run_key()
    first = tracker.start_trial_run(experiment, None, "t", {}, {}, run_key=key)
    time.sleep(0.01)  # runs started in the same millisecond have no order
    second = tracker.start_trial_run(experiment, None, "t", {}, {}, run_key=key)
    assert tracker.runs_with_key(experiment, key) == [first, second]  # oldest first
    assert tracker.drop_duplicate_runs(experiment, key, keep=first) == [second]
    assert tracker.runs_with_key(experiment, key) == [first]
    with pytest.raises(TrackingError) as refused:
        tracker.log_metrics(second, {"loss": 1.0}, step=1)
    assert refused.value.permanent
