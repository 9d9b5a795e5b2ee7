"""Trial checkpoints: enough to resume a trial at the epoch where it was interrupted.

A checkpoint folder holds ``state.json`` (epochs done, per-epoch history, wall-time parts spent so far,
attempts) plus whatever the trainer needs (the Keras trainer: model weights and optimizer state). It is
written to a temporary name and renamed, so a checkpoint is either complete or absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["TrialInterrupted", "clear", "load_state", "save_state"]

STATE = "state.json"


class TrialInterrupted(Exception):
    """The trial stopped at a batch boundary on request and left a checkpoint (or none: ``epoch`` 0)."""

    def __init__(self, epoch: int, checkpointed: bool) -> None:
        super().__init__(f"interrupted after epoch {epoch}" + (", checkpointed" if checkpointed else ""))
        self.epoch = epoch
        self.checkpointed = checkpointed


def save_state(folder: Path, state: dict[str, Any], write_extra=None) -> None:
    """Atomically replace the checkpoint in ``folder`` (``write_extra(tmp)`` adds trainer files)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if write_extra is not None:
        write_extra(tmp)
    (tmp / STATE).write_text(json.dumps(state))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_state(folder: Path | None) -> dict[str, Any] | None:
    if folder is None or not (Path(folder) / STATE).is_file():
        return None
    return json.loads((Path(folder) / STATE).read_text())


def clear(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
