"""``tornadostudy submit``: one ``sbatch --array`` job per GPU count present in the study."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tornadostudy.cluster.slurm import SbatchJob, Slurm, render_sbatch
from tornadostudy.errors import UserInputError
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.jobs import JobTable

__all__ = [
    "SubmitOptions",
    "SubmittedJob",
    "gpu_counts",
    "job_status",
    "plan_jobs",
    "reachability_warnings",
    "submit_study",
    "tracking_uri_for",
]

log = logging.getLogger(__name__)


GPU_TASK_CPUS = 4  # CPUs per GPU task unless --cpus-per-task: input pipeline and host work of a GPU trial


@dataclass(frozen=True)
class SubmitOptions:
    gpus: tuple[int, ...]
    array: int
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()
    log_dir: str = "slurm-logs"
    tracking_uri: str | None = None
    # None: 4 CPUs for a GPU task; a whole node (--exclusive) for a CPU task, as the paper's CPU runs had.
    cpus_per_task: int | None = None
    workers_per_task: int = 1


@dataclass(frozen=True)
class SubmittedJob:
    gpus: int
    script: str
    job_id: str | None = None


def tracking_uri_for(handle: StudyHandle, opts: SubmitOptions) -> str | None:
    """The tracking URI the array tasks get: ``--tracking-uri`` > the study's > ``MLFLOW_TRACKING_URI``."""
    return opts.tracking_uri or handle.stored_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")


def reachability_warnings(storage_url: str, tracking_uri: str | None) -> list[str]:
    """What array tasks on other nodes may not reach: a SQLite file (one machine's disk, and SQLite's locks
    do not hold over NFS) or a server on localhost (each node's own)."""
    from urllib.parse import urlsplit

    warnings = []
    for what, url in (("study database", storage_url), ("MLflow tracking URI", tracking_uri or "")):
        if url.startswith("sqlite") or url.startswith("file:") or (url and "://" not in url):
            warnings.append(
                f"the {what} is a local file ({url.split('?')[0]}): tasks on other nodes cannot share it; "
                "use a PostgreSQL server" + (" or an MLflow server" if what.startswith("MLflow") else "")
            )
        elif "://" in url and (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1"):
            warnings.append(
                f"the {what} names {urlsplit(url).hostname}: on a compute node that is the node itself, not this "
                "machine; use the server's host name"
            )
    return warnings


def gpu_counts(handle: StudyHandle) -> list[int]:
    """The GPU counts the study's unfinished cells ask for (None = any: the spec's constant)."""
    counts = {r["num_gpus"] for r in handle.cells.rows(handle.name) if r["state"] in ("waiting", "running")}
    return sorted(handle.spec.constants.get("num_gpus", 0) if c is None else c for c in counts)


def connections_fit(handle: StudyHandle, wanted: int) -> bool:
    """Whether PostgreSQL can give ``wanted`` more connections and keep a fifth of its limit free
    (for peaks, ``status`` and the people looking). SQLite has no limit."""
    engine = handle.cells.engine
    if engine.dialect.name != "postgresql":
        return True
    import sqlalchemy as sa

    with engine.connect() as conn:
        limit = int(conn.execute(sa.text("SHOW max_connections")).scalar())
        used = int(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity")).scalar())
    return used + wanted <= 0.8 * limit


def plan_jobs(handle: StudyHandle, opts: SubmitOptions) -> list[SubmittedJob]:
    present = gpu_counts(handle)
    if not present:
        raise UserInputError(f"study {handle.name!r} has no unfinished cells: nothing to submit")
    chosen = [g for g in present if g in opts.gpus]
    skipped = [g for g in present if g not in opts.gpus]
    if not chosen:
        raise UserInputError(
            f"--gpus {','.join(map(str, opts.gpus))}: the study's unfinished cells need "
            f"{','.join(map(str, present))} GPU(s) per task: include those counts"
        )
    if skipped:
        log.warning("cells needing %s GPU(s) are not submitted (not in --gpus)", skipped)
    tracking = tracking_uri_for(handle, opts)
    log_dir = str(Path(opts.log_dir).resolve())
    per_worker = 2 if (tracking or "").startswith("postgresql") else 1  # idle connections a worker keeps
    workers = opts.array * len(chosen) * opts.workers_per_task
    pool = None if connections_fit(handle, workers * per_worker) else 0
    if pool == 0:
        log.warning(
            "%d workers would keep %d idle connections, more than the study database allows: the "
            "scripts set TORNADOSTUDY_DB_POOL=0 (a connection per operation)",
            workers,
            workers * per_worker,
        )
    jobs = []
    for gpus in chosen:
        whole_node = opts.cpus_per_task is None and gpus == 0
        cpus = opts.cpus_per_task or (None if whole_node else GPU_TASK_CPUS)
        job = SbatchJob(
            study=handle.name,
            gpus=gpus,
            array=opts.array,
            python=sys.executable,
            log_dir=log_dir,
            storage_url=handle.url,
            tracking_uri=tracking,
            partition=opts.partition,
            time=opts.time,
            account=opts.account,
            cpus_per_task=cpus,
            extra=opts.extra,
            workers_per_task=opts.workers_per_task,
            db_pool=pool,
        )
        jobs.append(SubmittedJob(gpus, render_sbatch(job)))
    return jobs


def submit_study(handle: StudyHandle, opts: SubmitOptions, slurm: Slurm | None = None) -> list[SubmittedJob]:
    slurm = slurm or Slurm()
    table = JobTable(handle.cells.engine)
    table.create_schema()
    Path(opts.log_dir).mkdir(parents=True, exist_ok=True)
    submitted = []
    for job in plan_jobs(handle, opts):
        job_id = slurm.submit(job.script)
        table.add(handle.name, job_id, job.gpus, opts.array)
        submitted.append(SubmittedJob(job.gpus, job.script, job_id))
    return submitted


def job_status(handle: StudyHandle, slurm: Slurm | None = None) -> list[dict]:
    """Per submitted job: tasks pending / running / done (done = no longer in the queue)."""
    jobs = JobTable(handle.cells.engine).jobs(handle.name)
    if not jobs:
        return []
    states = (slurm or Slurm()).states([j["job_id"] for j in jobs])
    out = []
    for job in jobs:
        mine = [s for task, s in states.items() if task.split("_")[0] == job["job_id"]]
        pending = sum(s == "PENDING" for s in mine)
        running = sum(s in ("RUNNING", "COMPLETING", "CONFIGURING") for s in mine)
        # A pending array may show as one "123_[0-5]" line: count its tasks from the range.
        for task, s in states.items():
            if task.startswith(f"{job['job_id']}_[") and s == "PENDING":
                pending += _range_size(task.split("_", 1)[1]) - 1
        out.append(
            {
                "job_id": job["job_id"],
                "gpus": job["gpus"],
                "tasks": job["tasks"],
                "pending": pending,
                "running": running,
                "done": max(job["tasks"] - pending - running, 0),
            }
        )
    return out


def _range_size(spec: str) -> int:
    """Tasks in a squeue array range such as ``[0-5]``, ``[2,4-6%2]``."""
    total = 0
    for part in spec.strip("[]").split("%")[0].split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            total += int(high) - int(low) + 1
        elif part:
            total += 1
    return total
