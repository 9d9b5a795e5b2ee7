"""The tracking wrapper's settings and writes, against a local MLflow store."""

import pytest

from tornadostudy.errors import TrackingError
from tornadostudy.tracking import RUN_KEY_TAG, Tracker, merge_writes, new_run_key
from tornadostudy.tracking.spool import Spool
from tornadostudy.tracking.tracker import _pool_settings


@pytest.mark.parametrize(
    "given, expected",
    [
        (
            {},
            {
                "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "1",
                "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "2",
                "MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE": "300",
            },
        ),
        ({"TORNADOSTUDY_DB_POOL": "0"}, {"TORNADOSTUDY_DB_POOL": "0", "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}),
        # A pool class of the user's own must not be combined with pool sizes (MLflow would refuse to start).
        ({"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}, {"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}),
    ],
)
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


def test_a_create_whose_answer_was_lost_is_reused_not_made_twice(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    experiment, _ = tracker.ensure_experiment("s")
    original = tracker.client.create_run

    def create_then_lose_the_answer(*args, **kwargs):
        original(*args, **kwargs)
        raise ConnectionError("read timed out")

    tracker.client.create_run = create_then_lose_the_answer
    key = new_run_key()
    with pytest.raises(TrackingError):
        tracker.start_trial_run(experiment, None, "trial", {"batch_size": 128}, {}, run_key=key)
    tracker.client.create_run = original
    run_id = tracker.start_trial_run(experiment, None, "trial", {"batch_size": 128}, {}, run_key=key, reuse=True)
    runs = tracker.trial_runs(experiment)
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].data.params == {"batch_size": "128"} and runs[0].data.tags[RUN_KEY_TAG] == key
    # Another trial's key finds nothing, so its retry creates its own run.
    other = tracker.start_trial_run(experiment, None, "trial 2", {}, {}, run_key=new_run_key(), reuse=True)
    assert other != run_id and len(tracker.trial_runs(experiment)) == 2


def test_runs_made_late_under_the_same_key_are_dropped_keeping_the_recorded_one(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    experiment, _ = tracker.ensure_experiment("s")
    key = new_run_key()
    kept = tracker.start_trial_run(experiment, None, "trial", {}, {}, run_key=key)
    late = tracker.start_trial_run(experiment, None, "trial", {}, {}, run_key=key)  # the held create arriving
    unrelated = tracker.start_trial_run(experiment, None, "other", {}, {}, run_key=new_run_key())
    assert tracker.drop_duplicate_runs(experiment, key, keep=kept) == [late]
    assert {r.info.run_id for r in tracker.trial_runs(experiment)} == {kept, unrelated}
    with pytest.raises(TrackingError, match="not alphanumeric"):
        tracker.runs_with_key(experiment, "x' OR '1'='1")


def test_background_delivery_writes_a_whole_trial_run_and_leaves_no_spool(tmp_path):
    spool = Spool(tmp_path / "spool" / "me")
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", spool=spool)
    experiment, _ = tracker.ensure_experiment("s")
    run_id = tracker.start_trial_run(experiment, None, "trial", {"batch_size": 128}, {"cell": 3})
    for epoch in (1, 2, 3):
        assert tracker.log_metrics(run_id, {"loss": 1.0 / epoch}, step=epoch)
    tracker.log_final(run_id, {"test_auc": 0.8}, {"info.trainer": "simulate"})
    tracker.end_run(run_id, "FINISHED")
    assert tracker.close(wait_s=60) == []
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"batch_size": "128"}
    assert tracker.curve(run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    assert run.data.tags["info.trainer"] == "simulate" and not spool.folder.exists()


def test_a_write_mlflow_refuses_is_permanent_and_an_unreachable_server_is_not(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(TrackingError) as refused:
        tracker.log_metrics("0" * 32, {"loss": 1.0}, step=1)  # no such run
    assert refused.value.permanent
    away = Tracker("http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(TrackingError) as unreachable:
        away.log_metrics("0" * 32, {"loss": 1.0}, step=1)
    assert not unreachable.value.permanent


def test_waiting_writes_are_merged_in_order_into_one_call_between_creates_and_ends():
    trial = [
        {"op": "params", "params": {"a": "1"}},
        {"op": "metrics", "metrics": {"loss": 1.0}, "step": 1, "ts": 1},
        {"op": "metrics", "metrics": {"auc": 0.8}, "step": 0, "ts": 2, "tags": {"t": "x"}},
        {"op": "end", "status": "FINISHED", "ts": 3},
    ]
    tags = [{"op": "tags", "tags": {f"k{i}": "v"}} for i in range(150)]
    assert [len(group) for group in merge_writes(trial + tags)] == [3, 1, 150], "MlflowClient splits big batches"
    assert [op for group in merge_writes(trial + tags) for op in group] == trial + tags


def test_a_batch_over_mlflows_limits_arrives_whole(tmp_path):
    """150 tags and 1,200 metrics in one merged call: MLflow's client splits it into calls MLflow accepts."""
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    experiment, _ = tracker.ensure_experiment("s")
    run_id = tracker.start_trial_run(experiment, None, "trial", {"batch_size": 128}, {})
    writes = [{"op": "tags", "tags": {f"k{i}": "v"}} for i in range(150)]
    writes.append({"op": "history", "entries": [[s, "loss", float(s)] for s in range(1200)], "ts": 1})
    (group,) = merge_writes(writes)
    tracker._apply(run_id, {"op": "batch", "ops": group})
    run = tracker.client.get_run(run_id)
    assert sum(k.startswith("k") for k in run.data.tags) == 150
    assert len(tracker.curve(run_id, "loss")) == 1200


def test_a_trial_that_waited_for_mlflow_arrives_in_two_calls_as_if_written_one_by_one(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", spool=Spool(tmp_path / "spool"))
    experiment, _ = tracker.ensure_experiment("s")
    run_id = tracker.start_trial_run(experiment, None, "trial", {"batch_size": 128}, {"cell": 3})
    log_batch, set_terminated = tracker.client.log_batch, tracker.client.set_terminated

    def away(*args, **kwargs):
        raise ConnectionError("server away")

    tracker.client.log_batch = tracker.client.set_terminated = away
    for epoch in (1, 2, 3):
        tracker.log_metrics(run_id, {"loss": 1.0 / epoch}, step=epoch)
    tracker.set_tags(run_id, {"note": "first"})
    tracker.log_final(run_id, {"test_auc": 0.8}, {"note": "last"})
    tracker.end_run(run_id, "FINISHED")
    calls = []
    tracker.client.log_batch = lambda *a, **k: calls.append("log_batch") or log_batch(*a, **k)
    tracker.client.set_terminated = lambda *a, **k: calls.append("end") or set_terminated(*a, **k)
    assert tracker.flush() == [] and calls == ["log_batch", "end"]
    run = tracker.client.get_run(run_id)
    assert tracker.curve(run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    assert run.data.metrics["test_auc"] == 0.8 and run.data.params == {"batch_size": "128"}
    assert run.data.tags["note"] == "last" and run.info.status == "FINISHED"


def test_a_worker_syncs_its_spool_to_disk_when_a_trial_ends_not_at_every_write(tmp_path, monkeypatch):
    import json
    import os
    from pathlib import Path

    from tornadostudy.tracking import spool as spool_module

    synced = []  # the write each sync made durable (with every earlier one of its run's file)

    def fsync(fd: int) -> None:
        last = json.loads(Path(os.readlink(f"/proc/self/fd/{fd}")).read_text().splitlines()[-1])
        synced.append((last["op"], last.get("step")))

    monkeypatch.setattr(spool_module.os, "fsync", fsync)
    spool = Spool(tmp_path / "spool" / "me")
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", spool=spool)
    run_id = tracker.start_trial_run(tracker.ensure_experiment("s")[0], None, "trial", {"batch_size": 128}, {})
    for epoch in (1, 2, 3):
        assert tracker.log_metrics(run_id, {"loss": 1.0 / epoch}, step=epoch)
    assert synced == [], "an epoch's write is in the file (it survives a kill) but not synced"
    tracker.log_final(run_id, {"test_auc": 0.8}, {"info.trainer": "simulate"})
    tracker.end_run(run_id, "FINISHED")
    assert synced == [("metrics", 0), ("end", None)]
    assert tracker.close(wait_s=60) == [] and tracker.curve(run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
