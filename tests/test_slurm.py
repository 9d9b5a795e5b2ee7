"""sbatch rendering (pure) and the scheduler wrapper, through a fake runner (real cluster: tests/integration)."""

import subprocess

import pytest

from tornadostudy.cluster.slurm import SbatchJob, Slurm, SlurmError, job_name, render_sbatch
from tornadostudy.errors import UserInputError


def _job(**kw):
    base = dict(
        study="paper-6.1",
        gpus=2,
        array=6,
        python="/env/bin/python",
        log_dir="/scratch/logs",
        storage_url="postgresql+psycopg2://alice@db/studies",
        tracking_uri="http://mlflow:5000",
    )
    return SbatchJob(**{**base, **kw})


def _bash_words(script: str) -> list[str]:
    """What bash would execute for the last line, parsed by bash itself."""
    line = script.strip().splitlines()[-1]
    out = subprocess.run(
        ["bash", "-c", f"set -- {line[len('exec ') :]}; printf '%s\\n' \"$@\""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_one_array_job_per_gpu_count_with_its_directives():
    script = render_sbatch(_job(time="2:00:00", partition="gpu", account="proj-1", extra=("--mem=16G",)))
    for directive in (
        "--job-name=ts-paper-6.1-g2",
        "--array=0-5",
        "--gres=gpu:2",
        "--signal=B:USR1@120",
        "--time=2:00:00",
        "--partition=gpu",
        "--account=proj-1",
        "--mem=16G",
    ):
        assert f"#SBATCH {directive}" in script, directive
    assert "#SBATCH --output=/scratch/logs/%x-%A_%a.out" in script
    assert script.splitlines()[-1].startswith("exec /env/bin/python -m tornadostudy worker paper-6.1 --gpus 2")
    assert "--gres" not in render_sbatch(_job(gpus=0))


def test_names_with_spaces_and_quotes_can_not_break_or_inject():
    evil = "my study 'x\"; rm -rf / #"
    script = render_sbatch(_job(study=evil, python="/opt/my env/bin/python", log_dir="/tmp/log dir"))
    assert _bash_words(script) == ["/opt/my env/bin/python", "-m", "tornadostudy", "worker", evil, "--gpus", "2"]
    assert "#SBATCH --output='/tmp/log dir/%x-%A_%a.out'" in script
    assert "#SBATCH --job-name=ts-my-study-x-rm-rf-g2" in script
    with pytest.raises(UserInputError, match="control characters"):
        render_sbatch(_job(study="a\nrm -rf /"))


def test_passwords_never_reach_a_script():
    script = render_sbatch(
        _job(
            storage_url="postgresql+psycopg2://alice:hunter2@db/s",
            tracking_uri="postgresql+psycopg2://bob:swordfish@db/m",
        )
    )
    assert "hunter2" not in script and "swordfish" not in script
    assert "TORNADOSTUDY_STORAGE=postgresql+psycopg2://alice@db/s" in script


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"array": 0}, "--array"),
        ({"time": "two hours"}, "--time"),
        ({"partition": "gpu;reboot"}, "--partition"),
        ({"extra": ("mem=1G",)}, "--extra"),
    ],
)
def test_bad_options_are_refused(kw, needle):
    with pytest.raises(UserInputError, match=needle):
        _job(**kw)


def test_job_names_are_slugs():
    assert job_name("a b/c", 1) == "ts-a-b-c-g1"
    assert job_name("!!!", 0) == "ts-study-g0"


class FakeRunner:
    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, args, **kwargs):
        self.calls.append((args, kwargs.get("input")))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        code, out, err = answer
        return subprocess.CompletedProcess(args, code, out, err)


def test_submit_sends_the_script_on_stdin_and_parses_the_id():
    runner = FakeRunner((0, "4242;cluster\n", ""))
    assert Slurm(runner).submit("#!/bin/bash\n") == "4242"
    assert runner.calls == [(["sbatch", "--parsable"], "#!/bin/bash\n")]


def test_queue_states_per_task():
    runner = FakeRunner((0, "7_1|RUNNING\n7_2|PENDING\n8_[0-3]|PENDING\n", ""))
    assert Slurm(runner).states(["7", "8"]) == {"7_1": "RUNNING", "7_2": "PENDING", "8_[0-3]": "PENDING"}
    assert runner.calls[0][0][-1] == "--jobs=7,8"
    assert Slurm(FakeRunner()).states([]) == {}


@pytest.mark.parametrize(
    "answer, needle",
    [
        ((1, "", "sbatch: error: Invalid generic resource (gres) specification\n"), "Invalid generic resource"),
        (FileNotFoundError(), "sbatch not found"),
        ((0, "garbage", ""), "not a job id"),
    ],
)
def test_scheduler_errors_are_one_line(answer, needle):
    with pytest.raises(SlurmError, match=needle) as info:
        Slurm(FakeRunner(answer)).submit("x")
    assert "\n" not in str(info.value)


def test_several_workers_per_task_share_its_gpus_and_each_gets_slurms_signal(tmp_path):
    """The rendered script run by bash, with a stand-in worker that records the signals it receives."""
    import os
    import signal
    import time

    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/bash\n"
        "trap 'echo usr1 >> \"$OUT/$$\"; exit 0' USR1\n"
        'echo "$TF_FORCE_GPU_ALLOW_GROWTH $*" > "$OUT/$$"\n'
        "while true; do sleep 0.05; done\n"
    )
    fake.chmod(0o755)
    script = render_sbatch(_job(python=str(fake), workers_per_task=3))
    assert "exec " not in script and "export TF_FORCE_GPU_ALLOW_GROWTH=true" in script
    (tmp_path / "job.sh").write_text(script)
    out = tmp_path / "out"
    out.mkdir()
    job = subprocess.Popen(["bash", str(tmp_path / "job.sh")], env={**os.environ, "OUT": str(out)})
    deadline = time.monotonic() + 60
    while len(list(out.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)  # what SLURM sends the batch shell before the time limit
    assert job.wait(timeout=60) == 0
    records = [p.read_text().splitlines() for p in out.iterdir()]
    assert len(records) == 3
    for lines in records:
        assert lines == ["true -m tornadostudy worker paper-6.1 --gpus 2", "usr1"]


def test_the_task_fails_when_one_of_its_workers_fails(tmp_path):
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\nmkdir "$0.lock" 2>/dev/null && exit 3\nexit 0\n')  # the first worker fails
    fake.chmod(0o755)
    (tmp_path / "job.sh").write_text(render_sbatch(_job(python=str(fake), workers_per_task=3)))
    assert subprocess.run(["bash", str(tmp_path / "job.sh")], timeout=60).returncode == 3


def test_workers_per_task_must_be_positive():
    with pytest.raises(UserInputError, match="--workers-per-task 0"):
        _job(workers_per_task=0)
