"""A worker's tracking writes, delivered from a background thread so that no epoch waits for MLflow.

The trial's thread appends each write to the worker's spool (a killed worker loses nothing; a trial's
final numbers and its run's end are synced to disk with the run's earlier writes) and goes on training;
this thread delivers every spooled run in order. While MLflow is away the writes wait on disk and the
thread tries again after 1 s, doubling to 30 s. Spools adopted from workers that are gone are delivered
the same way. MLflow's own asynchronous logging is not used: its queue lives in memory and dies with the
process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from tornadostudy.errors import UserInputError
from tornadostudy.tracking.spool import Spool

__all__ = ["Deliverer", "linger_s"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


def linger_s() -> float:
    """After a write arrives, how long the delivery thread waits for more before one call delivers them
    all (``TORNADOSTUDY_TRACKING_LINGER_S``, default 2 s): a short trial's params, epochs and final numbers
    become one round trip, and a curve in the MLflow UI is at most that late. 0: deliver each at once."""
    text = os.environ.get("TORNADOSTUDY_TRACKING_LINGER_S", "2")
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(
            f"TORNADOSTUDY_TRACKING_LINGER_S={text!r} is not a number of seconds: use e.g. 2"
        ) from None
    if not 0 <= value <= 60:
        raise UserInputError(f"TORNADOSTUDY_TRACKING_LINGER_S={value:g} is out of range: use 0 to 60 seconds")
    return value


class Deliverer:
    """Delivers ``spool`` (and adopted spools) through ``apply(run_id, op)`` in a daemon thread.

    ``merge`` groups a run's waiting writes into one call each (see :meth:`Spool.replay`); ``linger_s``:
    after a write arrives, wait this long for more before delivering, so writes that come close together
    (a short trial's params, epochs and final numbers) share one call. Draining cuts the wait short."""

    def __init__(
        self,
        spool: Spool,
        apply: Callable[[str, dict[str, Any]], None],
        alive_every_s: float = 30.0,
        merge: Callable[[list[dict[str, Any]]], list[list[dict[str, Any]]]] | None = None,
        linger_s: float = 0.0,
    ):
        self.spool = spool
        self._apply = apply
        self._alive_every_s = alive_every_s
        self._merge, self._linger_s = merge, linger_s
        self._hurry = threading.Event()  # set by drain: no lingering
        self._spools = [spool]
        self._lock = threading.Lock()
        # Bumped by every notify: a pass that found nothing left only means "idle" if no write came
        # in after it began.
        self._generation = 0
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._outage: str | None = None
        self._thread = threading.Thread(target=self._run, name="tornadostudy-tracking", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A write was spooled: deliver it (now, unless MLflow is away and the back-off is running)."""
        with self._lock:
            self._generation += 1
            self._idle.clear()
        self._wake.set()

    def adopt(self, spools: list[Spool]) -> None:
        if spools:
            with self._lock:
                self._spools.extend(spools)
            self.notify()

    def waiting(self) -> list[str]:
        """Run ids with writes not yet delivered."""
        with self._lock:
            spools = list(self._spools)
        return [run_id for spool in spools for run_id in spool.runs()]

    def drain(self, timeout_s: float) -> list[str]:
        """Deliver everything now, waiting at most ``timeout_s``; returns the run ids still waiting."""
        self._hurry.set()
        self.notify()  # also cuts a running back-off short
        self._idle.wait(timeout_s)
        return self.waiting()

    def close(self, timeout_s: float = 0.0) -> list[str]:
        left = self.drain(timeout_s) if timeout_s else self.waiting()
        self._closing = True
        self._hurry.set()
        self._wake.set()
        self._thread.join(timeout=5)
        return left

    # --- the thread ----------------------------------------------------------------------------
    def _deliver_all(self) -> str | None:
        """One pass over every spool; the reason a write could not be delivered, or None."""
        failure: list[str] = []

        def apply(run_id: str, op: dict[str, Any]) -> None:
            try:
                self._apply(run_id, op)
            except Exception as exc:
                failure[:] = [str(exc)[:200]]
                raise

        with self._lock:
            spools = list(self._spools)
        for spool in spools:
            for run_id in spool.runs():
                if not spool.replay(run_id, lambda op, r=run_id: apply(r, op), self._merge):
                    # MLflow is away: stop here rather than wait out a timeout for every other run.
                    return failure[0] if failure else "a write could not be delivered"
            if spool is not self.spool and not spool.runs():
                spool.remove_if_empty()
                with self._lock:
                    self._spools.remove(spool)
        return None

    def _run(self) -> None:
        delay, next_alive = 0.0, 0.0
        while not self._closing:
            if self._wake.wait(timeout=delay or self._alive_every_s) and self._linger_s and not delay:
                self._hurry.wait(self._linger_s)  # let the writes that follow this one join it
            self._wake.clear()
            with self._lock:
                seen = self._generation
            try:
                failure = self._deliver_all()
            except Exception as exc:  # e.g. the spool's disk: keep the writes, keep trying
                failure = f"spool error: {exc}"
            if time.monotonic() >= next_alive:
                next_alive = time.monotonic() + self._alive_every_s
                try:
                    self.spool.touch_alive()
                except OSError as exc:
                    log.warning("cannot mark the spool %s alive: %s", self.spool.folder, exc)
            if failure:
                if self._outage is None:
                    log.warning(
                        "MLflow unreachable (%s): spooling writes in %s until it is back", failure, self.spool.folder
                    )
                self._outage = failure
                delay = min(max(delay * 2, 1.0), MAX_BACKOFF_S)
                continue
            if self._outage is not None:
                log.warning("MLflow is back: the spooled writes are delivered")
                self._outage = None
            delay = 0.0
            with self._lock:
                if self._generation == seen:
                    self._idle.set()
                    self._hurry.clear()  # all delivered: the next writes may linger again
