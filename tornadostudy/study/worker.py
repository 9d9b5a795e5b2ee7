"""``tornadostudy worker``: one long-lived process that claims, trains, logs and reports trials.

TensorFlow is imported once per worker (by its trainer) and data arrays are reused across trials.
A worker only claims cells whose ``num_gpus`` equals the GPUs it holds; it stops when nothing it may
claim is left (grid) or the trial budget is spent (TPE/random), or after ``max_trials``. With nothing to
claim it stays while other workers' cells it could take over are running, so a killed worker's last cell
is run again by a worker that is still there.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from tornadostudy.errors import EnvironmentFault, TrackingError, TrainingError
from tornadostudy.study import records
from tornadostudy.study.claiming import nothing_to_do, start_trial
from tornadostudy.study.costs import CostRefiner
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.identity import cpu_description, package_versions, worker_id
from tornadostudy.study.recovery import (
    Heartbeat,
    heartbeat_s,
    reap_every_s,
    reap_lost_workers,
    stale_after_s,
    sweep_every_s,
)
from tornadostudy.study.stopping import (
    IN_TRIAL,
    STOP_REQUESTED,
    FailureStreak,
    WorkerStopped,
    install_stop_handlers,
    max_failures_in_a_row,
    restore_handlers,
    stop_signal,
)
from tornadostudy.study.storage import retrying
from tornadostudy.tracking import Tracker, resolve_tracking_uri, trial_run_key
from tornadostudy.tracking.spool import Spool
from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams, make_trainer
from tornadostudy.train.backends import quiet_native_startup
from tornadostudy.train.checkpoint import TrialInterrupted, load_state
from tornadostudy.train.checkpoint import clear as clear_checkpoint

__all__ = ["WorkerOptions", "WorkerStopped", "WorkerSummary", "run_worker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    study: str
    storage_url: str
    tracking_uri: str | None = None
    gpus: int = 0
    gpu_ids: tuple[str, ...] = ()
    max_trials: int | None = None
    startup_jitter_s: float = 5.0


@dataclass
class WorkerSummary:
    worker: str
    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    note: str = ""  # why the worker found nothing to do, if it did not


class _TrialProgress(TrialCallbacks):
    """Per epoch: one MLflow call with all of the epoch's metrics (the heartbeat runs in its own thread)."""

    def __init__(self, worker: Worker, cell: int, run: str, heartbeat: Heartbeat) -> None:
        self.worker, self.cell, self.run, self.heartbeat = worker, cell, run, heartbeat
        self.epochs = 0

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs += 1
        self.worker.tracker.log_metrics(self.run, metrics, step=epoch)

    def should_stop(self) -> bool:
        return STOP_REQUESTED.is_set() or self.heartbeat.lost.is_set()

    def may_checkpoint(self) -> bool:
        return not self.heartbeat.lost.is_set()


class _HandedOn(Exception):
    """The trial stopped because its cell was handed on to another worker."""


class Worker:
    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        self.id = worker_id()
        self._next_reap = 0.0  # the first claim looks for lost workers' cells
        # Array tasks start together: their first reads of the study's RUNNING trials are spread over an interval.
        self._next_sweep = time.monotonic() + sweep_every_s() * random.uniform(0.0, 1.0)
        # An array task may start while the database restarts: wait for it, as for any outage.
        self.handle = StudyHandle.open(opts.study, opts.storage_url, wait=True)
        self.spec = self.handle.spec
        self.costs = CostRefiner(self.handle.cells, self.spec.name) if self.spec.sampler == "grid" else None
        self.streak = FailureStreak(max_failures_in_a_row())
        self._progress: _TrialProgress | None = None
        self.nothing_to_do = nothing_to_do(self.handle, opts.gpus)
        self.trainer = None
        if not self.nothing_to_do:
            # A CPU worker hides TensorFlow's CUDA start-up noise unless TensorFlow's own logging was asked for.
            quiet = opts.gpus == 0 and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "2"
            with quiet_native_startup(quiet):
                self.trainer = make_trainer(self.spec.trainer, self.handle.data_folder)
                # What this worker needs, checked before it claims: a missing GPU or data file charges no cell.
                self.trainer.check_environment(opts.gpus)
        uri = resolve_tracking_uri(opts.tracking_uri, self.handle.stored_tracking_uri)
        # Every tracking call of a worker is retried (run creation) or spooled (writes) here; writes are
        # delivered by a background thread, so no epoch and no trial's end waits for MLflow.
        self.tracker = Tracker(
            uri, spool=Spool.for_this_process(uri=uri), own_retries=True, alive_every_s=heartbeat_s()
        )
        self.tags = {
            "study": self.spec.name,
            "sampler": self.spec.sampler,
            "host": socket.gethostname(),
            "worker": self.id,
            "gpu_ids": ",".join(opts.gpu_ids) or "none",
            "gpu_names": ",".join(getattr(self.trainer, "gpu_names", [])) or "none",
            **{
                f"slurm_{k.lower()[6:]}": v
                for k, v in os.environ.items()
                if k in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
            },
            **package_versions(),
        }

    # --- one trial -------------------------------------------------------------------------------
    def _start_trial(self, claim, summary: WorkerSummary) -> tuple[int, int, dict[str, Any]] | None:
        """The claimed cell's trial (trial_id, number, params), or None when the cell was handed on meanwhile."""
        attrs = {"worker": self.id, "attempt": claim.attempt, "cell": claim.cell, "gpu_ids": self.tags["gpu_ids"]}
        started = start_trial(self.handle, self.id, claim, attrs)
        if isinstance(started, int):  # a TPE/random trial made, but its cell was handed on before it was recorded
            self._discard(started, None, summary)
            return None
        return started

    def run_one(self, claim, summary: WorkerSummary) -> None:
        beat = functools.partial(self.handle.cells.heartbeat, self.spec.name, claim.cell, self.id)
        with Heartbeat(beat, heartbeat_s()) as heartbeat:
            self._run_one(claim, summary, heartbeat)

    def _run_one(self, claim, summary: WorkerSummary, heartbeat: Heartbeat) -> None:
        started = self._start_trial(claim, summary)
        if started is None:
            log.warning("cell %d was handed on before its trial started (this worker was presumed lost)", claim.cell)
            return
        trial_id, number, params = started
        trial_params = TrialParams.from_mapping(params)
        run_tags = {**self.tags, "trial_number": number, "cell": claim.cell, "attempt": claim.attempt}
        if claim.previous_trial is not None:
            run_tags["retry_of_trial"] = claim.previous_trial
        if claim.previous_run_id:
            run_tags["retry_of_run"] = claim.previous_run_id
        rows = self.trainer.epoch_set(trial_params)
        # What the cell trains on, so runs can be compared: samples per epoch and their share of tornadic storms.
        run_params = {
            **params,
            "per_replica_batch_size": trial_params.batch_size // max(trial_params.num_gpus, 1),
            "train_samples": rows.samples,
            "train_positive_fraction": round(rows.positive_fraction, 4),
        }
        # The delivery thread makes the run and records its id on the cell (and the trial); nothing waits. The
        # run key is derived from the trial: a reaper finds the run by it when this worker dies.
        run = self.tracker.open_trial_run(
            self.handle.experiment_id,
            self.handle.parent_run_id,
            f"{trial_params.label()} #{number}",
            run_params,
            run_tags,
            trial_run_key(self.handle.study_id, number),
            on_made=functools.partial(
                records.record_run, self.handle.storage, self.handle.cells, self.spec.name, claim.cell, trial_id, number
            ),
        )
        self._run_trial(claim, trial_id, number, params, run, summary, heartbeat)

    def _run_trial(self, claim, trial_id: int, number: int, params: dict, run: str, summary, heartbeat) -> None:
        trial_params = TrialParams.from_mapping(params)
        cells, name = self.handle.cells, self.spec.name
        log.info("trial %d (cell %d, attempt %d): %s", number, claim.cell, claim.attempt, trial_params.label())

        checkpoint = self.handle.checkpoint_dir(claim.cell)
        resumed = load_state(checkpoint)
        if resumed:
            # The curve continues in this run: the epochs done before the interruption come first.
            self.tracker.log_history(run, resumed["history"])
            self.tracker.set_tags(run, {"resumed_from_epoch": resumed["epoch"]})
            log.info("trial %d resumes cell %d at epoch %d", number, claim.cell, resumed["epoch"] + 1)
        context = TrialContext(number, claim.attempt, self.spec.seed, checkpoint)
        try:
            result = self._train(trial_params, claim, run, context, number, heartbeat)
            metrics = result.metrics()
            values = [metrics[o.metric] for o in self.spec.objectives]
            if not all(math.isfinite(v) for v in values):
                shown = {o.metric: metrics[o.metric] for o in self.spec.objectives}
                raise TrainingError(
                    f"objective value is not a number ({shown})",
                    kind="objective_nan",
                    retryable=False,
                )
        except TrainingError as exc:
            heartbeat.finish()
            clear_checkpoint(checkpoint)  # a failed attempt's state is not worth resuming
            self._fail(number, claim, run, exc, summary)
            return
        except _HandedOn:
            self._discard(number, run, summary)
            return
        heartbeat.finish()
        self.tracker.log_final(
            run,
            metrics,  # an undefined score (NaN) is logged as NaN: every run has the same metrics
            {f"info.{k}": v for k, v in result.info.items()},
        )
        # The cell is the commit point of exactly-once: only the worker still holding it may complete it, and the
        # trial follows (records.complete_trial).
        hardware = self.tags["gpu_names"] if trial_params.num_gpus else cpu_description()
        if self.spec.trainer.kind == "simulate":
            hardware = f"simulated ({self.spec.trainer.profile} profile)"
        setup = {
            "hardware": hardware,
            "versions": ", ".join(
                f"{k[8:]} {v}" for k, v in self.tags.items() if k.startswith("version.") and k != "version.tornadostudy"
            ),
        }
        # The cell keeps what a report needs (params included: a TPE slot's are the sampler's, not the cell's).
        results = {"metrics": metrics, "info": {**result.info, **setup}, "params": params}
        if not retrying(
            lambda: records.complete_trial(
                self.handle.storage, cells, name, claim.cell, self.id, trial_id, number, values, results
            ),
            what="report the trial",
        ):
            self._discard(number, run, summary)
            return
        self.tracker.end_run(run, "FINISHED")
        clear_checkpoint(checkpoint)
        summary.completed.append(number)
        self.streak.trial_ended(False, self._progress.epochs)
        log.info("trial %d complete: %s", number, {o.metric: metrics[o.metric] for o in self.spec.objectives})

    def _discard(self, number: int, run: str | None, summary: WorkerSummary) -> None:
        """This worker was presumed lost and its cell handed on: its result must not count."""
        reason = "cell was reassigned: this worker was presumed lost (no heartbeat)"
        log.warning("trial %d: %s; discarding its result", number, reason)
        self._close_failed(number, {"fail_reason": reason})  # unless the reaper already closed it, with its reason
        if run is not None:
            self.tracker.set_tags(run, {"fail_reason": reason})
            self.tracker.end_run(run, "KILLED")
        summary.failed.append(number)

    def _train(self, trial_params, claim, run: str, context: TrialContext, number: int, heartbeat: Heartbeat):
        """Train; if the worker is stopped (a signal), meets an environment fault or crashes meanwhile, close the
        trial, its run and its cell before the exception goes on, so nothing is left looking alive. A trial
        whose cell was handed on meanwhile stops at a batch boundary and raises _HandedOn."""
        progress = _TrialProgress(self, claim.cell, run, heartbeat)
        self._progress = progress
        IN_TRIAL.set()
        try:
            return self.trainer.train(trial_params, progress, context)
        except TrainingError:
            raise
        except TrialInterrupted as exc:
            heartbeat.finish()
            if heartbeat.lost.is_set():
                raise _HandedOn from None
            kept = "checkpointed" if exc.checkpointed else "no checkpoint"
            signal_name = stop_signal() or "a stop request"
            stopped = WorkerStopped(
                f"{signal_name}: trial {number} (cell {claim.cell}) given back after epoch {exc.epoch}, {kept}; "
                "the next worker resumes it"
            )
            stopped.reason = f"worker stopped ({signal_name}) after epoch {exc.epoch}, {kept}"
            self._abandon(number, claim, run, stopped)
            raise stopped from None
        except BaseException as exc:
            heartbeat.finish()
            self._abandon(number, claim, run, exc)
            raise
        finally:
            IN_TRIAL.clear()

    def _abandon(self, number: int, claim, run: str, exc: BaseException) -> None:
        """Close a trial that did not end on its own. Stopped (a signal) or an environment fault: the cell goes
        back uncharged and the run ends KILLED; a crash of the worker itself: the attempt counts, FAILED."""
        uncharged = isinstance(exc, (KeyboardInterrupt, WorkerStopped, EnvironmentFault))
        if isinstance(exc, WorkerStopped):
            reason = getattr(exc, "reason", None) or f"worker stopped ({stop_signal() or 'stop request'})"
        elif isinstance(exc, EnvironmentFault):
            reason = f"environment fault on worker {self.id}: {exc}"
        elif isinstance(exc, KeyboardInterrupt):
            reason = "worker interrupted"
        else:
            reason = f"worker error: {type(exc).__name__}: {exc}"
        # The reason of a stop or an environment fault is the worker's last line; a crash is worth a warning here.
        say = log.info if uncharged else log.warning
        say("trial %d stopped (%s); cell %d given back", number, reason, claim.cell)
        steps = (
            lambda: self._close_failed(number, {"fail_reason": reason}),
            lambda: (
                self.handle.cells.release(self.spec.name, claim.cell, self.id, reason)
                if uncharged
                else self.handle.cells.fail(self.spec.name, claim.cell, self.id, reason, True, self.spec.max_attempts)
            ),
            lambda: self.tracker.set_tags(run, {"fail_reason": reason[:4000]}),
            lambda: self.tracker.end_run(run, "KILLED" if uncharged else "FAILED"),
        )
        for step in steps:  # best effort: one failing step must not hide the others or the original error
            try:
                step()
            except Exception as cleanup_exc:
                log.warning("clean-up step failed: %s", cleanup_exc)

    def _fail(self, number: int, claim, run: str, exc: TrainingError, summary: WorkerSummary) -> None:
        reason = str(exc)
        log.warning("trial %d failed (%s): %s", number, exc.kind, reason)
        self._close_failed(number, {"fail_reason": reason, "fail_kind": exc.kind})
        state = self.handle.cells.fail(
            self.spec.name, claim.cell, self.id, f"{exc.kind}: {reason}", exc.retryable, self.spec.max_attempts
        )
        try:
            self.tracker.set_tags(run, {"fail_reason": reason[:4000], "fail_kind": exc.kind, "cell_state": state})
            self.tracker.end_run(run, "FAILED")
        except TrackingError as tracking_exc:
            log.warning("could not close MLflow run %s: %s", run, tracking_exc)
        summary.failed.append(number)
        self.streak.trial_ended(True, self._progress.epochs if self._progress else 0, f"{exc.kind}: {reason}")

    def _close_failed(self, number: int, attrs: dict[str, str]) -> None:
        """Mark the trial FAIL with ``attrs`` (why), in one transaction, for every sampler (GridSampler's
        ``after_trial``, run by ``tell``, scans the whole study and calls study.stop(), which only works inside
        study.optimize()). Not over a trial already closed: a reaper's reason stays."""
        trial_id = retrying(lambda: self.handle.trial_id(number), what="look up the trial")
        if not retrying(lambda: records.fail_trial(self.handle.storage, trial_id, attrs), what="report the trial"):
            # A reaper got there first (this worker was presumed lost): the trial is already closed.
            log.warning("trial %d was already closed by another process", number)

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> WorkerSummary:
        summary = WorkerSummary(self.id, note=self.nothing_to_do)
        if self.nothing_to_do:
            self._drain_spool(wait_s=0.0)
            return summary
        stopped = idle = False
        try:
            while self.opts.max_trials is None or len(summary.completed) + len(summary.failed) < self.opts.max_trials:
                if STOP_REQUESTED.is_set():
                    raise WorkerStopped(f"{stop_signal()}, between trials")
                self._reap(force=False)
                if self.costs is not None:
                    self.costs.maybe_refit()
                claim = self.handle.cells.claim(self.spec.name, self.opts.gpus, self.id)
                if claim is not None:
                    idle = False
                    self.run_one(claim, summary)
                    continue
                # Between polls the reaper's own schedule is enough (a forced look scans the running trials).
                if self._reap(force=not idle) > 0:
                    continue  # a lost cell is waiting again: claim it
                if not self.handle.cells.running_for(self.spec.name, self.opts.gpus):
                    break  # nothing waiting or running that this worker could take over
                # Another worker's cell is still running. Stay until it completes or, if that worker died,
                # until the cell is stale and reaped here: the last workers leaving while a killed worker's
                # cell is not yet stale would leave that cell with nobody to run it.
                if not idle:
                    log.info("nothing left to claim; waiting for the cells other workers are running")
                idle = True
                time.sleep(idle_poll_s() * random.uniform(0.5, 1.0))
        except BaseException:
            stopped = True
            raise
        finally:
            # Stopped (SIGTERM): SLURM kills the task ~30 s later; what is not delivered by then stays spooled.
            self._drain_spool(wait_s=15.0 if stopped else 120.0)
        log.info("worker %s done: %d complete, %d failed", self.id, len(summary.completed), len(summary.failed))
        return summary

    def _reap(self, force: bool) -> int:
        """Look for lost workers' cells at most every ``reap_every_s``, and read the study's RUNNING trials
        (:func:`reap_lost_workers`' sweep) at most every ``sweep_every_s``; both always before leaving. Per claim,
        either would cost every worker a read that grows with the number of workers."""
        now = time.monotonic()
        if not force and now < self._next_reap:
            return 0
        # A random half to whole interval: array tasks start together, and looks made at the same moment
        # would stall every worker at once.
        self._next_reap = now + reap_every_s() * random.uniform(0.5, 1.0)
        sweep = force or now >= self._next_sweep
        if sweep:
            self._next_sweep = now + sweep_every_s() * random.uniform(0.5, 1.0)
        try:  # the spooled writes of workers that are gone (killed, timed out) are delivered by us
            self.tracker.adopt_orphaned_spools(stale_after_s())
        except OSError as exc:
            log.warning("could not look for spools of workers that are gone: %s", exc)
        return retrying(lambda: reap_lost_workers(self.handle, self.tracker, sweep=sweep), what="look for lost workers")

    def _drain_spool(self, wait_s: float) -> None:
        if left := self.tracker.close(wait_s):
            folder = self.tracker.spool.folder
            log.warning(
                "%d run(s) still spooled in %s: the next worker to look delivers them, or run "
                "'tornadostudy tracking sync' once MLflow is back",
                len(left),
                folder,
            )


def idle_poll_s() -> float:
    """How often a worker with nothing to claim looks again while other workers' cells run."""
    return float(os.environ.get("TORNADOSTUDY_IDLE_POLL_S", min(heartbeat_s(), 10.0)))


def run_worker(opts: WorkerOptions) -> WorkerSummary:
    # Bind exactly the GPUs this worker was given before TensorFlow starts.
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(opts.gpu_ids) if opts.gpus else ""
    # A CPU worker hides no GPU on purpose: TensorFlow's "could not find cuda drivers" and cuInit errors are
    # noise there. A GPU worker keeps TensorFlow's warnings and errors. A value the user set wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if opts.gpus else "3")
    # TERM: scancel / node shutdown / `run`; USR1: SLURM's pre-timeout warning (sbatch --signal=B:USR1@…); INT.
    previous = install_stop_handlers()
    if os.environ.get("SLURM_ARRAY_TASK_ID"):
        # Hundreds of array tasks start in the same second: spread their first database round trips.
        time.sleep(random.uniform(0, opts.startup_jitter_s))
    worker = None
    try:
        worker = Worker(opts)
        return worker.run()
    finally:
        if worker is not None and worker.trainer is not None and hasattr(worker.trainer, "close"):
            worker.trainer.close()  # host augmentation processes, if a live_cpu trial started them
        restore_handlers(previous)
