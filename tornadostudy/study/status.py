"""``tornadostudy status``: where a study stands, from its cells and its Optuna trials."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
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
    if durations and remaining and counts["running"]:
        # Cells left × mean cell time, spread over the workers running now (at least one).
        eta = remaining * (sum(durations) / len(durations)) / counts["running"]
    # Every cell that ran more than once, whatever the reason (a failure, a stop, a lost worker), and why.
    trials_per_cell = Counter(t.user_attrs.get("cell") for t in trials if "cell" in t.user_attrs)
    rerun = {r["cell"] for r in rows if r["attempts"] > 1} | {c for c, n in trials_per_cell.items() if n > 1}
    rerun_reasons = Counter(
        _short(t.user_attrs.get("fail_reason", "unknown"))
        for t in trials
        if t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("cell") in rerun
    )
    failed_by_reason: dict[str, list[int]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["cell"]):
        if r["state"] == "failed":
            failed_by_reason[_short(r["last_error"] or "unknown")].append(r["cell"])
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
        "retried_cells": len(rerun),
        "rerun_reasons": dict(rerun_reasons.most_common()),
        "failed_by_reason": dict(sorted(failed_by_reason.items(), key=lambda kv: -len(kv[1]))),
        "eta_s": eta,
        "checked_at": time.time(),
    }


def _short(reason: str) -> str:
    """A reason, shortened and without the worker's id, so that the same cause groups together."""
    reason = re.sub(r"worker \S+ lost", "worker lost", str(reason))
    reason = re.sub(r"on worker \S+:", "on a worker:", reason)
    reason = re.sub(r"after epoch \d+", "after epoch N", reason)
    return reason.splitlines()[0][:160] if reason else "unknown"


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def format_status(status: dict[str, Any]) -> str:
    eta = status["eta_s"]
    eta_text = "-" if eta is None else (f"{eta:.0f}s" if eta < 120 else f"{eta / 60:.0f}min")
    if eta is None and status["running"] == 0 and status["waiting"]:
        eta_text = "- (no worker is running)"
    reruns = ", ".join(f"{n}x {reason}" for reason, n in status.get("rerun_reasons", {}).items())
    by_reason = status["failed_by_reason"].items()
    failed = [f"    {len(cells)}x {why} (cells {_cell_list(cells)})" for why, cells in by_reason]
    if failed:
        failed.insert(0, f"  failed cells by reason (put back with 'tornadostudy retry {status['study']} --failed'):")
    trials = ", ".join(f"{k} {v}" for k, v in status["trials"].items()) or "none yet"
    return "\n".join(
        [
            f"study {status['study']} ({status['sampler']}): {progress_bar(status['complete'], status['total_cells'])}",
            f"  cells      complete {status['complete']}, running {status['running']}, waiting {status['waiting']}, "
            f"failed {status['failed']} (of {status['total_cells']})",
            f"  trials     {trials}",
            f"  re-run     {status['retried_cells']} cell(s) ran more than once" + (f": {reruns}" if reruns else ""),
            *failed,
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


def _cell_list(cells: list[int], most: int = 12) -> str:
    shown = ", ".join(map(str, cells[:most]))
    return shown + (f", ... ({len(cells)} in all)" if len(cells) > most else "")
