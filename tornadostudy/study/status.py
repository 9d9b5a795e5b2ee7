"""``tornadostudy status``: where a study stands, from its cells and its Optuna trials."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tornadostudy.study.handle import StudyHandle

__all__ = ["format_status", "progress_bar", "study_status"]


def study_status(handle: StudyHandle) -> dict[str, Any]:
    import optuna

    counts = handle.cells.counts(handle.name)
    trials = handle.study.get_trials(deepcopy=False)
    by_state = Counter(t.state.name.lower() for t in trials)
    complete_per_cell = Counter(t.user_attrs.get("cell") for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    duplicates = sum(n - 1 for n in complete_per_cell.values() if n > 1)
    total = sum(counts.values())
    rows = handle.cells.rows(handle.name)
    durations = [
        r["finished_at"] - r["claimed_at"]
        for r in rows
        if r["state"] == "complete" and r["finished_at"] and r["claimed_at"]
    ]
    eta = None
    remaining = counts["waiting"] + counts["running"]
    if durations and remaining:
        # Cells left × mean cell time, spread over the workers running now (at least one).
        eta = remaining * (sum(durations) / len(durations)) / max(counts["running"], 1)
    return {
        "study": handle.name,
        "sampler": handle.spec.sampler,
        "total_cells": total,
        "complete": counts["complete"],
        "running": counts["running"],
        "failed": counts["failed"],
        "waiting": counts["waiting"],
        "duplicates": duplicates,
        "trials": dict(sorted(by_state.items())),
        "retried_cells": sum(1 for r in rows if r["attempts"] > 1),
        "eta_s": eta,
        "checked_at": time.time(),
    }


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def format_status(status: dict[str, Any]) -> str:
    eta = status["eta_s"]
    eta_text = "-" if eta is None else (f"{eta:.0f}s" if eta < 120 else f"{eta / 60:.0f}min")
    trials = ", ".join(f"{k} {v}" for k, v in status["trials"].items()) or "none yet"
    return "\n".join(
        [
            f"study {status['study']} ({status['sampler']}): {progress_bar(status['complete'], status['total_cells'])}",
            f"  cells      complete {status['complete']}, running {status['running']}, waiting {status['waiting']}, "
            f"failed {status['failed']} (of {status['total_cells']})",
            f"  trials     {trials}; cells retried {status['retried_cells']}",
            f"  duplicates {status['duplicates']}",
            f"  ETA        {eta_text}",
            *(
                f"  slurm job {j['job_id']} ({j['gpus']} GPU/task): pending {j['pending']}, running {j['running']}, "
                f"done {j['done']} of {j['tasks']}"
                for j in status.get("slurm_jobs", [])
            ),
            *([f"  slurm      {status['slurm_error']}"] if status.get("slurm_error") else []),
        ]
    )
