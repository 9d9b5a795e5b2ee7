"""Outages mid-study: the tracking server goes away for ≥ 20 s; PostgreSQL restarts. Nothing is lost."""

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import start_workers, wait_all, write_sim_spec
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import study_status
from tornadostudy.study.storage import resolve_storage_url
from tornadostudy.tracking import Tracker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _curves_are_whole(tracker, runs, epochs):
    for run in runs:
        steps = sorted(m.step for m in tracker.metric_history(run.info.run_id, "loss"))
        assert steps == list(range(1, epochs + 1)), (run.info.run_name, steps[:5], len(steps))


def test_tracking_server_outage_spools_and_replays_every_epoch(mlflow_control, postgres_url, study_env):
    folder, env = study_env
    env = {**env, "TORNADOSTUDY_STORAGE": postgres_url, "MLFLOW_TRACKING_URI": mlflow_control.url}
    spec = load_spec(write_sim_spec(folder, search="epochs = [150]\nbatch_size = [64, 128, 256, 512]", time_scale=2.0))
    create_study(spec, resolve_storage_url(postgres_url), mlflow_control.url)
    workers = start_workers(spec.name, 2, env)
    time.sleep(8)
    mlflow_control.stop()
    time.sleep(25)  # workers keep training while MLflow is away
    mlflow_control.start()
    results = wait_all(workers)
    assert [r[0] for r in results] == [0, 0], [r[2][-600:] for r in results]
    assert any("spooling" in r[2] for r in results), "the outage happened while workers were logging"

    handle = StudyHandle.open(spec.name, resolve_storage_url(postgres_url))
    assert (study_status(handle)["complete"], study_status(handle)["duplicates"]) == (4, 0)
    tracker = Tracker(mlflow_control.url)
    runs = tracker.trial_runs(handle.experiment_id)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    _curves_are_whole(tracker, runs, 150)
    assert not any((folder / ".tornadostudy" / "spool").rglob("*.jsonl")), "nothing left in the spool"


def _pg_cluster() -> tuple[str, str] | None:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").exists():
        return None
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    return version, "main"


def test_postgresql_restart_mid_study_loses_no_trial(postgres_url, study_env):
    cluster = _pg_cluster()
    if cluster is None:
        pytest.skip("pg_ctlcluster not available: cannot restart PostgreSQL here")
    folder, env = study_env
    env = {**env, "TORNADOSTUDY_STORAGE": postgres_url}
    spec = load_spec(write_sim_spec(folder, search="epochs = [100]\nbatch_size = [32, 64, 128, 256, 512, 1024]",
                                    time_scale=1.0))  # fmt: skip
    create_study(spec, resolve_storage_url(postgres_url), env["MLFLOW_TRACKING_URI"])
    workers = start_workers(spec.name, 3, env)
    time.sleep(10)
    restart = threading.Thread(target=lambda: subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"], check=True, timeout=120))  # fmt: skip
    restart.start()
    restart.join()
    results = wait_all(workers)
    assert [r[0] for r in results] == [0, 0, 0], [r[2][-600:] for r in results]
    handle = StudyHandle.open(spec.name, resolve_storage_url(postgres_url))
    status = study_status(handle)
    assert (status["complete"], status["failed"], status["duplicates"], status["running"]) == (6, 0, 0, 0)
    tracker = Tracker(env["MLFLOW_TRACKING_URI"])
    runs = [r for r in tracker.trial_runs(handle.experiment_id) if r.info.status == "FINISHED"]
    assert len(runs) == 6
