"""Real `sbatch --array` workers on the dev cluster, a real PostgreSQL and a real `mlflow server`."""

import re
import subprocess
import time

import pytest

from tests.conftest import run_cli, write_sim_spec
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import study_status
from tornadostudy.study.storage import resolve_storage_url
from tornadostudy.tracking import Tracker

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.slow]


def _wait_for_jobs(job_ids, timeout=420):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%i", f"--jobs={','.join(job_ids)}"],
            capture_output=True,
            text=True,
        ).stdout
        if not out.strip():
            return
        time.sleep(2)
    subprocess.run(["scancel", *job_ids])
    raise AssertionError(f"jobs {job_ids} still queued after {timeout}s")


def test_submitted_arrays_run_every_cell_once_on_tasks_holding_their_gpus(
    slurm_cluster, postgres_url, mlflow_server, study_env
):
    folder, env = study_env
    spec = write_sim_spec(
        folder, search="num_gpus = [1, 2]\nbatch_size = [64, 128, 256, 512]\nepochs = [1, 2]", time_scale=0.02
    )
    created = run_cli("create", str(spec), "--storage", postgres_url, "--tracking-uri", mlflow_server, env=env)
    assert created.returncode == 0, created.stderr

    dry = run_cli("submit", "sim", "--storage", postgres_url, "--gpus", "1,2", "--array", "6", "--dry-run", env=env)
    assert dry.returncode == 0 and dry.stdout.count("#!/bin/bash") == 2 and "--gres=gpu:2" in dry.stdout

    submitted = run_cli(
        "submit",
        "sim",
        "--storage",
        postgres_url,
        "--gpus",
        "1,2",
        "--array",
        "6",
        "--cpus-per-task",
        "1",
        "--log-dir",
        str(folder / "logs"),
        env=env,
        cwd=folder,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_ids = re.findall(r"submitted job (\d+)", submitted.stdout)
    assert len(job_ids) == 2
    status = run_cli("status", "sim", "--storage", postgres_url, env=env)
    assert status.returncode == 0 and f"slurm job {job_ids[0]}" in status.stdout
    _wait_for_jobs(job_ids)

    logs = sorted((folder / "logs").glob("*.out"))
    assert len(logs) == 12, logs
    handle = StudyHandle.open("sim", resolve_storage_url(postgres_url))
    summary = study_status(handle)
    assert (summary["total_cells"], summary["complete"], summary["duplicates"]) == (16, 16, 0), [
        p.read_text()[-600:] for p in logs
    ]

    tracker = Tracker(mlflow_server)
    runs = tracker.trial_runs(handle.experiment_id)
    assert len(runs) == 16 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        gpus = int(run.data.params["num_gpus"])
        assert len(run.data.tags["gpu_ids"].split(",")) == gpus, "the task held exactly num_gpus fake GPUs"
        assert run.data.tags["slurm_array_job_id"] in job_ids
        assert run.data.tags["slurm_array_task_id"] in {str(i) for i in range(6)}
        expected_job = job_ids[0] if gpus == 1 else job_ids[1]
        assert run.data.tags["slurm_array_job_id"] == expected_job
