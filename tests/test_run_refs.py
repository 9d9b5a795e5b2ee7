"""A trial's run is made by whoever delivers its writes, exactly once, without the trial waiting for it."""

import pytest

from tornadostudy.errors import TrackingError
from tornadostudy.tracking import RUN_KEY_TAG, Tracker, close_abandoned_runs, new_run_key
from tornadostudy.tracking.run_refs import parse_ref, run_ref
from tornadostudy.tracking.spool import Spool


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db"


def _spoil_creates(tracker, how: list[str]):
    """Make the next creates misbehave in turn: 'lost' (made, answer lost), 'late' (not made now; made when
    the test says, as a held request reaching the server after the retry), 'down' (not made)."""
    original, late = tracker.client.create_run, []

    def create_run(*args, **kwargs):
        mode = how.pop(0) if how else "ok"
        if mode == "lost":
            original(*args, **kwargs)
        if mode == "late":
            late.append(lambda: original(*args, **kwargs))
        if mode in ("lost", "late", "down"):
            raise ConnectionError("read timed out")
        return original(*args, **kwargs)

    tracker.client.create_run = create_run
    return late


def _trial(tracker, experiment, made=None):
    ref = tracker.open_trial_run(
        experiment,
        None,
        "b128 #0",
        {"epochs": 2},
        {"cell": 3},
        run_key=new_run_key(),
        on_made=made.append if made is not None else None,
    )
    tracker.log_metrics(ref, {"loss": 0.5}, step=1)
    tracker.log_metrics(ref, {"loss": 0.4}, step=2)
    tracker.end_run(ref, "FINISHED")
    return ref


def test_refs_name_an_experiment_and_a_key_and_refuse_anything_else():
    key = new_run_key()
    assert parse_ref(run_ref("12", key)) == ("12", key)
    assert parse_ref("0123abcd") is None  # a plain run id
    with pytest.raises(TrackingError, match="cannot name a run"):
        run_ref("1", "x' OR '1'='1")


def test_while_mlflow_is_away_the_trial_goes_on_and_its_run_is_made_when_it_is_back(tmp_path, uri):
    tracker = Tracker(uri, spool=Spool(tmp_path / "spool"))
    experiment, _ = tracker.ensure_experiment("s")
    outage = ["down"] * 10
    _spoil_creates(tracker, outage)
    made = []
    ref = _trial(tracker, experiment, made)
    assert tracker.run_id(ref) is None and made == []  # nothing made, everything spooled in order
    assert [op["op"] for op in tracker.spool.writes(ref)] == ["create", "params", "metrics", "metrics", "end"]
    outage.clear()  # MLflow is back
    assert tracker.flush() == []
    [run] = tracker.trial_runs(experiment)
    assert made == [run.info.run_id] == [tracker.run_id(ref)]
    assert run.info.status == "FINISHED" and run.data.params == {"epochs": "2"} and run.data.tags["cell"] == "3"
    assert run.data.tags[RUN_KEY_TAG] == parse_ref(ref)[1]
    assert tracker.curve(run.info.run_id, "loss") == [(1, 0.5), (2, 0.4)]


def test_a_lost_create_is_found_again_not_made_twice(tmp_path, uri):
    tracker = Tracker(uri, spool=Spool(tmp_path / "spool"))
    experiment, _ = tracker.ensure_experiment("s")
    _spoil_creates(tracker, ["lost"])
    ref = _trial(tracker, experiment)
    assert tracker.flush() == []
    assert [r.info.run_id for r in tracker.trial_runs(experiment)] == [tracker.run_id(ref)]


def test_a_late_create_is_dropped_before_the_run_is_closed_keeping_the_recorded_one(tmp_path, uri):
    tracker = Tracker(uri, spool=Spool(tmp_path / "spool"))
    experiment, _ = tracker.ensure_experiment("s")
    late = _spoil_creates(tracker, ["late"])
    made = []
    ref = tracker.open_trial_run(experiment, None, "t", {}, {}, run_key=new_run_key(), on_made=made.append)
    tracker.log_metrics(ref, {"loss": 0.5}, step=1)
    assert tracker.flush() == []  # the retry looked, found nothing, made the run
    late.pop()()  # the held request arrives while the trial trains
    assert len(tracker.trial_runs(experiment)) == 2
    tracker.end_run(ref, "FINISHED")
    assert tracker.flush() == []
    [run] = tracker.trial_runs(experiment)
    assert made == [run.info.run_id] and run.info.status == "FINISHED"


def test_a_clean_creation_looks_nothing_up(uri, monkeypatch):
    tracker = Tracker(uri)
    experiment, _ = tracker.ensure_experiment("s")
    monkeypatch.setattr(tracker, "runs_with_key", lambda *a: pytest.fail("looked up a key without a failed create"))
    tracker.runs._find = tracker.runs_with_key
    _trial(tracker, experiment)
    assert [r.info.status for r in tracker.trial_runs(experiment)] == ["FINISHED"]


def test_background_delivery_makes_the_run_after_the_trial_has_gone_on(tmp_path, uri, monkeypatch):
    monkeypatch.setenv("TORNADOSTUDY_TRACKING_LINGER_S", "0")
    tracker = Tracker(uri, spool=Spool(tmp_path / "spool" / "me"))
    experiment, _ = tracker.ensure_experiment("s")
    made = []
    ref = _trial(tracker, experiment, made)
    assert tracker.close(wait_s=30) == []
    [run] = tracker.trial_runs(experiment)
    assert made == [run.info.run_id] and run.info.status == "FINISHED"
    assert tracker.curve(run.info.run_id, "loss") == [(1, 0.5), (2, 0.4)] and tracker.run_id(ref) == made[0]


def test_a_dead_workers_spool_is_delivered_and_its_unclosed_runs_are_killed(tmp_path, uri):
    """One run was made before its worker died (its later writes wait), one was never made; a third was
    closed by the worker. The adopter finds the first by its key, makes the second, closes both as KILLED."""
    dead = Tracker(uri)  # made its runs at once; its later writes wait in its spool
    spool = Spool(tmp_path / "spool" / "gone")
    experiment, _ = dead.ensure_experiment("s")
    made_early = dead.open_trial_run(experiment, None, "made", {}, {}, run_key=new_run_key())
    finished = dead.open_trial_run(experiment, None, "finished", {}, {}, run_key=new_run_key())
    spool.append(made_early, {"op": "metrics", "metrics": {"loss": 0.5}, "step": 1, "ts": 1})
    never_made = run_ref(experiment, new_run_key())
    spool.append(
        never_made,
        {
            "op": "create",
            "run_name": "never made",
            "tags": {"tornadostudy.role": "trial", RUN_KEY_TAG: parse_ref(never_made)[1]},
            "ts": 1,
        },
    )
    spool.append(finished, {"op": "end", "status": "FINISHED", "ts": 2})

    assert close_abandoned_runs(spool) == 2
    adopter = Tracker(uri, spool=spool)
    assert adopter.flush() == []
    runs = {r.info.run_name: r for r in adopter.trial_runs(experiment)}
    assert {name: r.info.status for name, r in runs.items()} == {
        "made": "KILLED",
        "never made": "KILLED",
        "finished": "FINISHED",
    }
    assert runs["made"].data.tags["fail_reason"] == "its worker was gone before closing the run"
    assert adopter.curve(runs["made"].info.run_id, "loss") == [(1, 0.5)]
    assert adopter.runs_by_key(experiment)[parse_ref(never_made)[1]] == runs["never made"].info.run_id


def test_writes_to_a_run_that_was_never_made_are_set_aside_not_retried_forever(tmp_path, uri):
    tracker = Tracker(uri, spool=Spool(tmp_path / "spool"))
    experiment, _ = tracker.ensure_experiment("s")
    orphan = run_ref(experiment, new_run_key())  # its create was refused for good and set aside
    tracker.spool.append(orphan, {"op": "end", "status": "FINISHED", "ts": 1})
    assert tracker.flush() == []
    assert (tracker.spool.folder / f"{orphan}.rejected").exists()
