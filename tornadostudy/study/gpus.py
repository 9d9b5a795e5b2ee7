"""How many GPUs this worker holds, and which: from ``--gpus``, else what SLURM/CUDA say, else none."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tornadostudy.errors import UserInputError

__all__ = ["detect_gpus"]


def _ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    text = text.strip()
    if text in ("", "-1", "NoDevFiles"):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def detect_gpus(cli: int | None = None, environ: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
    """(count, device ids). ``CUDA_VISIBLE_DEVICES`` (which SLURM sets for ``--gres=gpu``) wins over
    ``SLURM_JOB_GPUS``/``SLURM_STEP_GPUS`` and ``SLURM_GPUS_ON_NODE``; with none of them the worker is CPU-only."""
    env = os.environ if environ is None else environ
    visible = _ids(env.get("CUDA_VISIBLE_DEVICES"))
    if visible is None:
        visible = _ids(env.get("SLURM_STEP_GPUS") or env.get("SLURM_JOB_GPUS"))
    if visible is None and env.get("SLURM_GPUS_ON_NODE", "").isdigit():
        visible = [str(i) for i in range(int(env["SLURM_GPUS_ON_NODE"]))]
    visible = visible or []
    if cli is None:
        return len(visible), visible
    if cli < 0:
        raise UserInputError(f"--gpus {cli} is negative: give the number of GPUs this worker may use (0 = CPU)")
    if visible and cli > len(visible):
        raise UserInputError(
            f"--gpus {cli} but only {len(visible)} GPU(s) are visible (CUDA_VISIBLE_DEVICES={','.join(visible)}): "
            "request more GPUs from SLURM or lower --gpus"
        )
    return cli, visible[:cli] if visible else [str(i) for i in range(cli)]
