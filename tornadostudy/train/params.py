"""Plain objects passed between the study side and the trainers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrialCallbacks", "TrialContext", "TrialParams", "TrialResult"]


@dataclass(frozen=True)
class TrialParams:
    epochs: int
    batch_size: int
    learning_rate: float
    data_multiplier: int
    num_gpus: int
    augmentation: str
    repeat: int = 0

    @classmethod
    def from_mapping(cls, params: dict[str, Any]) -> TrialParams:
        return cls(**{name: params[name] for name in cls.__dataclass_fields__ if name in params})

    def label(self) -> str:
        """A short readable name, e.g. ``bs=128 ep=5 k=1 gpu=1 pre``."""
        text = (
            f"bs={self.batch_size} ep={self.epochs} k={self.data_multiplier} gpu={self.num_gpus} "
            f"{self.augmentation} lr={self.learning_rate:g}"
        )
        return text + (f" r={self.repeat}" if self.repeat else "")


@dataclass(frozen=True)
class TrialContext:
    """Who runs the trial (seeding, failure injection) and where it may checkpoint and resume."""

    trial_number: int
    attempt: int = 1
    seed: int = 0
    checkpoint_dir: Path | None = None


class TrialCallbacks:
    """Progress hooks a trainer calls; the default does nothing."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """``epoch`` counts from 1; ``metrics`` holds that epoch's loss, accuracy, epoch_time_s, …"""

    def should_stop(self) -> bool:
        """Polled at batch boundaries: True asks the trainer to stop, checkpoint (see :meth:`may_checkpoint`)
        and raise TrialInterrupted."""
        return False

    def may_checkpoint(self) -> bool:
        """Whether a stopped trial may write its checkpoint: not when the cell is no longer this worker's (its
        new owner uses the cell's checkpoint folder)."""
        return True


@dataclass
class TrialResult:
    wall_time_s: float
    # The parts of the wall time: data_s, first_epoch_s (build + compile + first epoch), steady_epochs_s, test_s.
    times: dict[str, float]
    history: list[dict[str, float]]
    test: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Every final number of the trial, flat, as logged and optimised."""
        last = self.history[-1] if self.history else {}
        out = {"wall_time_s": self.wall_time_s, **{f"time_{k}": v for k, v in self.times.items()}}
        out.update({f"test_{k}": v for k, v in self.test.items()})
        if "loss" in last:
            out["train_loss"] = last["loss"]
        if "accuracy" in last:
            out["train_accuracy"] = last["accuracy"]
        return out
