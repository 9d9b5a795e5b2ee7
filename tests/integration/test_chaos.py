"""Chaos: 12 workers on PostgreSQL with an MLflow server; a quarter SIGKILLed at random moments,
PostgreSQL restarted once, the MLflow server away for ≥ 20 s. Nothing may be lost, repeated or left alive."""

import random
import signal
import subprocess
import threading
import time

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec
from tests.integration.test_outages import _pg_cluster
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import study_status
from tornadostudy.study.storage import resolve_storage_url
from tornadostudy.tracking import Tracker, trial_run_key

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EPOCHS = 40


def test_chaos(mlflow_control, postgres_url, study_env):
    cluster = _pg_cluster()
    if cluster is None:
        pytest.skip("pg_ctlcluster not available: cannot restart PostgreSQL here")
    folder, env = study_env
    env = {
        **env,
        "TORNADOSTUDY_STORAGE": postgres_url,
        "MLFLOW_TRACKING_URI": mlflow_control.url,
        "TORNADOSTUDY_HEARTBEAT_S": "1",
        "TORNADOSTUDY_STALE_AFTER_S": "8",
    }
    search = f"epochs = [{EPOCHS}]\nbatch_size = [32, 64, 128, 256, 512, 1024]\ndata_multiplier = [1, 2, 4]"
    spec = load_spec(write_sim_spec(folder, search=search, time_scale=0.3, max_attempts=5))
    create_study(spec, resolve_storage_url(postgres_url), mlflow_control.url)
    storage = resolve_storage_url(postgres_url)

    workers = start_workers(spec.name, 12, env)
    rng = random.Random(7)
    victims = rng.sample(workers, 3)
    kill_times = sorted(rng.uniform(6, 30) for _ in victims)

    def chaos():
        start = time.time()
        events = [(t, "kill", v) for t, v in zip(kill_times, victims, strict=True)]
        events += [(10, "pg-restart", None), (14, "mlflow-stop", None), (40, "mlflow-start", None)]
        for at, what, victim in sorted(events, key=lambda e: e[0]):
            time.sleep(max(0.0, at - (time.time() - start)))
            if what == "kill":
                victim.send_signal(signal.SIGKILL)
            elif what == "pg-restart":
                subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"], check=True)
            elif what == "mlflow-stop":
                mlflow_control.stop()
            else:
                mlflow_control.start()

    agent = threading.Thread(target=chaos)
    agent.start()
    agent.join()
    survivors = [w for w in workers if w not in victims]
    results = wait_all(survivors, timeout=900)
    for victim in victims:
        victim.wait(timeout=30)
    assert [r[0] for r in results] == [0] * len(survivors), [r[2][-600:] for r in results if r[0]]

    # Whatever a killed worker could not deliver is delivered by the documented command.
    run_cli("tracking", "sync", env=env, cwd=folder)
    time.sleep(9)  # past the stale limit: a status call reaps anything a killed worker left running
    run_cli("status", spec.name, env=env, cwd=folder)
    run_cli("tracking", "sync", env=env, cwd=folder)

    import optuna

    handle = StudyHandle.open(spec.name, storage)
    status = study_status(handle)
    assert (status["complete"], status["duplicates"], status["failed"]) == (18, 0, 0), status
    trials = handle.study.get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs["cell"] for t in complete) == list(range(18))

    tracker = Tracker(mlflow_control.url)
    runs = tracker.trial_runs(handle.experiment_id)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    by_id, by_key = {r.info.run_id: r for r in runs}, tracker.runs_by_key(handle.experiment_id)
    for trial in complete:
        # A worker killed before its delivery thread made the run leaves the id unrecorded: found by key.
        run = by_id[by_key[trial_run_key(handle.study_id, trial.number)]]
        assert trial.user_attrs.get("mlflow_run_id", run.info.run_id) == run.info.run_id
        assert run.info.status == "FINISHED"
        steps = sorted(m.step for m in tracker.metric_history(run.info.run_id, "loss"))
        assert steps == list(range(1, EPOCHS + 1)), (trial.number, len(steps))
