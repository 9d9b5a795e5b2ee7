"""A study survives its users' and its machines' faults: an environment fault charges no cell, a worker
whose trials all fail at once stops, failed cells can be put back, and `status` says why cells failed or ran
again. Real worker processes on SQLite with the simulate trainer (the GPU check: a real Keras worker)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import format_status, study_status

pytestmark = pytest.mark.slow

EIGHT_CELLS = "batch_size = [32, 64, 128, 256, 512, 1024, 2048, 4096]\nepochs = [1]"


def _create(folder, env, **kw):
    spec = load_spec(write_sim_spec(folder, **kw))
    create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    return spec, StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"])


def _untouched(handle, name):
    rows = handle.cells.rows(name)
    assert {(r["state"], r["attempts"]) for r in rows} == {("waiting", 0)}, "no cell was charged"
    assert handle.study.get_trials(deepcopy=False) == [], "no trial was made"


def test_a_missing_data_file_stops_the_worker_before_it_claims(study_env):
    folder, env = study_env
    spec, handle = _create(folder, env, search=EIGHT_CELLS)
    (Path(handle.data_folder) / "test_x.npy").unlink()
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 2, err[-800:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "test_x.npy is missing" in lines[0] and "data prepare" in lines[0], err
    _untouched(handle, spec.name)


def test_a_worker_told_to_bind_a_gpu_it_cannot_see_charges_nothing(study_env):
    pytest.importorskip("tensorflow")
    folder, env = study_env
    (folder / "k.toml").write_text(
        '[study]\nname = "k"\n[data]\nstorms = 200\n[trainer]\nkind = "keras"\n'
        "[training]\nepochs = 1\n[search]\nnum_gpus = [1]\nbatch_size = [128, 256]\n"
    )
    assert run_cli("create", "k.toml", env=env, cwd=folder).returncode == 0
    env_no_gpu = {**env, "CUDA_VISIBLE_DEVICES": "0"}  # a GPU id SLURM might hand out, on a node without one
    ((code, _, err),) = wait_all(start_workers("k", 1, env_no_gpu, gpus=1))
    assert code == 3, err[-800:]
    lines = [line for line in err.splitlines() if line.strip() and "tornadostudy: error:" in line]
    assert len(lines) == 1 and "to bind 1 GPU(s)" in lines[0] and "no cell was charged" in lines[0], err
    _untouched(StudyHandle.open("k", env["TORNADOSTUDY_STORAGE"]), "k")


def test_trials_failing_at_once_stop_the_worker_and_retry_puts_the_cells_back(study_env):
    folder, env = study_env
    spec, handle = _create(folder, env, search=EIGHT_CELLS, fail_probability=0.999, max_attempts=1)
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, {**env, "TORNADOSTUDY_MAX_FAILURES_IN_A_ROW": "3"}))
    assert code == 3, err[-800:]
    assert "3 trials in a row failed before their first epoch" in err and "tornadostudy retry" in err
    status = study_status(handle)
    assert (status["failed"], status["waiting"]) == (3, 5), "the worker stopped instead of failing the grid"
    ((reason, cells),) = status["failed_by_reason"].items()
    assert "simulated failure in epoch 1" in reason and len(cells) == 3
    text = format_status(status)
    assert "failed cells by reason" in text and f"retry {spec.name} --failed" in text

    failed = sorted(cells)
    batch = json.loads(handle.cells.rows(spec.name, {failed[0]})[0]["params"])["batch_size"]
    one = run_cli("retry", spec.name, "--where", f"batch_size={batch}", env=env, cwd=folder)
    assert one.returncode == 0 and f"1 failed cell(s) of study {spec.name} put back" in one.stdout, one.stderr
    rest = run_cli("retry", spec.name, "--failed", env=env, cwd=folder)
    assert rest.returncode == 0 and "2 failed cell(s)" in rest.stdout, rest.stderr
    again = run_cli("retry", spec.name, env=env, cwd=folder)
    assert again.returncode == 0 and "nothing to retry" in again.stdout
    rows = {r["cell"]: r for r in handle.cells.rows(spec.name)}
    assert all(rows[c]["state"] == "waiting" and rows[c]["attempts"] == 0 for c in failed)
    assert all("simulated failure" in rows[c]["last_error"] for c in failed), "the cell keeps its last error"
    trials = handle.study.get_trials(deepcopy=False)
    assert len(trials) == 3 and all(t.state.name == "FAIL" for t in trials), "the failed trials stay"


def test_retry_brings_failed_cells_back_and_the_next_workers_complete_each_once(study_env):
    folder, env = study_env
    spec, handle = _create(folder, env, search=EIGHT_CELLS, fail_probability=0.5, max_attempts=2)
    failures = 0
    for _ in range(8):  # each round: the failed cells back, a worker runs them (a failure draw is per trial)
        ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
        assert code == 0, err[-800:]
        status = study_status(handle)
        if status["failed"] == 0:
            break
        failures += status["failed"]
        assert run_cli("retry", spec.name, "--failed", env=env, cwd=folder).returncode == 0
    assert failures > 0, "some cells failed and were put back"
    assert (status["complete"], status["failed"], status["duplicates"]) == (8, 0, 0)
    trials = handle.study.get_trials(deepcopy=False)
    complete = [t.user_attrs["cell"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(complete) == list(range(8)), "every cell complete exactly once"
    assert sum(t.state.name == "FAIL" for t in trials) >= failures, "the failed trials stay"


def test_a_worker_with_nothing_for_its_gpus_says_so_and_a_done_study_says_nothing_to_do(study_env):
    folder, env = study_env
    spec, handle = _create(folder, env, search="batch_size = [128]")
    ((code, out, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err[-800:]
    ((code, out, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0 and "nothing to do: study sim has 1 complete and 0 failed cells for 0 GPU(s)" in out, out + err
    status = study_status(handle)
    assert "no worker is running" not in format_status(status) and status["eta_s"] is None


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])  # Ctrl-C; kill -TERM <run pid>
def test_run_passes_a_stop_to_its_workers_which_checkpoint_and_none_outlives_it(study_env, stop):
    import signal
    import time

    folder, env = study_env
    spec_path = write_sim_spec(folder, search="epochs = [60]\nbatch_size = [128, 256]", time_scale=1.0)
    run = subprocess.Popen(
        [sys.executable, "-m", "tornadostudy", "run", str(spec_path), "--workers", "2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as a terminal's foreground job: a signal to the group reaches run alone
    )
    handle = None
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            handle = handle or StudyHandle.open("sim", env["TORNADOSTUDY_STORAGE"])
            if study_status(handle)["running"] == 2:
                break
        except Exception:
            pass
        time.sleep(0.5)
    time.sleep(4)  # a few epochs
    workers = subprocess.run(["pgrep", "-f", "tornadostudy worker sim"], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    run.send_signal(getattr(signal, stop))
    out, err = run.communicate(timeout=180)
    assert run.returncode == {"SIGINT": 130, "SIGTERM": 143}[stop], err[-1500:]
    assert f"{stop}: asking 2 worker(s) to stop" in out and "run the same command again" in out, out
    assert "interrupted" not in err and "Traceback" not in err, err
    alive = subprocess.run(["pgrep", "-f", "tornadostudy worker sim"], capture_output=True, text=True).stdout.split()
    assert alive == [], "no worker outlives run"
    rows = handle.cells.rows("sim")
    assert {(r["state"], r["attempts"]) for r in rows} == {("waiting", 0)}
    assert all(handle.checkpoint_dir(r["cell"]).exists() for r in rows), "each trial kept a checkpoint"
    status = study_status(handle)
    assert status["rerun_reasons"] == {} and status["eta_s"] is None
    assert "no worker is running" in format_status(status)

    again = run_cli("run", str(spec_path), "--workers", "2", env=env, cwd=folder)
    assert again.returncode == 0, again.stderr[-1500:]
    trials = [t for t in handle.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert len(trials) == 2 and all(t.user_attrs["info"]["resumed_from_epoch"] > 0 for t in trials)
