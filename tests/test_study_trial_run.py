"""A trial's run is made once: a lost create is found again, a late one is dropped when the trial ends."""

import pytest

from tornadostudy.errors import TrackingError
from tornadostudy.study import trial_run as trial_run_module
from tornadostudy.study.trial_run import trial_run
from tornadostudy.tracking import Tracker


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    monkeypatch.setattr(trial_run_module.time, "sleep", lambda s: None)
    return Tracker(f"sqlite:///{tmp_path}/mlflow.db")


def _spoil_creates(tracker, how: list[str]):
    """Make the next creates misbehave in turn: 'lost' (made, answer lost), 'late' (not made now; made
    when the trial's code runs, as a held request reaching the server after the retry)."""
    original, late = tracker.client.create_run, []

    def create_run(*args, **kwargs):
        mode = how.pop(0) if how else "ok"
        if mode == "lost":
            original(*args, **kwargs)
        if mode == "late":
            late.append(lambda: original(*args, **kwargs))
        if mode in ("lost", "late"):
            raise ConnectionError("read timed out")
        return original(*args, **kwargs)

    tracker.client.create_run = create_run
    return late


def test_a_lost_create_is_reused(tracker):
    experiment, _ = tracker.ensure_experiment("s")
    _spoil_creates(tracker, ["lost"])
    with trial_run(tracker, experiment, None, "t", {"epochs": 5}, {}) as run_id:
        pass
    assert [r.info.run_id for r in tracker.trial_runs(experiment)] == [run_id]


def test_a_late_create_is_dropped_when_the_trial_ends_and_the_kept_run_is_the_yielded_one(tracker):
    experiment, _ = tracker.ensure_experiment("s")
    late = _spoil_creates(tracker, ["late"])
    with trial_run(tracker, experiment, None, "t", {"epochs": 5}, {}) as run_id:
        late.pop()()  # the held request arrives while the trial trains
        assert len(tracker.trial_runs(experiment)) == 2
    assert [r.info.run_id for r in tracker.trial_runs(experiment)] == [run_id]


def test_clean_creation_needs_no_look_up(tracker, monkeypatch):
    experiment, _ = tracker.ensure_experiment("s")
    monkeypatch.setattr(tracker, "runs_with_key", lambda *a: pytest.fail("looked up a key without a failed create"))
    with trial_run(tracker, experiment, None, "t", {}, {}):
        pass
    assert len(tracker.trial_runs(experiment)) == 1


def test_creation_gives_up_after_its_budget(tracker):
    experiment, _ = tracker.ensure_experiment("s")
    _spoil_creates(tracker, ["lost"] * 100)
    with pytest.raises(TrackingError, match="create a trial run"):
        trial_run_module.tracking_retry(lambda: tracker.start_trial_run(experiment, None, "t", {}, {}), budget_s=0.0)
