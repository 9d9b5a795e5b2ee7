"""SLURM's pre-timeout signal reaches a real Keras trial: it checkpoints, and the next task resumes there."""

import re
import subprocess
import time

import pytest

from tests.conftest import run_cli
from tests.integration.test_slurm_cluster import _wait_for_jobs
from tornadostudy.study.handle import StudyHandle
from tornadostudy.tracking import Tracker

pytestmark = [pytest.mark.slurm, pytest.mark.tf, pytest.mark.slow]

# Many short epochs (~0.5 s each on 2 cores): the signal, sent once MLflow shows 3, lands far from the last.
EPOCHS = 40
SPEC = f"""
[study]
name = "preempt"
sampler = "grid"
[data]
storms = 1000
[trainer]
kind = "keras"
jit_compile = false
[training]
num_gpus = 0
learning_rate = 1e-3
[search]
epochs = [{EPOCHS}]
batch_size = [32]
"""


def _submit(env, folder) -> str:
    result = run_cli(
        "submit",
        "preempt",
        "--gpus",
        "0",
        "--array",
        "1",
        "--cpus-per-task",
        "2",
        "--log-dir",
        str(folder / "logs"),
        env=env,
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return re.findall(r"submitted job (\d+)", result.stdout)[0]


def test_usr1_checkpoints_a_keras_trial_and_the_next_task_resumes_at_that_epoch(slurm_cluster, study_env):
    folder, env = study_env
    (folder / "preempt.toml").write_text(SPEC)
    created = run_cli("create", str(folder / "preempt.toml"), env=env, cwd=folder)
    assert created.returncode == 0, created.stderr
    handle = StudyHandle.open("preempt", env["TORNADOSTUDY_STORAGE"])
    tracker = Tracker(env["MLFLOW_TRACKING_URI"])

    job = _submit(env, folder)
    deadline = time.time() + 300
    while time.time() < deadline:
        runs = tracker.trial_runs(handle.experiment_id)
        if runs and len(tracker.metric_history(runs[0].info.run_id, "loss")) >= 3:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(
            "the trial never got going: " + "".join(p.read_text() for p in (folder / "logs").glob("*"))
        )
    # What `--signal=B:USR1@120` does before the time limit, now.
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    _wait_for_jobs([job])

    import optuna

    trials = handle.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL], [t.user_attrs for t in trials]
    reason = trials[0].user_attrs["fail_reason"]
    stopped_at = int(re.search(r"after epoch (\d+), checkpointed", reason).group(1))
    assert 3 <= stopped_at < EPOCHS
    assert (handle.checkpoint_dir(0) / "model.weights.h5").exists()
    row = handle.cells.rows("preempt")[0]
    assert (row["state"], row["attempts"]) == ("waiting", 0)

    _wait_for_jobs([_submit(env, folder)], timeout=600)
    trials = StudyHandle.open("preempt", env["TORNADOSTUDY_STORAGE"]).study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1, [t.user_attrs.get("fail_reason") for t in trials]
    assert done[0].user_attrs["info"]["resumed_from_epoch"] == stopped_at
    run = tracker.client.get_run(done[0].user_attrs["mlflow_run_id"])
    assert run.data.tags["resumed_from_epoch"] == str(stopped_at) and run.info.status == "FINISHED"
    steps = sorted(m.step for m in tracker.metric_history(run.info.run_id, "loss"))
    assert steps == list(range(1, EPOCHS + 1))
