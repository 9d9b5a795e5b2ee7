"""A finished study opens in the tools people already use: optuna-dashboard (its HTTP API, as the browser
reads it), optuna.visualization and optuna.importance."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import start_workers, wait_all, write_sim_spec
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle

pytestmark = pytest.mark.slow

GRID = "batch_size = [64, 128, 256]\nlearning_rate = [0.001, 0.01]"


@pytest.fixture
def finished(study_env):
    folder, env = study_env
    spec = load_spec(write_sim_spec(folder, "tools", search=GRID))
    create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    results = wait_all(start_workers(spec.name, 2, env))
    assert [r[0] for r in results] == [0, 0], [r[2][-500:] for r in results]
    return StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"]), env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def test_optuna_dashboard_lists_every_trial_with_its_params_and_values(finished, tmp_path):
    handle, env = finished
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert exe, "optuna-dashboard is installed with the test extra"
    port = _free_port()
    server = subprocess.Popen(
        [exe, env["TORNADOSTUDY_STORAGE"], "--host", "127.0.0.1", "--port", str(port)],
        stdout=(tmp_path / "dashboard.log").open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    try:
        deadline, studies = time.time() + 60, None
        while time.time() < deadline and studies is None:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None, (tmp_path / "dashboard.log").read_text()[-2000:]
        (summary,) = [s for s in studies if s["study_name"] == "tools"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}?after=0")
        trials = detail["trials"]
        complete = [t for t in trials if t["state"] == "Complete"]
        assert len(complete) == 6, [t["state"] for t in trials]
        seen = {(p["name"], p["param_external_value"]) for t in complete for p in t["params"]}
        assert {name for name, _ in seen} == {"batch_size", "learning_rate"}
        assert all(t["values"] and len(t["values"]) == len(handle.spec.objectives) for t in complete)
        by_number = {t.number: t for t in handle.study.get_trials(deepcopy=False)}
        for t in complete:
            assert t["values"] == pytest.approx(by_number[t["number"]].values)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_optunas_visualization_and_importance_read_a_finished_study(finished):
    import optuna

    handle, _ = finished
    study = handle.study
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 6
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    importances = optuna.importance.get_param_importances(study, target=target)
    assert set(importances) == {"batch_size", "learning_rate"}
    assert sum(importances.values()) == pytest.approx(1.0)
    axes = optuna.visualization.matplotlib.plot_optimization_history(study, target=target)
    assert len(axes.collections) >= 1
    axes = optuna.visualization.matplotlib.plot_slice(study, target=target)
    assert axes is not None
