"""Finding and cleaning up after workers that died (SIGKILL, node failure) without saying so.

A worker heartbeats its cell every ``heartbeat_s`` while it trains. A cell whose heartbeat is older
than ``stale_after_s`` is reaped by whoever looks next — any worker before it claims, ``status``, or
``run``'s progress loop — so a lost cell is found even when no other worker asks for work: it goes back
to ``waiting`` (a lost attempt counts towards ``max_attempts``), its Optuna trial is marked FAIL and its
MLflow run KILLED.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from tornadostudy.study.handle import StudyHandle

__all__ = ["Heartbeat", "heartbeat_s", "reap_lost_workers", "stale_after_s"]

log = logging.getLogger(__name__)


def heartbeat_s() -> float:
    return float(os.environ.get("TORNADOSTUDY_HEARTBEAT_S", "30"))


def stale_after_s() -> float:
    """Default 5 minutes: ten missed heartbeats, longer than a database restart."""
    return float(os.environ.get("TORNADOSTUDY_STALE_AFTER_S", "300"))


class Heartbeat:
    """A background thread that touches the cell's heartbeat while a trial trains."""

    def __init__(self, beat, interval_s: float) -> None:
        self._beat, self._interval = beat, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tornadostudy-heartbeat", daemon=True)
        self.lost = False  # set when the cell turned out to be no longer ours

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._beat():
                    self.lost = True
                    log.warning("this worker's cell was reassigned (it was presumed lost)")
            except Exception as exc:  # the database may be restarting: keep training, try again
                log.warning("heartbeat failed (will retry): %s", str(exc).splitlines()[0])

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def reap_lost_workers(handle: StudyHandle, tracker=None, stale_s: float | None = None) -> int:
    """Reap stale cells and close their trials and runs; also finish trials whose cell completed but
    whose worker died before reporting. Returns the number of cells reaped."""
    import optuna

    stale_s = stale_after_s() if stale_s is None else stale_s
    rows = handle.cells.reap_stale(handle.name, stale_s, handle.spec.max_attempts)
    running = {t.number: t for t in handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for row in rows:
        reason = f"worker lost: no heartbeat for {stale_s:.0f}s"
        log.warning("cell %s: %s; cell is %s again", row["cell"], reason, row["state"])
        trial = running.get(row["trial_number"])
        if trial is not None:
            handle.storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            handle.storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        if row["run_id"]:
            _close_run(handle, tracker, row["run_id"], reason)
    _finish_reported_cells(handle, running, stale_s)
    return len(rows)


def _close_run(handle: StudyHandle, tracker, run_id: str, reason: str) -> None:
    try:
        if tracker is None:
            from tornadostudy.tracking import Tracker, resolve_tracking_uri

            tracker = Tracker(resolve_tracking_uri(None, handle.stored_tracking_uri))
        tracker.set_tags(run_id, {"fail_reason": reason})
        tracker.end_run(run_id, "KILLED")
    except Exception as exc:
        log.warning("could not close MLflow run %s (%s); 'tornadostudy tracking sync' will", run_id, exc)


def _finish_reported_cells(handle: StudyHandle, running: dict, stale_s: float) -> None:
    """A worker that died between marking its cell complete and reporting its trial left the trial
    RUNNING with its metrics stored: report it from those metrics, so the cell has its one COMPLETE trial.
    Only for cells completed longer ago than the stale limit: a live worker reports within moments."""
    import optuna

    if not running:
        return
    cutoff = time.time() - stale_s
    done = {r["trial_number"]: r for r in handle.cells.rows(handle.name)
            if r["state"] == "complete" and (r["finished_at"] or 0) < cutoff}  # fmt: skip
    for number, trial in running.items():
        if number in done and "metrics" in trial.user_attrs:
            metrics = trial.user_attrs["metrics"]
            values = [metrics[o.metric] for o in handle.spec.objectives]
            handle.storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.COMPLETE, values)
            log.warning("trial %d: its worker died after finishing; reported it from its stored metrics", number)
