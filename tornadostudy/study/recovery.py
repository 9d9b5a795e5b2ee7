"""Finding and cleaning up after workers that died (SIGKILL, node failure) without saying so.

A worker heartbeats its cell every ``heartbeat_s`` while it trains. A cell whose heartbeat is older
than ``stale_after_s`` is reaped by whoever looks next — any worker before it claims, ``status``, or
``run``'s progress loop — so a lost cell is found even when no other worker asks for work: it goes back
to ``waiting`` (a lost attempt counts towards ``max_attempts``), its Optuna trial is marked FAIL and its
MLflow run KILLED. A RUNNING trial whose cell completed with it (its worker died between the cell's completion,
the commit point, and the trial's) is completed from the results on the cell, once the cell has been complete
for ``stale_after_s``: until then its worker may still be completing the trial itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading

from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.records import fail_trial, follow_cell
from tornadostudy.study.trials import running_trials

__all__ = ["Heartbeat", "heartbeat_s", "reap_every_s", "reap_lost_workers", "stale_after_s", "sweep_every_s"]

log = logging.getLogger(__name__)


def heartbeat_s() -> float:
    return float(os.environ.get("TORNADOSTUDY_HEARTBEAT_S", "30"))


def stale_after_s() -> float:
    """Default 5 minutes: ten missed heartbeats, longer than a database restart."""
    return float(os.environ.get("TORNADOSTUDY_STALE_AFTER_S", "300"))


def sweep_every_s() -> float:
    """How often a worker reads the study's RUNNING trials for ones whose worker died outside a cell's
    lifetime (before recording the trial, or after completing the cell): the stale limit. Such a trial holds no
    cell, so finding it later delays nothing; reading every RUNNING trial on every look would cost each
    worker a read that grows with the number of workers."""
    return float(os.environ.get("TORNADOSTUDY_SWEEP_EVERY_S", stale_after_s()))


def reap_every_s() -> float:
    """How often a worker looks for lost cells between trials: half the stale limit, at most a minute.
    A lost cell is only reapable after ``stale_after_s`` anyway, so looking more often finds nothing sooner."""
    default = min(stale_after_s() / 2, 60.0)
    return float(os.environ.get("TORNADOSTUDY_REAP_EVERY_S", default))


class Heartbeat:
    """A background thread that touches the cell's heartbeat while a trial trains. When a beat finds the cell
    is no longer this worker's (a reaper presumed it lost and handed the cell on), ``lost`` is set: the trial
    stops at its next batch boundary instead of training on for nothing."""

    def __init__(self, beat, interval_s: float) -> None:
        self._beat, self._interval = beat, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tornadostudy-heartbeat", daemon=True)
        self.lost = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                ours = self._beat()
            except Exception as exc:  # the database may be restarting: keep training, try again
                log.warning("heartbeat failed (will retry): %s", str(exc).splitlines()[0])
                continue
            # A beat that raced with the trial's own completion finds the cell complete: that is not a loss.
            if not ours and not self._stop.is_set():
                self.lost.set()
                log.warning("this worker's cell was handed on (it was presumed lost): stopping its trial")
                return

    def finish(self) -> None:
        """No more beats: the trial is about to complete or give its cell back."""
        self._stop.set()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def reap_lost_workers(handle: StudyHandle, tracker=None, stale_s: float | None = None, sweep: bool = True) -> int:
    """Reap stale cells and close their trials and runs. With ``sweep`` (or when a cell was reaped), also
    read the study's RUNNING trials: close those whose worker was lost before it recorded them on their cell,
    and complete those whose cell completed with them. A look without a sweep that reaps nothing reads only
    the cells table. Returns the number of cells reaped."""
    stale_s = stale_after_s() if stale_s is None else stale_s
    runs = _RunCloser(handle, tracker)
    try:
        return _reap(handle, runs, stale_s, sweep)
    finally:
        runs.finish()


def _reap(handle: StudyHandle, runs: _RunCloser, stale_s: float, sweep: bool) -> int:
    rows = handle.cells.reap_stale(handle.name, stale_s, handle.spec.max_attempts)
    if not rows and not sweep:
        return 0
    # Straight from the database, filtered there: the study's cached reader would load every trial of the
    # study on a worker's first look (thousands, on every one of an array's workers as they start).
    running = running_trials(handle)
    for row in rows:
        reason = f"worker lost: no heartbeat for {stale_s:.0f}s"
        log.warning("cell %s: %s; cell is %s again", row["cell"], reason, row["state"])
        # The cell may still name an earlier attempt's trial (killed before recording the new one):
        # only a RUNNING trial is closed here; the orphan sweep below finds the unrecorded one.
        trial = running.get(row["trial_number"])
        # Not RUNNING any more: its worker reported just now; it will find its cell gone and discard the result.
        if trial is not None and fail_trial(handle.storage, handle.trial_id(trial.number), {"fail_reason": reason}):
            runs.close(trial, reason)
    if not running:
        return len(rows)
    cells_of_running = {t.user_attrs.get("cell") for t in running.values()} - {None}
    rows_now = {r["cell"]: r for r in handle.cells.rows(handle.name, cells_of_running, since_finished=True)}
    _fail_orphaned_trials(handle, runs, running, rows_now, {r["trial_number"] for r in rows}, stale_s)
    return len(rows)


def _age_s(trial) -> float:
    """Seconds since the trial started. Naive timestamps may be UTC or local time depending on the
    Optuna version: take the smaller age, so a trial is never judged older than it is."""
    start = trial.datetime_start
    if start is None:
        return 0.0
    if start.tzinfo:
        return (dt.datetime.now(dt.UTC) - start).total_seconds()
    utc_now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return min((dt.datetime.now() - start).total_seconds(), (utc_now - start).total_seconds())


def _fail_orphaned_trials(
    handle: StudyHandle, runs: _RunCloser, running: dict, rows: dict, handled: set, stale_s: float
) -> None:
    """RUNNING trials whose worker no longer holds their cell: e.g. killed between creating the trial and
    recording it on the cell. Ownership, not time, decides, so a live worker's new trial is never touched."""

    for number, trial in running.items():
        if number in handled:
            continue
        if "cell" not in trial.user_attrs:
            # Still being set up (TPE: ask, then label) — unless that stopped long ago.
            if _age_s(trial) < stale_s:
                continue
            row = None
        else:
            row = rows.get(trial.user_attrs["cell"])
            if row is None:
                continue
        if row is not None and row["state"] == "complete" and row["trial_number"] == number:
            # The cell completed with this trial (the commit point). Its worker completes the trial right after;
            # a trial still RUNNING a stale interval later lost its worker in between.
            if (row["since_finished_s"] or 0.0) < stale_s:
                continue
            log.warning("trial %d: its cell completed with it; completing the trial from the cell", number)
            results = json.loads(row["results"] or "{}")
            follow_cell(handle.storage, handle.trial_id(number), number, results, row["run_id"])
            continue
        # A RUNNING trial is a live worker's while that worker holds its cell, and the cell names this trial or
        # none newer (between a trial's creation and its recording the cell still names an earlier attempt's).
        if (
            row is not None
            and row["state"] == "running"
            and row["worker"] == trial.user_attrs.get("worker")
            and (row["trial_number"] is None or row["trial_number"] <= number)
        ):
            continue
        # The trial list was read before the cells: a trial completed in between looks orphaned here, and
        # fail_trial leaves it as it is (it is not RUNNING any more).
        reason = "worker lost before its trial was recorded"
        if fail_trial(handle.storage, handle.trial_id(trial.number), {"fail_reason": reason}):
            log.warning("trial %d: %s; closed it", number, reason)
            runs.close(trial, reason)


class _RunCloser:
    """Closes reaped trials' MLflow runs as KILLED, through the worker's tracker or, for a command without
    one, a tracker opened on first use: its writes go through a spool like a worker's, are delivered before
    :meth:`finish` returns, and wait on disk for ``tracking sync`` (or the next worker) if MLflow is away."""

    def __init__(self, handle: StudyHandle, tracker=None) -> None:
        self.handle, self.tracker, self._own = handle, tracker, None

    def close(self, trial, reason: str) -> None:
        """Close the trial's run: by its recorded id, else (the worker died between making the run and
        recording it) by the trial's run key."""
        from tornadostudy.tracking import trial_run_key

        run_id = trial.user_attrs.get("mlflow_run_id")
        try:
            tracker = self.tracker or self._opened()
            key = trial_run_key(self.handle.study_id, trial.number)
            for run in [run_id] if run_id else tracker.runs_with_key(self.handle.experiment_id, key):
                tracker.set_tags(run, {"fail_reason": reason})
                tracker.end_run(run, "KILLED")
        except Exception as exc:
            log.warning("could not close the MLflow run of trial %d: %s", trial.number, exc)

    def _opened(self):
        if self._own is None:
            from tornadostudy.tracking import Tracker, resolve_tracking_uri
            from tornadostudy.tracking.spool import Spool

            uri = resolve_tracking_uri(None, self.handle.stored_tracking_uri)
            self._own = Tracker(uri, spool=Spool.for_this_process(uri=uri))
        return self._own

    def finish(self, wait_s: float = 30.0) -> None:
        if self._own is not None:
            left = self._own.close(wait_s)
            if left:
                log.warning(
                    "%d run(s) could not be closed in MLflow yet; they wait in %s for 'tornadostudy tracking sync'",
                    len(left),
                    self._own.spool.folder,
                )
