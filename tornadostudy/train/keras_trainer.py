"""The ``keras`` trainer: the paper's CNN on a prepared data set, one trial at a time.

A worker keeps one trainer for its whole life, so Keras and its backend (TensorFlow, or JAX with
``KERAS_BACKEND=jax``: tornadostudy/train/backends.py) are imported once and the arrays of a
(data set, multiplier) are loaded once and reused by every trial that needs them.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from tornadostudy.data.augment import AugmentConfig
from tornadostudy.data.prepared import EpochSet, PreparedData
from tornadostudy.errors import DataError, EnvironmentFault, TrainingError
from tornadostudy.train import batches
from tornadostudy.train.backends import fit_batches
from tornadostudy.train.checkpoint import TrialInterrupted, load_state, save_state
from tornadostudy.train.host_augment import HostAugmenter
from tornadostudy.train.params import TrialCallbacks, TrialContext, TrialParams, TrialResult
from tornadostudy.train.scores import binary_scores

__all__ = ["KerasTrainer"]

log = logging.getLogger(__name__)


class KerasTrainer:
    def __init__(self, trainer_spec, data_folder, backend=None) -> None:
        """``backend``: the Keras backend object to drive (default: the one Keras runs on, over the GPUs)."""
        from tornadostudy.train.backends import keras_backend

        self.backend = backend or keras_backend()
        self.spec = trainer_spec
        self.data = PreparedData.open(data_folder)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._host: HostAugmenter | None = None
        self.gpus = self.backend.gpus
        self.gpu_names = self.backend.gpu_names

    def check_environment(self, num_gpus: int) -> None:
        """Before a worker claims: the GPUs it is to bind are visible to the framework and the prepared data is
        whole. Raises EnvironmentFault or DataError; no cell is touched."""
        seen = len(self.backend.devices)
        if num_gpus > seen:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise EnvironmentFault(
                f"this worker was started to bind {num_gpus} GPU(s) (CUDA_VISIBLE_DEVICES={visible!r}) but "
                f"{self.backend.name} sees {seen}: check the node's GPUs (nvidia-smi) and the job's --gres, or "
                "start the worker with --gpus 0 for the CPU cells; no cell was charged"
            )
        self.data.verify()

    def epoch_set(self, params: TrialParams) -> EpochSet:
        return self.data.epoch_set(params.data_multiplier, params.augmentation)

    def close(self) -> None:
        """Stop the host augmentation processes, if any were started."""
        if self._host is not None:
            self._host.close()
            self._host = None

    # --- data ------------------------------------------------------------------------------------
    def _arrays_for(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        if key not in self._arrays:
            if key == "test":
                x, y = self.data.test()
            else:
                x, y = self.data.train(int(key))
            self._arrays[key] = (np.ascontiguousarray(x), np.asarray(y, dtype=np.float32))
        return self._arrays[key]

    # --- training --------------------------------------------------------------------------------
    def train(self, params: TrialParams, callbacks: TrialCallbacks, context: TrialContext) -> TrialResult:
        try:
            return self._train(params, callbacks, context)
        except (TrainingError, TrialInterrupted, EnvironmentFault):
            raise
        except (DataError, OSError) as exc:  # a data file vanished or broke under the worker: not the cell's fault
            raise EnvironmentFault(f"the prepared data failed to load: {exc}") from exc
        except Exception as exc:
            if self.backend.is_out_of_memory(exc):
                message = str(exc).splitlines()[0]
                raise TrainingError(f"out of memory: {message}", kind="oom", retryable=False) from exc
            raise TrainingError(f"{type(exc).__name__}: {exc}", kind="exception", retryable=True) from exc
        finally:
            import keras

            keras.backend.clear_session()

    def _train(self, params: TrialParams, callbacks: TrialCallbacks, context: TrialContext) -> TrialResult:
        import keras

        from tornadostudy.model import build_cnn, storm_augmentation_layer

        start = time.perf_counter()
        # Pre: one pass over the stored k× set per epoch. Live (device or CPU): k passes over the balanced 1×
        # set, each freshly augmented. The same samples per epoch and the same balance either way.
        rows = self.epoch_set(params)
        x, y = self._arrays_for(str(rows.set_multiplier))
        x_test, y_test = self._arrays_for("test")
        seed = context.seed * 1_000_003 + context.trial_number
        keras.utils.set_random_seed(seed % 2**31)
        # One endless stream, cut into epochs of whole passes: the epoch's last batch may be smaller, so an
        # epoch never sees more samples than its passes hold (that batch's shape compiles once more).
        steps_per_epoch = batches.steps_per_epoch(rows.rows, rows.passes, params.batch_size)
        data_s = time.perf_counter() - start

        state = load_state(context.checkpoint_dir) or {"epoch": 0, "history": [], "attempt_times": []}
        strategy = self.backend.strategy(params.num_gpus)
        with strategy.scope():
            augmentation = None
            if params.augmentation == "live":
                aug = AugmentConfig(**self.data.manifest["augmentation"])
                augmentation = storm_augmentation_layer(aug, self.data.mean, self.data.scale, seed=seed % 2**31)
            try:
                model = build_cnn(params.learning_rate, jit_compile=self.spec.jit_compile, augmentation=augmentation)
            except Exception as exc:
                if self.backend.is_out_of_memory(exc):  # before any batch: the device is taken, not too small
                    raise EnvironmentFault(f"out of device memory building the model: {exc}") from exc
                raise
            if state["epoch"]:
                _restore(model, context.checkpoint_dir)

        history: list[dict[str, float]] = []
        epoch_ends: list[float] = []
        interrupted: list[bool] = []
        evaluation = {"s": 0.0, "epoch_s": 0.0}  # per-epoch test-set evaluation: all of it, this epoch's

        class _Relay(keras.callbacks.Callback):
            # At a batch's start, not its end: Keras hands batch-end hooks the step's logs as Python floats,
            # which waits for the device every step (2.5 ms a step with it on an H100, measured on JAX).
            def on_train_batch_begin(self, batch, logs=None):
                if callbacks.should_stop():  # a batch boundary: this batch is the last, then checkpoint
                    self.model.stop_training = True
                    interrupted.append(True)

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()
                evaluation["epoch_s"] = 0.0

            # Evaluation with validation data is timed apart: it is neither training time nor an epoch's time.
            def on_test_begin(self, logs=None):
                self._test_t = time.perf_counter()

            def on_test_end(self, logs=None):
                spent = time.perf_counter() - self._test_t
                evaluation["s"] += spent
                evaluation["epoch_s"] += spent

            def on_epoch_end(self, epoch, logs=None):
                if interrupted:  # a partial epoch is neither logged nor counted: the resume redoes it
                    return
                now = time.perf_counter()
                epoch_ends.append(now)
                if len(epoch_ends) == 1:
                    evaluation["first_s"] = evaluation["epoch_s"]
                metrics = {k: float(v) for k, v in (logs or {}).items()}
                metrics["epoch_time_s"] = now - self._t - evaluation["epoch_s"]
                if not all(math.isfinite(v) for v in metrics.values()):
                    self.model.stop_training = True
                history.append(metrics)
                callbacks.on_epoch_end(epoch + 1, metrics)

        fit_start = time.perf_counter()
        fit = {
            "epochs": params.epochs,
            "initial_epoch": state["epoch"],
            "steps_per_epoch": steps_per_epoch,
            "callback": _Relay(),
            "validation_data": (x_test, y_test) if self.spec.evaluate_every_epoch else None,
            "validation_batch_size": max(params.batch_size, 1024),
        }
        if params.augmentation == "live_cpu":
            if self._host is None:
                self._host = HostAugmenter(self.data.root, self.spec.augment_workers)
            stream = self._host.batches(
                y, rows.set_multiplier, batch_size=params.batch_size, passes=rows.passes, seed=seed + state["epoch"]
            )
            try:
                fit_batches(model, stream, **fit)
            finally:
                stream.close()
        else:
            self.backend.fit(model, x, y, batch_size=params.batch_size, seed=seed, passes=rows.passes, **fit)
        if history and not math.isfinite(history[-1].get("loss", 0.0)):
            raise TrainingError(f"loss became NaN/inf in epoch {len(history)}", kind="nan_loss", retryable=False)
        if interrupted:
            first_end = epoch_ends[0] if epoch_ends else time.perf_counter()
            first_eval = evaluation.get("first_s", 0.0)
            spent = {
                "data_s": data_s,
                "first_epoch_s": first_end - fit_start + (fit_start - start - data_s) - first_eval,
                "steady_epochs_s": (time.perf_counter() - first_end if epoch_ends else 0.0)
                - (evaluation["s"] - first_eval),
                "eval_s": evaluation["s"],
                "test_s": 0.0,
            }
            done = state["epoch"] + len(history)
            if context.checkpoint_dir is None or not callbacks.may_checkpoint():
                raise TrialInterrupted(done, checkpointed=False)
            save_state(
                context.checkpoint_dir,
                {
                    "epoch": done,
                    "history": state["history"] + history,
                    "attempt_times": state["attempt_times"] + [spent],
                },
                write_extra=lambda folder: _save(model, folder),
            )
            raise TrialInterrupted(done, checkpointed=True)

        test_start = time.perf_counter()
        prob = model.predict(x_test, batch_size=4096, verbose=0).ravel()
        test = binary_scores(y_test, prob)
        end = time.perf_counter()
        first_end = epoch_ends[0] if epoch_ends else test_start
        # Evaluation inside the first epoch (validation runs at an epoch's end) belongs to eval_s, not to it.
        first_eval = evaluation.get("first_s", 0.0)
        times = {
            "data_s": data_s,
            "first_epoch_s": first_end - fit_start + (fit_start - start - data_s) - first_eval,
            "steady_epochs_s": test_start - first_end - (evaluation["s"] - first_eval),
            "eval_s": evaluation["s"],
            "test_s": end - test_start,
        }
        attempts = state["attempt_times"] + [times]
        total = {k: sum(a.get(k, 0.0) for a in attempts) for k in times}  # wall time is accounted across attempts
        replicas = strategy.num_replicas_in_sync
        return TrialResult(
            wall_time_s=sum(total.values()),
            times=total,
            history=state["history"] + history,
            test=test,
            info={
                "trainer": "keras",
                "keras_backend": self.backend.name,
                "replicas": replicas,
                "per_replica_batch": params.batch_size // replicas,
                "devices": self.backend.device_names(params.num_gpus),
                "train_samples": rows.samples,
                "train_positive_fraction": rows.positive_fraction,
                "attempts_run": len(attempts),
                "resumed_from_epoch": state["epoch"],
            },
        )


def _save(model, folder: Path) -> None:
    """Model weights and optimizer state (moments, step count), enough to continue training exactly."""
    model.save_weights(folder / "model.weights.h5")
    import keras

    np.savez(folder / "optimizer.npz", *[keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])


def _restore(model, folder: Path) -> None:
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)  # before loading, so its slots exist to be filled
    model.load_weights(folder / "model.weights.h5")
    saved = np.load(folder / "optimizer.npz")
    for i, variable in enumerate(optimizer.variables):
        variable.assign(saved[f"arr_{i}"])
