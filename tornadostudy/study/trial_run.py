"""A trial's MLflow run, made exactly once even when the tracking server answers late or not at all.

MLflow's create_run has no idempotency key: a create whose answer is lost (a timeout, a dropped
connection) may still have made the run. Each trial therefore tags its run with a key made before the
first attempt; a retry looks for the key before creating, and if any attempt failed, runs made under the
key after that look (the server finishing a timed-out request late) are deleted when the trial ends.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tornadostudy.errors import TrackingError
from tornadostudy.tracking import Tracker, new_run_key

__all__ = ["tracking_retry", "trial_run"]

log = logging.getLogger(__name__)


def tracking_retry(fn, budget_s: float = 600.0):
    """Creating a run needs MLflow: wait for it (bounded, logged) rather than train untracked."""
    deadline, delay = time.monotonic() + budget_s, 2.0
    while True:
        try:
            return fn()
        except TrackingError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("MLflow unavailable (%s); retrying in %.0fs", str(exc)[:200], delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


@contextmanager
def trial_run(
    tracker: Tracker,
    experiment_id: str,
    parent_run_id: str | None,
    run_name: str,
    params: dict[str, Any],
    tags: dict[str, Any],
    run_key: str | None = None,
) -> Iterator[str]:
    """Yields the trial's run id; on leaving, drops duplicates of it if its creation had to be retried.
    ``run_key``: a key derived from the trial, so a reaper can find the run before its id is recorded."""
    run_key, attempts = run_key or new_run_key(), itertools.count()
    run_id = tracking_retry(
        lambda: tracker.start_trial_run(
            experiment_id, parent_run_id, run_name, params, tags, run_key=run_key, reuse=next(attempts) > 0
        )
    )
    try:
        yield run_id
    finally:
        if next(attempts) > 1:  # a create failed, so its run may yet appear: by now the server has made it
            try:
                tracker.drop_duplicate_runs(experiment_id, run_key, keep=run_id)
            except TrackingError as exc:
                log.warning("could not look for duplicates of MLflow run %s (%s)", run_id, str(exc)[:200])
