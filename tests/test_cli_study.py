"""The study commands as a user runs them: create / worker / run / status / report."""

import json
import socket
import subprocess

import pytest

from tests.conftest import run_cli, write_sim_spec
from tornadostudy.tracking import Tracker
from tornadostudy.tracking.spool import Spool


@pytest.mark.slow
def test_run_executes_a_whole_study_and_reports(study_env):
    folder, env = study_env
    spec = write_sim_spec(
        folder, search="epochs = [1, 2]\nbatch_size = [128, 256]\ndata_multiplier = [1, 2]", time_scale=0.01
    )
    result = run_cli("run", str(spec), "--workers", "2", env=env, cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "8/8" in result.stdout and "duplicates 0" in result.stdout
    assert "Wall time (s), batch_size × data_multiplier (paper Tables 2–5)" in result.stdout
    status = json.loads(run_cli("status", "sim", "--json", env=env).stdout)
    for key in ("total_cells", "complete", "running", "failed", "waiting", "duplicates"):
        assert key in status
    assert (status["total_cells"], status["complete"], status["duplicates"]) == (8, 8, 0)
    report = run_cli("report", "sim", "--format", "csv", env=env)
    assert report.returncode == 0 and "batch_size,1,2" in report.stdout
    pivot = run_cli("report", "sim", "--rows", "epochs", "--cols", "batch_size", "--value", "test_auc", env=env)
    assert "| epochs \\ batch_size | 128 | 256 |" in pivot.stdout
    again = run_cli("run", str(spec), env=env, cwd=folder)
    assert again.returncode == 0 and "resumed" in again.stdout


@pytest.mark.slow
def test_create_status_and_worker_by_hand(study_env):
    folder, env = study_env
    spec = write_sim_spec(folder)
    created = run_cli("create", str(spec), env=env)
    assert created.returncode == 0 and "study sim created: 2 cells" in created.stdout
    assert json.loads(run_cli("status", "sim", "--json", env=env).stdout)["waiting"] == 2
    worker = run_cli("worker", "sim", "--max-trials", "1", env=env)
    assert worker.returncode == 0 and "1 trials complete" in worker.stdout
    assert json.loads(run_cli("status", "sim", "--json", env=env).stdout)["complete"] == 1
    dup = run_cli("create", str(spec), env=env)
    assert dup.returncode == 2 and "already exists" in dup.stderr and dup.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args, needle",
    [
        (["status", "nope"], "study.db does not exist"),
        (["report", "nope", "--storage", "sqlite:///{folder}/empty.db"], "study 'nope' does not exist"),
        (["worker", "nope", "--storage", "sqlite:///{folder}/other.db"], "study 'nope' does not exist"),
        (["create", "missing.toml"], "no such spec file"),
        (["status", "sim", "--storage", "mongodb://x"], "which tornadostudy does not support"),
        (["status", "sim", "--storage", "postgresql://u:hunter2@127.0.0.1:1/db"], "cannot reach the study database"),
        (["worker", "sim", "--gpus", "-2"], "--gpus -2 is negative"),
        (["report", "sim", "--rows", "epochs"], "--rows, --cols and --value together"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(study_env, args, needle):
    folder, env = study_env
    for name in ("empty.db", "other.db"):  # databases that exist but hold no study
        import sqlite3

        sqlite3.connect(folder / name).close()
    before = sorted(p.name for p in folder.iterdir())
    result = run_cli(*(a.format(folder=folder) for a in args), env=env, cwd=folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_bad_spec_writes_nothing(study_env):
    folder, env = study_env
    spec = folder / "bad.toml"
    spec.write_text('[study]\nname = "x"\n[search]\nbatch_size = [0]\n')
    result = run_cli("create", str(spec), env=env)
    assert result.returncode == 2 and "search.batch_size: 0 is not valid" in result.stderr
    assert not (folder / "study.db").exists() and not (folder / "mlflow.db").exists()


def _finished_study(study_env):
    """A 4-cell simulate study over batch size and epochs, run to the end by one worker."""
    folder, env = study_env
    spec = write_sim_spec(folder, search="batch_size = [128, 256]\nepochs = [1, 2]")
    assert run_cli("create", str(spec), env=env).returncode == 0
    assert run_cli("worker", "sim", env=env).returncode == 0
    return folder, env


@pytest.mark.slow
def test_report_html_latex_and_its_bad_options(study_env):
    folder, env = _finished_study(study_env)
    out = folder / "rep"
    html = run_cli("report", "sim", "--format", "html", "--out", str(out), env=env)
    assert html.returncode == 0, html.stderr
    assert f"wrote {out / 'report.html'}" in html.stdout and "report logged to MLflow run" in html.stdout
    assert (out / "figures" / "curves_by_batch_size.png").exists() and (out / "figures" / "pareto.png").exists()
    latex = run_cli("report", "sim", "--format", "latex", "--metrics", "test_auc,time_to_target_s", env=env)
    assert latex.returncode == 0 and r"\caption{Test ROC AUC, epochs $\times$ batch\_size" in latex.stdout
    for args, needle in [
        (["--metrics", "test_nope"], "--metrics names 'test_nope'"),
        (["--skill", "test_nope"], "--skill 'test_nope' is not a metric"),
        (["--format", "pdf"], "invalid choice: 'pdf'"),
        (["--target", "high"], "invalid float value: 'high'"),
    ]:
        bad = run_cli("report", "sim", "--out", str(folder / "bad"), *args, env=env)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and needle in bad.stderr, bad.stderr
        assert not (folder / "bad").exists()


@pytest.mark.slow
def test_report_without_a_reachable_mlflow_still_writes_everything_else(study_env):
    folder, env = _finished_study(study_env)
    out = folder / "rep"
    away = run_cli("report", "sim", "--out", str(out), "--tracking-uri", "http://127.0.0.1:9", env=env)
    assert away.returncode == 0, away.stderr
    assert "report not logged to MLflow" in away.stdout and "again" in away.stdout
    assert (out / "report.md").exists() and (out / "figures" / "pareto.png").exists()
    assert not (out / "figures" / "curves_by_batch_size.png").exists()
    assert "curves_by_batch_size: no 'accuracy' history" in (out / "report.md").read_text()
    # Printing the tables needs no MLflow at all.
    tables = run_cli("report", "sim", "--tracking-uri", "http://127.0.0.1:9", env=env)
    assert tables.returncode == 0 and "Tables 8–9" in tables.stdout and not tables.stderr.strip()


@pytest.mark.slow
def test_tracking_sync_delivers_the_spools_of_workers_that_are_gone_only(study_env):
    folder, env = study_env
    tracker = Tracker(env["MLFLOW_TRACKING_URI"])
    experiment, _ = tracker.ensure_experiment("s")
    run_id = tracker.start_trial_run(experiment, None, "trial", {}, {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "120"])
    try:
        for pid, step in ((dead.pid, 1), (alive.pid, 2)):
            spool = Spool(folder / ".tornadostudy" / "spool" / f"{socket.gethostname()}-{pid}")
            spool.uri = env["MLFLOW_TRACKING_URI"]
            spool.append(run_id, {"op": "metrics", "metrics": {"loss": float(step)}, "step": step, "ts": step})
        result = run_cli("tracking", "sync", env=env)
    finally:
        alive.kill()
        alive.wait()
    assert result.returncode == 0, result.stderr[-400:]
    assert "1 run(s) delivered, 0 still waiting, 1 live worker(s)" in result.stdout
    assert tracker.curve(run_id, "loss") == [(1, 1.0)], "a live worker's writes are its own to deliver"
