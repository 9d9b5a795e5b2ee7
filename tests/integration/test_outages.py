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
    # ~40 s of training per worker: the server is away (from ~12 s to ~45 s) for most of it, and a worker that
    # finishes before the server is back waits at exit to deliver the rest.
    spec = load_spec(write_sim_spec(folder, search="epochs = [150]\nbatch_size = [64, 128, 256, 512]", time_scale=1.0))
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
    # ~20 s of trials per worker: the restart, 10 s in, comes while every worker is in the middle of its cells.
    spec = load_spec(
        write_sim_spec(folder, search="epochs = [100]\nbatch_size = [32, 64, 128, 256, 512, 1024]", time_scale=0.6)
    )
    create_study(spec, resolve_storage_url(postgres_url), env["MLFLOW_TRACKING_URI"])
    workers = start_workers(spec.name, 3, env)
    time.sleep(10)
    restart = threading.Thread(
        target=lambda: subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"], check=True, timeout=120
        )
    )
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


class _RunCreateSabotage:
    """An HTTP proxy in front of the MLflow server that spoils the first two create_run calls: the first
    reaches the server but its answer is lost; the second is held until after the client gave up and
    tried again, then reaches the server late (and its answer is lost too). Everything else passes."""

    def __init__(self, upstream: str, hold_s: float) -> None:
        import http.client
        import http.server
        import urllib.parse

        target = urllib.parse.urlsplit(upstream)
        sabotage = self
        self.creates = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                nth = 0
                if self.path.endswith("/runs/create"):
                    with sabotage.lock:
                        sabotage.creates += 1
                        nth = sabotage.creates
                if nth == 2:
                    time.sleep(hold_s)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                if nth in (1, 2):
                    self.close_connection = True  # the run exists now; the client never hears of it
                    return
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_lost_or_late_run_creation_answers_make_no_duplicate_run(mlflow_server, postgres_url, study_env):
    folder, env = study_env
    proxy = _RunCreateSabotage(mlflow_server, hold_s=8.0)
    # The worker gives up on an answer after 3 s and tries again 2 s later: the held create reaches the
    # server after that retry looked for it, so only the clean-up at the trial's end can catch it.
    env = {
        **env,
        "TORNADOSTUDY_STORAGE": postgres_url,
        "MLFLOW_TRACKING_URI": proxy.url,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    }
    spec = load_spec(write_sim_spec(folder, search="epochs = [100]\nbatch_size = [64, 128, 256]", time_scale=1.0))
    create_study(spec, resolve_storage_url(postgres_url), mlflow_server)
    try:
        results = wait_all(start_workers(spec.name, 1, env))
    finally:
        proxy.close()
    assert results[0][0] == 0, results[0][2][-800:]
    # The lost and the held creates made runs the worker never heard of: each is found again by its run key
    # (reused) or deleted as a duplicate at the trial's end, however often MLflow's HTTP client re-sent.
    assert proxy.creates >= 4
    log = results[0][2]
    assert "reusing MLflow run" in log or "deleting duplicate MLflow run" in log, log[-3000:]

    handle = StudyHandle.open(spec.name, resolve_storage_url(postgres_url))
    assert study_status(handle)["complete"] == 3
    tracker = Tracker(mlflow_server)
    runs = tracker.trial_runs(handle.experiment_id)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}, [
        (r.info.run_name, r.info.status) for r in runs
    ]
    recorded = {t.user_attrs["mlflow_run_id"] for t in handle.study.get_trials(deepcopy=False)}
    assert recorded == {r.info.run_id for r in runs}
    _curves_are_whole(tracker, runs, 100)
