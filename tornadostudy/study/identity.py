"""Who a worker is: its id (host, pid, SLURM array task) and the versions it trains with."""

from __future__ import annotations

import os
import socket
import uuid
from importlib import metadata

__all__ = ["cpu_description", "package_versions", "worker_id"]


def cpu_description() -> str:
    """The CPU a trial without GPUs ran on, e.g. ``36 CPUs (Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 0
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{cpus} CPUs" + (f" ({model})" if model else "")


def worker_id() -> str:
    """``host:pid:random[:job]``. The random part makes every worker's id its own: a later process that
    reuses a dead worker's PID on the same host must not inherit the cells the dead one held."""
    slurm = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{slurm}_{task}" if slurm and task else os.environ.get("SLURM_JOB_ID", "")
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}" + (f":{job}" if job else "")


def package_versions() -> dict[str, str]:
    out = {}
    for package in ("tornadostudy", "tensorflow", "keras", "jax", "optuna", "mlflow", "numpy"):
        try:
            out[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out
