"""Who a worker is: its id (host, pid, SLURM array task) and the versions it trains with."""

from __future__ import annotations

import os
import socket
from importlib import metadata

__all__ = ["package_versions", "worker_id"]


def worker_id() -> str:
    slurm = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{slurm}_{task}" if slurm and task else os.environ.get("SLURM_JOB_ID", "")
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{job}" if job else "")


def package_versions() -> dict[str, str]:
    out = {}
    for package in ("tornadostudy", "tensorflow", "keras", "jax", "optuna", "mlflow", "numpy"):
        try:
            out[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out
