"""Killed and presumed-lost workers: heartbeats, reaping, exactly-once completion."""

import json
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import study_status
from tornadostudy.tracking import Tracker
from tornadostudy.tracking.spool import Spool

FAST_BEATS = {"TORNADOSTUDY_HEARTBEAT_S": "0.3", "TORNADOSTUDY_STALE_AFTER_S": "3"}


def _setup(folder, env, **kw):
    spec = load_spec(write_sim_spec(folder, **kw))
    create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    return spec, StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"])


def _wait_running(handle, timeout=60):
    deadline = time.time() + timeout
    while study_status(handle)["running"] == 0:
        assert time.time() < deadline, "no cell started"
        time.sleep(0.2)


def _runs(env, handle):
    return Tracker(env["MLFLOW_TRACKING_URI"]).trial_runs(handle.experiment_id)


@pytest.mark.slow
def test_a_sigkilled_worker_is_reaped_by_status_and_its_cell_runs_again(study_env):
    folder, env = study_env
    env = {**env, **FAST_BEATS}
    spec, handle = _setup(folder, env, search="epochs = [30]\nbatch_size = [128]", time_scale=0.5)
    (victim,) = start_workers(spec.name, 1, {**env, "TORNADOSTUDY_TRACKING_LINGER_S": "0"})
    _wait_running(handle)
    # Killed once its run is made and recorded (the delivery thread makes it after the trial has started).
    deadline = time.time() + 60
    # (The cell is claimed before its trial exists: until then there is no trial to look at.)
    while not any("mlflow_run_id" in t.user_attrs for t in handle.study.get_trials(deepcopy=False)):
        assert time.time() < deadline, "the trial's run was never made"
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    time.sleep(3.5)  # past the stale limit; no other worker is asking for work
    status = json.loads(run_cli("status", spec.name, "--json", env=env).stdout)
    assert (status["running"], status["waiting"]) == (0, 1), status
    import optuna

    trials = handle.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]
    assert trials[0].user_attrs["fail_reason"].startswith("worker lost")
    assert [r.info.status for r in _runs(env, handle)] == ["KILLED"]

    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err[-400:]
    final = study_status(StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]))
    assert (final["complete"], final["duplicates"], final["running"]) == (1, 0, 0)
    runs = _runs(env, handle)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    retry = next(r for r in runs if r.info.status == "FINISHED")
    assert retry.data.tags["retry_of_run"] == next(r.info.run_id for r in runs if r.info.status == "KILLED")
    assert retry.data.tags["retry_of_trial"] == "0"


@pytest.mark.slow
def test_a_worker_with_nothing_left_stays_to_run_again_the_cell_of_a_worker_killed_meanwhile(study_env):
    folder, env = study_env
    # The killed worker's cell turns stale 6 s after its claim: long after the survivor's own short cell is done.
    env = {**env, "TORNADOSTUDY_HEARTBEAT_S": "0.3", "TORNADOSTUDY_STALE_AFTER_S": "6"}
    spec, handle = _setup(folder, env, search="epochs = [2, 40]\nbatch_size = [128]", time_scale=0.3)
    workers = start_workers(spec.name, 2, env)
    deadline = time.time() + 60
    while not (
        long := [
            r
            for r in handle.cells.rows(spec.name)
            if r["state"] == "running" and r["cost"] == max(c["cost"] for c in handle.cells.rows(spec.name))
        ]
    ):
        assert time.time() < deadline, "the long cell never started"
        time.sleep(0.1)
    (victim,) = [w for w in workers if long[0]["worker"].split(":")[1] == str(w.pid)]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    ((code, _, err),) = wait_all([w for w in workers if w is not victim], timeout=120)
    assert code == 0, err[-400:]
    assert "worker lost: no heartbeat" in err, "the survivor stayed and put the killed worker's cell back"
    status = study_status(handle)
    assert (status["complete"], status["running"], status["waiting"]) == (2, 0, 0), status


@pytest.mark.slow
def test_a_worker_presumed_lost_cannot_complete_its_old_cell(study_env):
    """The last line of defence: a worker that never learns its cell was handed on (it sends no heartbeat)
    trains to the end, and its result is refused."""
    folder, env = study_env
    # This worker sends no heartbeats during its trial, so a reaper presumes it lost after 1 s.
    silent = {**env, "TORNADOSTUDY_HEARTBEAT_S": "1000", "TORNADOSTUDY_STALE_AFTER_S": "1"}
    spec, handle = _setup(folder, env, search="epochs = [20]\nbatch_size = [128]", time_scale=1.0)
    (zombie,) = start_workers(spec.name, 1, silent, "--max-trials", "1")
    _wait_running(handle)
    time.sleep(1.5)
    reaped = run_cli("status", spec.name, "--json", env=silent)
    assert json.loads(reaped.stdout)["waiting"] == 1
    ((code, _, err),) = wait_all([zombie])
    assert code == 0, err[-400:]
    import optuna

    trials = handle.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]
    assert "reassigned" in trials[0].user_attrs["fail_reason"] or "lost" in trials[0].user_attrs["fail_reason"]
    assert study_status(handle)["complete"] == 0, "a presumed-lost worker's result is discarded"
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err[-400:]
    status = study_status(handle)
    assert (status["complete"], status["duplicates"]) == (1, 0)
    assert {r.info.status for r in _runs(env, handle)} <= {"FINISHED", "KILLED"}


@pytest.mark.slow
def test_the_spooled_writes_of_a_dead_worker_are_delivered_by_the_next_worker(study_env):
    folder, env = study_env
    spec, handle = _setup(folder, env, search="epochs = [2]\nbatch_size = [128]")
    tracker = Tracker(env["MLFLOW_TRACKING_URI"])
    run_id = tracker.start_trial_run(handle.experiment_id, None, "killed mid-delivery", {}, {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    # What a worker killed with writes not yet delivered leaves behind.
    orphan = Spool.for_this_process(folder / ".tornadostudy" / "spool", uri=env["MLFLOW_TRACKING_URI"])
    orphan.folder = orphan.folder.with_name(f"{socket.gethostname()}-{dead.pid}")
    orphan.append(run_id, {"op": "metrics", "metrics": {"loss": 0.5}, "step": 1, "ts": 1})
    orphan.append(run_id, {"op": "end", "status": "KILLED", "ts": 2})

    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err[-400:]
    assert "adopting the tracking writes" in err
    assert tracker.curve(run_id, "loss") == [(1, 0.5)]
    assert tracker.client.get_run(run_id).info.status == "KILLED"
    assert not list((folder / ".tornadostudy" / "spool").iterdir()), "every spool delivered and removed"


@pytest.mark.slow
def test_a_run_whose_id_was_never_recorded_is_found_by_its_key_and_closed(study_env, monkeypatch):
    from tornadostudy.study.recovery import reap_lost_workers
    from tornadostudy.study.worker import Worker, WorkerOptions

    folder, env = study_env
    spec, handle = _setup(folder, env, search="epochs = [1]\nbatch_size = [128]")
    worker = Worker(WorkerOptions(spec.name, env["TORNADOSTUDY_STORAGE"]))

    def database_away(*args):
        raise RuntimeError("the study database is away")

    def killed_before_reporting(*args):
        raise KeyboardInterrupt("killed before reporting the trial")

    # The delivery thread made the run but could not record its id; then the worker died mid-trial.
    monkeypatch.setattr("tornadostudy.study.records.record_run", database_away)
    monkeypatch.setattr("tornadostudy.study.records.complete_trial", killed_before_reporting)
    with pytest.raises(KeyboardInterrupt):
        worker.run()
    (run,) = _runs(env, handle)
    assert run.info.status == "RUNNING"
    assert "mlflow_run_id" not in handle.study.get_trials(deepcopy=False)[0].user_attrs

    reap_lost_workers(StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]), stale_s=0)
    (run,) = _runs(env, handle)
    assert run.info.status == "KILLED" and run.data.tags["fail_reason"].startswith("worker lost")


@pytest.mark.slow
def test_a_worker_killed_before_its_run_was_made_leaves_it_to_the_next_worker_which_closes_it(study_env):
    """The trial never waited for its run: SIGKILL while the create is still in the spool. The reaper finds
    no run; the next worker adopts the spool, makes the run and closes it as KILLED."""
    folder, env = study_env
    env = {**env, **FAST_BEATS}
    spec, handle = _setup(folder, env, search="epochs = [30]\nbatch_size = [128]", time_scale=0.5)
    (victim,) = start_workers(spec.name, 1, {**env, "TORNADOSTUDY_TRACKING_LINGER_S": "60"})
    _wait_running(handle)
    # The trial is RUNNING in the database a moment before its run's create reaches the spool.
    deadline = time.time() + 30
    while not list((folder / ".tornadostudy" / "spool").glob("*/*.jsonl")):
        assert time.time() < deadline, "the worker spooled no write"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert _runs(env, handle) == []
    time.sleep(3.5)  # past the stale limit
    run_cli("status", spec.name, env=env)

    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err[-400:]
    assert "adopting the tracking writes" in err
    runs = {r.data.tags["trial_number"]: r for r in _runs(env, handle)}
    assert {n: r.info.status for n, r in runs.items()} == {"0": "KILLED", "1": "FINISHED"}
    assert runs["0"].data.tags["fail_reason"] == "its worker was gone before closing the run"
    assert runs["1"].data.tags["retry_of_trial"] == "0" and "retry_of_run" not in runs["1"].data.tags


@pytest.mark.slow
def test_a_worker_whose_cell_is_handed_on_stops_its_trial_within_a_heartbeat(study_env):
    """The cell is handed on while its worker still trains (a reaper presumed it lost): the worker's next
    heartbeat finds the cell is no longer its own, the trial stops at its next batch boundary without writing
    a checkpoint into the cell's folder, its run ends KILLED with the reason, and the worker claims again."""
    from tornadostudy.study.recovery import reap_lost_workers

    folder, env = study_env
    beats = {**env, "TORNADOSTUDY_HEARTBEAT_S": "0.3", "TORNADOSTUDY_STALE_AFTER_S": "300"}
    epochs = 400  # ~0.1 s of sleep per epoch: the whole trial would take minutes
    spec, handle = _setup(folder, env, search=f"epochs = [{epochs}]\nbatch_size = [128]", time_scale=1.0)
    (worker,) = start_workers(spec.name, 1, beats, "--max-trials", "1")
    _wait_running(handle)
    time.sleep(1.0)
    # What a reaper does to a cell whose heartbeat it judged stale: hand it on.
    assert reap_lost_workers(StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]), stale_s=0) == 1
    ((code, _, err),) = wait_all([worker], timeout=120)
    assert code == 0, err[-400:]
    assert "handed on" in err and "stopping its trial" in err
    (run,) = _runs(env, handle)
    assert run.info.status == "KILLED" and run.data.tags["fail_reason"]
    logged = Tracker(env["MLFLOW_TRACKING_URI"]).curve(run.info.run_id, "loss")
    assert len(logged) < epochs / 4, f"it trained on for {len(logged)} epochs after its cell was handed on"
    assert not any(handle.checkpoint_dir(0).glob("*")), "the new owner's checkpoint folder is left alone"
    assert study_status(handle)["waiting"] == 1, "the cell waits for its next worker, its attempt spent"


def test_staleness_is_judged_on_the_database_clock_not_the_workers(tmp_path, monkeypatch):
    """Two workers' clocks disagree by minutes: no live worker is reaped, and no dead one is kept."""
    from tornadostudy.study.cells import CellTable
    from tornadostudy.study.storage import make_engine

    cells = CellTable(make_engine(f"sqlite:///{tmp_path}/c.db"))
    cells.create_schema()
    cells.insert("s", [(0, {"epochs": 1}, None, 1.0), (1, {"epochs": 2}, None, 1.0)])
    real = time.time

    def clock(offset_s):  # this process's clock, as one worker or another would see it
        monkeypatch.setattr(time, "time", lambda: real() + offset_s)

    clock(+600)  # a worker whose clock runs 10 minutes fast claims, and dies
    dead = cells.claim("s", 0, "fast-clock")
    clock(-600)  # a worker whose clock runs 10 minutes slow claims, and lives
    live = cells.claim("s", 0, "slow-clock")
    assert {live.cell, dead.cell} == {0, 1}
    time.sleep(1.2)
    assert cells.heartbeat("s", live.cell, "slow-clock")
    clock(0)  # the reaper's clock is right
    reaped = cells.reap_stale("s", stale_after_s=1.0, max_attempts=3)
    assert [r["cell"] for r in reaped] == [dead.cell]
    assert {r["cell"]: r["state"] for r in cells.rows("s")} == {live.cell: "running", dead.cell: "waiting"}


@pytest.mark.slow
def test_a_trial_whose_worker_died_after_its_cell_completed_is_completed_by_the_reaper(study_env, monkeypatch):
    """The cell is the commit point: a worker killed between completing its cell and its trial leaves a
    complete cell and a RUNNING trial, which a sweep completes from the results on the cell once the cell has been
    complete for the stale interval."""
    import optuna

    from tornadostudy.study.recovery import reap_lost_workers
    from tornadostudy.study.worker import Worker, WorkerOptions

    folder, env = study_env
    spec, handle = _setup(folder, env, search="epochs = [1]\nbatch_size = [128]")
    worker = Worker(WorkerOptions(spec.name, env["TORNADOSTUDY_STORAGE"]))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the cell completed")

    monkeypatch.setattr("tornadostudy.study.records._follow", killed)
    with pytest.raises(KeyboardInterrupt):
        worker.run()
    monkeypatch.undo()
    (trial,) = handle.study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.RUNNING and study_status(handle)["complete"] == 1

    # A look without a sweep reads only the cells table: no cell is stale, so the trial is left for the sweep.
    assert reap_lost_workers(StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]), sweep=False) == 0
    (trial,) = StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]).study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.RUNNING

    # Within the stale interval the cell's worker may still be completing the trial: a sweep leaves it.
    reap_lost_workers(StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]), stale_s=3600.0)
    (trial,) = StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]).study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.RUNNING

    reap_lost_workers(StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]), stale_s=0.0)
    (trial,) = StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]).study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.COMPLETE and len(trial.values) == 1
    assert trial.user_attrs["metrics"]["wall_time_s"] > 0
    assert study_status(handle)["duplicates"] == 0
