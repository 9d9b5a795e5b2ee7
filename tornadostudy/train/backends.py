"""What the Keras trainer needs from the Keras backend it runs on: devices, placement, an input stream.

Keras 3 picks its backend from ``KERAS_BACKEND`` when it is first imported (default ``tensorflow``).
TensorFlow: a tf.data stream and ``tf.distribute`` (MirroredStrategy over several GPUs).
JAX (no TensorFlow needed at all): the training arrays go to the trial's devices once per trial and
``lax.scan`` runs many steps per compiled call; over several devices each batch is split between them
(data parallelism with ``jax.sharding``: tornadostudy/train/jax_loop.py).

Either backend can be given the devices a trial spreads over (``devices=``): the GPUs by default, or, in
tests, logical CPU devices, so the multi-device path runs on a machine without GPUs.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

import numpy as np

from tornadostudy.errors import EnvironmentFault, TrainingError
from tornadostudy.train.batches import batch_rows

__all__ = [
    "JaxBackend",
    "TensorFlowBackend",
    "compilation_cache_dir",
    "keras_backend",
    "numpy_batches",
    "quiet_native_startup",
]


def compilation_cache_dir(environ) -> str | None:
    """Where JAX keeps compiled programs on a GPU machine: ``JAX_COMPILATION_CACHE_DIR`` when set (JAX reads it
    itself; set it empty to turn the cache off), else ``$XDG_CACHE_HOME/tornadostudy/jax`` (``~/.cache/...``)."""
    if "JAX_COMPILATION_CACHE_DIR" in environ:
        return None
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tornadostudy", "jax")


def keras_backend():
    """The backend Keras was (or will be) imported with, as an object the trainer drives."""
    # Like TensorFlow's memory growth below: several workers may share a GPU, so JAX must not take
    # 75 % of its memory up front. Read when JAX starts, so set before Keras imports it.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import keras

    name = keras.backend.backend()
    if name == "tensorflow":
        return TensorFlowBackend()
    if name == "jax":
        return JaxBackend()
    raise TrainingError(
        f"KERAS_BACKEND={name} is not supported by the keras trainer: use tensorflow (default) or jax",
        kind="backend",
        retryable=False,
    )


def numpy_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, passes: int = 1
) -> Iterator[tuple[np.ndarray, ...]]:
    """:func:`~tornadostudy.train.batches.batch_rows` of ``x`` and ``y``."""
    return ((x[rows], y[rows]) for rows in batch_rows(len(x), batch_size, seed, passes))


def fit_batches(
    model, batches, *, epochs, initial_epoch, steps_per_epoch, callback, validation_data, validation_batch_size
) -> None:
    """Keras's own loop over an endless stream of full batches cut into epochs."""
    model.fit(
        batches,
        initial_epoch=initial_epoch,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_data,
        validation_batch_size=validation_batch_size,
        callbacks=[callback],
        shuffle=False,  # the stream shuffles itself
        verbose=0,
    )


def _too_many_gpus(num_gpus: int, seen: int) -> EnvironmentFault:
    return EnvironmentFault(
        f"the trial needs {num_gpus} GPU(s) but this worker sees {seen}: run it on a worker started with that many GPUs"
    )


class TensorFlowBackend:
    name = "tensorflow"

    def __init__(self, devices: list[str] | None = None) -> None:
        """``devices``: names of the devices a trial with N GPUs uses the first N of (default: the GPUs)."""
        import tensorflow as tf

        self.tf = tf
        self.gpus = tf.config.list_physical_devices("GPU")
        self.gpu_names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in self.gpus]
        for gpu in self.gpus:
            try:  # several workers may share a GPU; do not let one grab all its memory
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass
        self.devices = list(devices) if devices is not None else [f"/gpu:{i}" for i in range(len(self.gpus))]

    def strategy(self, num_gpus: int):
        """A distribution strategy: ``.scope()`` to build the model in, ``.num_replicas_in_sync``."""
        tf = self.tf
        if num_gpus == 0:
            return tf.distribute.OneDeviceStrategy("/cpu:0")
        if num_gpus > len(self.devices):
            raise _too_many_gpus(num_gpus, len(self.devices))
        if num_gpus == 1:
            return tf.distribute.OneDeviceStrategy(self.devices[0])
        # The batch size is the global batch: each replica trains on its share and the gradients are summed.
        return tf.distribute.MirroredStrategy(self.devices[:num_gpus])

    def stream(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, passes: int = 1):
        """Endless epochs of ``passes`` shuffled passes each, batched; an epoch's last batch may be smaller."""
        tf = self.tf
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return dataset.repeat(passes).batch(batch_size).repeat().prefetch(tf.data.AUTOTUNE)

    def fit(self, model, x, y, *, batch_size, seed, passes=1, **fit) -> None:
        fit_batches(model, self.stream(x, y, batch_size, seed, passes), **fit)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, self.tf.errors.ResourceExhaustedError)

    def device_names(self, num_gpus: int) -> list[str]:
        return [d.name for d in self.gpus[:num_gpus]] or list(self.devices[:num_gpus]) or ["cpu"]


class _JaxDevices:
    """The JAX counterpart of a strategy: the trial's devices. Keras builds the model on the first (JAX's
    default device); the device loop splits each batch over all of them."""

    def __init__(self, devices) -> None:
        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)

    def scope(self):
        return contextlib.nullcontext()


class JaxBackend:
    name = "jax"

    def __init__(self, devices=None) -> None:
        """``devices``: the JAX devices a trial with N GPUs uses the first N of (default: the GPUs)."""
        import jax

        self.jax = jax
        try:
            self.gpus = jax.devices("gpu")
        except RuntimeError:  # no GPU platform in this jaxlib or on this machine
            self.gpus = []
        self.devices = list(devices) if devices is not None else list(self.gpus)
        self.gpu_names = [d.device_kind for d in self.gpus]
        cache = compilation_cache_dir(os.environ) if self.gpus else None
        if cache:
            # Every trial builds a new model and so compiles its steps again (~1-1.5 s on an H100, most of a
            # short trial); XLA's persistent cache serves trials of the same shapes from disk, across trials and
            # worker processes (docs/benchmarks.md). Takes effect at the first compilation.
            jax.config.update("jax_compilation_cache_dir", cache)

    def strategy(self, num_gpus: int):
        if num_gpus > len(self.devices):
            raise _too_many_gpus(num_gpus, len(self.devices))
        # Keras places a trial on JAX's default device: the (first) GPU, or the CPU for a cell that asked for none.
        devices = self.devices[:num_gpus] if num_gpus else self.jax.devices("cpu")[:1]
        self.jax.config.update("jax_default_device", devices[0])
        self._devices = devices
        return _JaxDevices(devices)

    def fit(self, model, x, y, *, batch_size, seed, passes=1, **fit) -> None:
        """The training arrays on the trial's devices and many steps per compiled call (train/jax_loop.py), or
        with ``TORNADOSTUDY_JAX_FIT=keras`` Keras's own ``fit`` over a numpy batch stream (one device only)."""
        if os.environ.get("TORNADOSTUDY_JAX_FIT", "device") == "keras" and len(self._devices) == 1:
            fit_batches(model, numpy_batches(x, y, batch_size, seed, passes), **fit)
            return
        from tornadostudy.train.jax_loop import fit_on_device

        fit["callback"].set_model(model)
        fit_on_device(model, x, y, batch_size=batch_size, seed=seed, passes=passes, devices=self._devices, **fit)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return "RESOURCE_EXHAUSTED" in str(exc)

    def device_names(self, num_gpus: int) -> list[str]:
        return [str(d) for d in self.devices[:num_gpus]] or ["cpu"]


# What TensorFlow and XLA print from native code while they start on a machine without a GPU. It goes straight to
# file descriptor 2 before Python's logging or TF_CPP_MIN_LOG_LEVEL can filter it.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|Could not find cuda drivers|failed call to cuInit|"
    r"oneDNN custom operations are on|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already|"
    r"TF-TRT Warning|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler flags|"
    r"cuda_executor|Unable to initialize backend 'cuda'|An NVIDIA GPU may be present"
)


@contextlib.contextmanager
def quiet_native_startup(enabled: bool = True):
    """Hide the known start-up noise that TensorFlow/XLA print from native code on a CPU machine (CUDA drivers
    not found, cuInit failed, oneDNN notes); anything else they print is passed on to stderr unchanged."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _STARTUP_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
