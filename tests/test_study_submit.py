"""submit planning and job status on a real SQLite study, with a fake scheduler."""

import subprocess

import pytest

from tests.conftest import write_sim_spec
from tornadostudy.cluster.slurm import Slurm
from tornadostudy.cluster.submit import SubmitOptions, gpu_counts, job_status, plan_jobs, submit_study
from tornadostudy.errors import UserInputError
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle


class FakeScheduler:
    def __init__(self):
        self.scripts, self.next_id, self.queue = [], 100, ""

    def __call__(self, args, **kwargs):
        if args[0] == "sbatch":
            self.scripts.append(kwargs["input"])
            self.next_id += 1
            return subprocess.CompletedProcess(args, 0, f"{self.next_id}\n", "")
        return subprocess.CompletedProcess(args, 0, self.queue, "")


@pytest.fixture
def handle(study_env):
    folder, env = study_env
    spec = load_spec(write_sim_spec(folder, search="num_gpus = [1, 2, 4]\nbatch_size = [128, 256]"))
    create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    return StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"])


def test_one_job_per_requested_gpu_count_present(handle, tmp_path):
    assert gpu_counts(handle) == [1, 2, 4]
    jobs = plan_jobs(handle, SubmitOptions(gpus=(1, 2, 3), array=4, log_dir=str(tmp_path)))
    assert [j.gpus for j in jobs] == [1, 2]
    assert "--gres=gpu:2" in jobs[1].script and "--array=0-3" in jobs[1].script
    assert f"MLFLOW_TRACKING_URI={handle.stored_tracking_uri}" in jobs[0].script
    with pytest.raises(UserInputError, match="need 1,2,4 GPU"):
        plan_jobs(handle, SubmitOptions(gpus=(3,), array=4))


def test_submitted_jobs_are_recorded_and_shown(handle, tmp_path):
    scheduler = FakeScheduler()
    slurm = Slurm(scheduler)
    jobs = submit_study(handle, SubmitOptions(gpus=(1, 2, 4), array=3, log_dir=str(tmp_path / "logs")), slurm)
    assert [j.job_id for j in jobs] == ["101", "102", "103"] and len(scheduler.scripts) == 3
    assert (tmp_path / "logs").is_dir()
    scheduler.queue = "101_0|RUNNING\n101_1|RUNNING\n102_[0-2]|PENDING\n103_2|COMPLETING\n"
    status = {j["job_id"]: j for j in job_status(handle, slurm)}
    assert (status["101"]["running"], status["101"]["pending"], status["101"]["done"]) == (2, 0, 1)
    assert (status["102"]["pending"], status["102"]["done"]) == (3, 0)
    assert (status["103"]["running"], status["103"]["done"]) == (1, 2)


def test_a_cpu_array_takes_whole_nodes_and_a_gpu_array_four_cpus_unless_told(study_env, tmp_path):
    folder, env = study_env
    spec = load_spec(write_sim_spec(folder, name="cpu-and-gpu", search="num_gpus = [0, 1]\nbatch_size = [128]"))
    create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    handle = StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"])
    cpu, gpu = plan_jobs(handle, SubmitOptions(gpus=(0, 1), array=2, log_dir=str(tmp_path)))
    # the paper's CPU runs had a whole 36-core node; a GPU task needs a few CPUs for its input pipeline
    assert "#SBATCH --exclusive" in cpu.script and "--cpus-per-task" not in cpu.script
    assert "#SBATCH --cpus-per-task=4" in gpu.script and "--exclusive" not in gpu.script
    told = plan_jobs(handle, SubmitOptions(gpus=(0,), array=2, log_dir=str(tmp_path), cpus_per_task=8))
    assert "#SBATCH --cpus-per-task=8" in told[0].script and "--exclusive" not in told[0].script
