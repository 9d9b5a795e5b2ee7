"""The ``simulate`` trainer: no TensorFlow, a duration from a cost model and made-up curves.

For testing the study machinery at scale and for planning a real study. Two cost models:

* ``profile = "paper"``: the wall times of the paper's hardware, fitted to its Tables 2-9
  (tornadostudy/paper/profile.py), for the samples this trial sees per epoch;
* ``profile = "quick"`` (default): a small toy model for tests (time ∝ samples seen, larger batches cheaper
  per sample, extra GPUs add synchronisation cost).

``train_samples`` in ``[trainer]`` models a 1× training set of that size instead of the prepared data's
(138963: the paper's). With ``time_scale > 0`` it really sleeps ``time_scale`` seconds per modelled second,
epoch by epoch, so workers overlap as they would on a cluster. Everything is deterministic by (seed, params,
attempt).
"""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np

from tornadostudy.data.prepared import EpochSet, PreparedData
from tornadostudy.errors import TrainingError
from tornadostudy.train.checkpoint import TrialInterrupted, load_state, save_state
from tornadostudy.train.params import TrialCallbacks, TrialContext, TrialParams, TrialResult
from tornadostudy.train.scores import climatology_scores

__all__ = ["SimulatedTrainer", "modelled_seconds"]


def modelled_seconds(params: TrialParams, n_train: int, profile: str = "quick") -> dict[str, float]:
    """Modelled wall-time parts of one trial whose 1× training set has ``n_train`` samples."""
    samples_per_epoch = n_train * params.data_multiplier
    if profile == "paper":
        from tornadostudy.paper.profile import paper_seconds

        fields = ("epochs", "batch_size", "data_multiplier", "num_gpus", "augmentation")
        total = paper_seconds(**{f: getattr(params, f) for f in fields}, n_train=n_train)
        once = paper_seconds(**{f: getattr(params, f) for f in fields if f != "epochs"}, epochs=0, n_train=n_train)
        epoch = (total - once) / params.epochs
        # The paper printed totals only: its per-trial constant is split evenly between loading and testing.
        return {
            "data_s": once / 2,
            "first_epoch_s": epoch,
            "steady_epochs_s": epoch * (params.epochs - 1),
            "eval_s": 0.0,
            "test_s": once / 2,
        }
    steps = math.ceil(samples_per_epoch / params.batch_size)
    if params.num_gpus == 0:
        per_step = 2.0e-3 + params.batch_size * 3.0e-4
    else:
        per_step = (2.5e-3 + params.batch_size * 1.2e-6 / params.num_gpus) + 1.5e-3 * (params.num_gpus - 1)
        if params.augmentation != "pre":
            per_step *= 1.1 if params.augmentation == "live" else 1.9
    epoch = steps * per_step
    return {
        "data_s": 0.5 + 1e-6 * samples_per_epoch,
        "first_epoch_s": 2.0 + epoch,
        "steady_epochs_s": epoch * (params.epochs - 1),
        "eval_s": 0.0,
        "test_s": 0.3 + 2e-6 * n_train,
    }


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class SimulatedTrainer:
    # Sleeps are cut into slices this long: the "batch boundaries" where a stop request is honoured.
    SLICE_S = 0.05

    def __init__(self, trainer_spec, data_folder) -> None:
        self.spec = trainer_spec
        self.data = PreparedData.open(data_folder)
        # NumPy loads its random module on first use (~10 ms of CPU): here, not inside the first trial, which
        # on a busy machine runs while other workers start and waits for a CPU at every step.
        _rng("warm-up")

    def _sleep(self, seconds: float, callbacks: TrialCallbacks) -> bool:
        """Sleep ``seconds``; False (early) when a stop is requested."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if callbacks.should_stop():
                return False
            time.sleep(min(left, self.SLICE_S))
        return not callbacks.should_stop()

    def check_environment(self, num_gpus: int) -> None:
        """The prepared data is whole (the simulated GPUs need no check)."""
        self.data.verify()

    def epoch_set(self, params: TrialParams) -> EpochSet:
        rows = self.data.epoch_set(params.data_multiplier, params.augmentation)
        if self.spec.train_samples is None:
            return rows
        # A modelled set of train_samples rows (per pass) at the prepared set's positive fraction.
        size = self.spec.train_samples * (rows.set_multiplier if rows.passes == 1 else 1)
        return EpochSet(rows.set_multiplier, rows.passes, size, round(size * rows.positive_fraction))

    def train(self, params: TrialParams, callbacks: TrialCallbacks, context: TrialContext) -> TrialResult:
        rows = self.epoch_set(params)
        n_train = rows.samples // params.data_multiplier
        model = modelled_seconds(params, n_train, self.spec.profile)
        state = load_state(context.checkpoint_dir) or {"epoch": 0, "history": [], "attempt_times": []}
        done, history = state["epoch"], list(state["history"])
        # How fast this configuration learns: more updates and a larger step learn faster.
        updates = rows.samples / params.batch_size
        rate = 0.02 * math.sqrt(updates) * min(params.learning_rate / 1e-3, 3.0)
        failing = _rng(context.seed, params, "attempt", context.attempt, context.trial_number)
        fail_epoch = (
            int(failing.integers(done + 1, params.epochs + 1))
            if failing.random() < self.spec.fail_probability and done < params.epochs
            else None
        )
        epoch_seconds = model["steady_epochs_s"] / max(params.epochs - 1, 1)
        # This attempt pays for loading data and compiling again, then for the epochs it runs.
        times = {"data_s": model["data_s"], "first_epoch_s": 0.0, "steady_epochs_s": 0.0, "eval_s": 0.0, "test_s": 0.0}
        for epoch in range(done + 1, params.epochs + 1):
            # The first epoch of every attempt carries the build/compile cost.
            seconds = model["first_epoch_s"] if epoch == done + 1 else epoch_seconds
            if not self._sleep(seconds * self.spec.time_scale, callbacks):
                self._checkpoint(context, callbacks, epoch - 1, history, state["attempt_times"] + [times])
            if epoch == fail_epoch:
                raise TrainingError(f"simulated failure in epoch {epoch} (fail_probability)", kind="exception")
            times["first_epoch_s" if epoch == done + 1 else "steady_epochs_s"] += seconds
            noise = _rng(context.seed, params, "epoch", epoch)
            progress = 1.0 - math.exp(-rate * epoch)
            loss = 0.19 - 0.07 * progress + 0.004 * noise.standard_normal()
            accuracy = 0.952 + 0.02 * progress + 0.002 * noise.standard_normal()
            metrics = {"loss": float(loss), "accuracy": float(min(accuracy, 0.999)), "epoch_time_s": float(seconds)}
            if self.spec.evaluate_every_epoch:
                metrics["val_loss"] = float(loss + 0.01 + 0.004 * noise.standard_normal())
                metrics["val_accuracy"] = float(min(accuracy - 0.004, 0.999))
            history.append(metrics)
            callbacks.on_epoch_end(epoch, metrics)
        times["test_s"] = model["test_s"]
        rng = _rng(context.seed, params, "test")
        progress = 1.0 - math.exp(-rate * params.epochs)
        pod = 0.2 + 0.5 * progress + 0.03 * rng.standard_normal()
        far = 0.6 - 0.3 * progress + 0.03 * rng.standard_normal()
        test = {
            "accuracy": float(history[-1]["accuracy"] - 0.005),
            "auc": float(min(0.55 + 0.4 * progress + 0.01 * rng.standard_normal(), 0.999)),
            "pod": float(np.clip(pod, 0, 1)),
            "far": float(np.clip(far, 0, 1)),
            "brier": 0.0,  # below: a share of climatology's Brier score, falling as the model learns
            "loss": float(history[-1]["loss"] + 0.01),
        }
        test["csi"] = float(1 / (1 / max(test["pod"], 1e-3) + 1 / max(1 - test["far"], 1e-3) - 1))
        counts = self.data.manifest["counts"]
        base_rate = counts["test_positives"] / max(counts["test"], 1)
        test["brier"] = float(base_rate * (1 - base_rate) * (1.02 - 0.3 * progress))
        test.update(climatology_scores(test["brier"], base_rate))
        attempts = state["attempt_times"] + [times]
        total = {k: sum(a.get(k, 0.0) for a in attempts) for k in times}
        return TrialResult(
            wall_time_s=float(sum(total.values())),
            times=total,
            history=history,
            test=test,
            info={
                "trainer": "simulate",
                "per_replica_batch": params.batch_size // max(params.num_gpus, 1),
                "train_samples": rows.samples,
                "train_positive_fraction": rows.positive_fraction,
                "attempts_run": len(attempts),
                "resumed_from_epoch": done,
            },
        )

    def _checkpoint(
        self, context: TrialContext, callbacks: TrialCallbacks, epoch: int, history: list, attempt_times: list
    ) -> None:
        if context.checkpoint_dir is None or not callbacks.may_checkpoint():
            raise TrialInterrupted(epoch, checkpointed=False)
        save_state(context.checkpoint_dir, {"epoch": epoch, "history": history, "attempt_times": attempt_times})
        raise TrialInterrupted(epoch, checkpointed=True)
