"""How a worker stops: on a signal, at a trial's next batch boundary with a checkpoint, and after too many
trials in a row that failed at once (a bad node must not burn through the grid).

SIGTERM (``scancel``, a node's shutdown, ``tornadostudy run`` passing on a Ctrl-C) and SIGUSR1 (SLURM's
warning before the time limit): a training trial stops at its next batch, writes its checkpoint, and its
cell goes back uncharged; the next worker resumes it from that epoch. Between trials the worker stops at
once. SIGINT (Ctrl-C on a worker started by hand) does the same; a second SIGINT stops at once and gives the
trial back without a checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from tornadostudy.errors import EnvironmentFault, UserInputError

__all__ = [
    "IN_TRIAL",
    "STOP_REQUESTED",
    "FailureStreak",
    "WorkerStopped",
    "install_stop_handlers",
    "max_failures_in_a_row",
    "restore_handlers",
    "stop_signal",
]

log = logging.getLogger(__name__)

# Set by a signal while a trial trains: the trainer checkpoints at its next batch boundary.
STOP_REQUESTED = threading.Event()
IN_TRIAL = threading.Event()
_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
_received: list[str] = []


class WorkerStopped(BaseException):
    """Raised in the worker when it is told to stop (a signal): unwinds the current trial cleanly."""


def stop_signal() -> str:
    """The name of the signal that asked the worker to stop ('' if none)."""
    return _received[0] if _received else ""


def _on_signal(signum, _frame) -> None:
    name = signal.Signals(signum).name
    repeated = name in _received
    _received.append(name)
    if IN_TRIAL.is_set() and not (repeated and name == "SIGINT"):
        if not repeated:
            # Ctrl-C at a terminal deserves an answer at once; a scheduler's signal is reported when the trial stops.
            if name == "SIGINT":
                log.warning(
                    "SIGINT: the trial stops at its next batch and keeps a checkpoint (Ctrl-C again to stop "
                    "at once, without a checkpoint)"
                )
            else:
                log.info("%s: the trial stops at its next batch and keeps a checkpoint", name)
        STOP_REQUESTED.set()
        return
    raise WorkerStopped(f"{name}, {'while training (second Ctrl-C)' if repeated else 'between trials'}")


def install_stop_handlers() -> dict:
    """Install the handlers; returns the previous ones (to restore)."""
    STOP_REQUESTED.clear()
    _received.clear()
    return {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}


def restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def max_failures_in_a_row() -> int:
    """``TORNADOSTUDY_MAX_FAILURES_IN_A_ROW`` (default 3): trials in a row that fail before their first epoch
    after which a worker stops."""
    text = os.environ.get("TORNADOSTUDY_MAX_FAILURES_IN_A_ROW", "3")
    try:
        value = int(text)
    except ValueError:
        raise UserInputError(f"TORNADOSTUDY_MAX_FAILURES_IN_A_ROW={text!r} is not a whole number: use e.g. 3") from None
    if value < 1:
        raise UserInputError(f"TORNADOSTUDY_MAX_FAILURES_IN_A_ROW={value} must be at least 1: use e.g. 3")
    return value


class FailureStreak:
    """Counts this worker's trials that failed before finishing an epoch, in a row, whatever the reason: N
    such failures say more about the node than about N cells, so the worker stops instead of failing the
    grid cell by cell. A trial that finishes an epoch, or completes, ends the streak."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.last = limit, 0, ""

    def trial_ended(self, failed: bool, epochs_done: int, reason: str = "") -> None:
        if failed and epochs_done == 0:
            self.count, self.last = self.count + 1, reason
            if self.count >= self.limit:
                raise EnvironmentFault(
                    f"{self.count} trials in a row failed before their first epoch (last: {self.last[:300]}); "
                    "this worker stops so that one bad node cannot fail the study. Check the node, then put "
                    "the failed cells back with 'tornadostudy retry STUDY --failed'"
                )
        else:
            self.count = 0
