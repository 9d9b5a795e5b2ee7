"""SLURM: render sbatch scripts (a pure function) and talk to the scheduler (one subprocess wrapper).

Every value that reaches the shell part of a script is ``shlex.quote``-d; ``#SBATCH`` directives are
built from validated values only (the job name is a slug of the study name), so study names or paths
with spaces or quotes can neither break nor inject into a script. Secrets never reach a script: a
database password is stripped from the URL and must come from ``PGPASSWORD``/``~/.pgpass`` at run time.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tornadostudy.errors import TornadoStudyError, UserInputError
from tornadostudy.urls import strip_password

__all__ = ["SbatchJob", "Slurm", "SlurmError", "job_name", "render_sbatch"]

# Seconds before the time limit at which SLURM sends USR1 to the batch shell (which execs the worker),
# so the worker can give its trial back (and, later, checkpoint) before SIGKILL.
PRE_TIMEOUT_SIGNAL_S = 120
_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$|^\d+$")
_SAFE_DIRECTIVE = re.compile(r"^[A-Za-z0-9_.,:/=@%+-]+$")


class SlurmError(TornadoStudyError):
    """sbatch/squeue failed or is missing."""


def job_name(study: str, gpus: int) -> str:
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9_.-]+", "-", study)).strip("-")[:40] or "study"
    return f"ts-{slug}-g{gpus}"


@dataclass(frozen=True)
class SbatchJob:
    study: str
    gpus: int
    array: int
    python: str
    log_dir: str
    storage_url: str
    tracking_uri: str | None = None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    cpus_per_task: int | None = 1  # None: the whole node (--exclusive), as the paper's CPU runs
    extra: tuple[str, ...] = field(default_factory=tuple)
    # Worker processes per array task, sharing its GPUs (for trials too small to fill a GPU).
    workers_per_task: int = 1
    db_pool: int | None = None  # TORNADOSTUDY_DB_POOL for the workers (None: their default)

    def __post_init__(self) -> None:
        if any(ord(c) < 32 for c in self.study):
            raise UserInputError(f"study name {self.study!r} has control characters: rename the study")
        if self.workers_per_task < 1:
            raise UserInputError(f"--workers-per-task {self.workers_per_task}: give ≥ 1 worker process per task")
        if self.array < 1:
            raise UserInputError(f"--array {self.array}: give the number of array tasks, ≥ 1")
        if self.time is not None and not _TIME.match(self.time):
            raise UserInputError(f"--time {self.time!r} is not a SLURM time: use e.g. 2:00:00 or 1-00:00:00")
        for option, value in (("--partition", self.partition), ("--account", self.account)):
            if value is not None and not _SAFE_DIRECTIVE.match(value):
                raise UserInputError(f"{option} {value!r} has characters SLURM does not allow in names")
        for item in self.extra:
            if not item.startswith("--") or "\n" in item:
                raise UserInputError(f"--extra {item!r}: give sbatch options such as --mem=8G or --qos=short")


def render_sbatch(job: SbatchJob) -> str:
    """The sbatch script for one array job of ``job.gpus`` GPUs per task (pure: no I/O)."""
    q = shlex.quote
    directives = [
        f"--job-name={job_name(job.study, job.gpus)}",
        f"--array=0-{job.array - 1}",
        f"--cpus-per-task={job.cpus_per_task}" if job.cpus_per_task else "--exclusive",
        f"--signal=B:USR1@{PRE_TIMEOUT_SIGNAL_S}",
        "--output=" + q(f"{job.log_dir}/%x-%A_%a.out"),
    ]
    if job.gpus:
        directives.append(f"--gres=gpu:{job.gpus}")
    for option, value in (("partition", job.partition), ("time", job.time), ("account", job.account)):
        if value is not None:
            directives.append(f"--{option}={value}")
    directives += [q(item) for item in job.extra]
    env = [f"export TORNADOSTUDY_STORAGE={q(strip_password(job.storage_url))}"]
    if job.tracking_uri:
        env.append(f"export MLFLOW_TRACKING_URI={q(strip_password(job.tracking_uri))}")
    if job.db_pool is not None:
        env.append(f"export TORNADOSTUDY_DB_POOL={int(job.db_pool)}")
    command = " ".join(
        q(part) for part in [job.python, "-m", "tornadostudy", "worker", job.study, "--gpus", str(job.gpus)]
    )
    head = [
        "#!/bin/bash",
        f"# tornadostudy worker array for study {json.dumps(job.study)}, {job.gpus} GPU(s) per task",
        *(f"#SBATCH {d}" for d in directives),
        "set -eu",
        *env,
    ]
    if job.workers_per_task == 1:
        body = [
            "# exec: SLURM's signals (USR1 before the time limit, TERM on scancel) reach the worker itself.",
            f"exec {command}",
        ]
    else:
        body = _shared_gpu_body(command, job.workers_per_task)
    return "\n".join([*head, *body, ""])


def _shared_gpu_body(command: str, workers: int) -> list[str]:
    """``workers`` worker processes on the same GPUs; SLURM's signals are forwarded to every one."""
    return [
        f"# {workers} workers share this task's GPUs: each takes GPU memory as it needs it.",
        "export TF_FORCE_GPU_ALLOW_GROWTH=true",
        "pids=()",
        f"for _ in $(seq {workers}); do {command} & pids+=($!); done",
        'forward() { kill -s "$1" "${pids[@]}" 2>/dev/null || true; }',
        "trap 'forward USR1' USR1",
        "trap 'forward TERM' TERM",
        "status=0",
        "# A trapped signal interrupts wait: wait again until each worker has really exited.",
        'for pid in "${pids[@]}"; do',
        "  while true; do",
        '    rc=0; wait "$pid" || rc=$?',
        '    if [ "$rc" -eq 0 ] || ! kill -0 "$pid" 2>/dev/null; then break; fi',
        "  done",
        '  if [ "$rc" -gt "$status" ]; then status=$rc; fi',
        "done",
        'exit "$status"',
    ]


Runner = Callable[..., subprocess.CompletedProcess]


class Slurm:
    """The scheduler, through one subprocess wrapper (swap ``runner`` to unit-test)."""

    def __init__(self, runner: Runner = subprocess.run) -> None:
        self.runner = runner

    def _run(self, args: Sequence[str], stdin: str | None = None) -> str:
        try:
            result = self.runner(list(args), input=stdin, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise SlurmError(
                f"{args[0]} not found: run this on a SLURM login node (or start slurm/dev-cluster.sh)"
            ) from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{args[0]} did not answer within 60 s: is slurmctld up?") from None
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise SlurmError(f"{args[0]} failed: {message[-1] if message else f'exit code {result.returncode}'}")
        return result.stdout

    def submit(self, script: str) -> str:
        """Submit a script on stdin; returns the job id."""
        out = self._run(["sbatch", "--parsable"], stdin=script).strip()
        job_id = out.split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {out!r}, not a job id")
        return job_id

    def states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """State of every queued task of the given jobs ("123_4" → "RUNNING"); finished tasks are absent."""
        if not job_ids:
            return {}
        out = self._run(["squeue", "--noheader", "--array", "--format=%i|%T", f"--jobs={','.join(job_ids)}"])
        states = {}
        for line in out.splitlines():
            if "|" in line:
                task, state = line.strip().split("|", 1)
                states[task] = state
        return states

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self._run(["scancel", *job_ids])
