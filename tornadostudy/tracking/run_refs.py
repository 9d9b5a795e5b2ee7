"""Trial runs that the delivery thread makes, so that no trial waits for MLflow to start.

A trial's run is named before it exists by a *run ref*, ``key-<experiment id>-<run key>``: the run key
is derived from the trial, and the run is tagged with it. The run's creation is the first write spooled
under the ref, and its params, epochs and end follow it. The delivery thread creates the run, learns its
id and delivers the rest to that id. A trial therefore starts training even while MLflow is away. Before,
each trial waited for one create call, queued at the tracking server behind every other worker's.

MLflow's create_run has no idempotency key, and a create whose answer was lost may still have made the
run. Only the first attempt of this process creates straight away. A retry, and an adopter delivering a
dead worker's spool, first look for a run tagged with the key. If any creation had to be looked up
first, runs that appear under the key later (a request the server finished late) are deleted before the
run is closed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tornadostudy.errors import TrackingError

__all__ = [
    "REF_PREFIX",
    "RUN_KEY_TAG",
    "RunBook",
    "close_abandoned_runs",
    "new_run_key",
    "parse_ref",
    "run_ref",
    "trial_run_key",
]

log = logging.getLogger(__name__)

REF_PREFIX = "key-"
# A key the worker makes before it asks for a trial run: a create whose answer was lost can be found again
# under it instead of being made twice (MLflow's create_run has no idempotency key of its own).
RUN_KEY_TAG = "tornadostudy.run_key"


def new_run_key() -> str:
    return uuid.uuid4().hex


def trial_run_key(study_id: int, trial_number: int) -> str:
    """The run key of an Optuna trial, computable from the trial alone: a reaper finds the run of a
    worker that died between making it and recording its id, without the worker writing anything more."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"tornadostudy:study/{study_id}/trial/{trial_number}").hex


def close_abandoned_runs(spool) -> int:
    """In the spool of a worker that is gone, end each run it never closed as KILLED, after the run's
    other writes. The worker died during the trial. If it died before its run was made, the run is only
    made now, by the adopter, after any reaper has already looked for it. Returns how many runs were ended."""
    ended = 0
    for ref in spool.runs():
        if not any(op.get("op") == "end" for op in spool.writes(ref)):
            spool.append(ref, {"op": "tags", "tags": {"fail_reason": "its worker was gone before closing the run"}})
            spool.append(ref, {"op": "end", "status": "KILLED", "ts": int(time.time() * 1000)})
            ended += 1
    return ended


def run_ref(experiment_id: str, run_key: str) -> str:
    if not (str(experiment_id).isalnum() and run_key.isalnum()):
        raise TrackingError(f"cannot name a run by experiment {experiment_id!r} and key {run_key!r}")
    return f"{REF_PREFIX}{experiment_id}-{run_key}"


def parse_ref(ref: str) -> tuple[str, str] | None:
    """(experiment id, run key) of a run ref; None for a plain MLflow run id."""
    if not ref.startswith(REF_PREFIX):
        return None
    experiment_id, _, run_key = ref[len(REF_PREFIX) :].partition("-")
    return experiment_id, run_key


class RunBook:
    """Which MLflow run each ref names, each made once. ``create(experiment_id, op)`` makes a run
    and returns its id, ``find(experiment_id, run_key)`` lists the ids of runs tagged with the key (oldest
    first) and ``drop(experiment_id, run_key, keep)`` deletes the others."""

    def __init__(self, create: Callable, find: Callable, drop: Callable) -> None:
        self._create, self._find, self._drop = create, find, drop
        self._ids: dict[str, str] = {}
        self._fresh: set[str] = set()  # refs this process opened and has not yet tried to create
        self._looked_up: set[str] = set()  # refs whose creation may have made a second run
        self._on_made: dict[str, Callable[[str], None]] = {}
        self._lock = threading.Lock()

    def expect(self, ref: str, reuse: bool, on_made: Callable[[str], None] | None) -> None:
        """A ref this process opens: its first create goes straight to MLflow unless ``reuse`` (a retry
        of a create whose answer may have been lost). ``on_made(run_id)`` is called once it exists."""
        with self._lock:
            if not reuse:
                self._fresh.add(ref)
            if on_made is not None:
                self._on_made[ref] = on_made

    def known(self, ref: str) -> str | None:
        """The run id, if the run is made (a plain id is its own); never waits for MLflow."""
        return ref if parse_ref(ref) is None else self._ids.get(ref)

    def create(self, ref: str, op: dict[str, Any]) -> str:
        experiment_id, run_key = parse_ref(ref)
        with self._lock:
            fresh = ref in self._fresh
            self._fresh.discard(ref)  # from now on, any attempt looks first
        if not fresh:
            self._looked_up.add(ref)
        found = [] if fresh else self._find(experiment_id, run_key)
        if found:
            run_id = found[0]
            log.warning("reusing MLflow run %s made by an earlier attempt whose answer was lost", run_id)
        else:
            run_id = self._create(experiment_id, op)
        self._made(ref, run_id)
        return run_id

    def resolve(self, ref: str) -> str:
        """The run id of ``ref`` for a write: made by this process, else looked up by its key (a
        spool adopted after its worker made the run and died)."""
        if (run_id := self.known(ref)) is not None:
            return run_id
        experiment_id, run_key = parse_ref(ref)
        found = self._find(experiment_id, run_key)
        if not found:
            raise TrackingError(
                f"no MLflow run was made under key {run_key} (its creation was refused, or the run was deleted)",
                permanent=True,
            )
        self._looked_up.add(ref)
        self._made(ref, found[0])
        return found[0]

    def before_end(self, ref: str, run_id: str) -> None:
        """Delete runs a late create made under the ref's key (best effort: a left-over duplicate is
        harmless next to a run that is never closed)."""
        if ref not in self._looked_up:
            return
        experiment_id, run_key = parse_ref(ref)
        try:
            self._drop(experiment_id, run_key, run_id)  # kept in _looked_up: sweep() looks once more
        except TrackingError as exc:
            log.warning("could not look for duplicates of MLflow run %s (%s)", run_id, str(exc)[:200])

    def sweep(self) -> None:
        """Look once more for duplicates of every run whose creation may have made a second one: a create
        re-sent by the HTTP client can reach the server after its trial ended."""
        for ref in list(self._looked_up):
            if (run_id := self._ids.get(ref)) is not None:
                self.before_end(ref, run_id)
                self._looked_up.discard(ref)

    def _made(self, ref: str, run_id: str) -> None:
        self._ids[ref] = run_id
        with self._lock:
            on_made = self._on_made.pop(ref, None)
        if on_made is not None:
            try:
                on_made(run_id)
            except Exception as exc:  # only a label: the run is still found by its key
                log.warning("could not record MLflow run %s: %s", run_id, str(exc)[:200])
