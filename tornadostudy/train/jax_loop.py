"""Training on JAX with the data on the trial's devices and many steps per compiled call.

Keras's own ``fit`` loop costs ~1.8 ms of Python per step on a GPU, several times what a step of this small
CNN costs there. Here the training arrays are copied to the devices once per trial, the host only draws each
step's row indices (:func:`~tornadostudy.train.batches.batch_rows`), and ``lax.scan`` runs a chunk of steps
(loss, gradients, optimizer update, live augmentation inside the model) per call (on a CPU, one compiled step
per call: see ``run_chunk``). An epoch's last, smaller batch runs in a call of its own.

Over several devices the trial is data-parallel: the arrays and the model's variables are replicated on every
device, each step's rows are split between the devices (``jax.sharding``), and XLA sums the gradients, so a
step trains on the whole global batch as on one device. A batch that does not split evenly runs replicated.

The Keras callback protocol is kept: ``on_epoch_begin``, ``on_train_batch_begin`` before each call
(``model.stop_training`` ends the epoch there), ``on_test_begin``/``on_test_end`` around validation, and
``on_epoch_end`` with ``loss``, ``accuracy`` and, with validation data, ``val_loss`` and ``val_accuracy``.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["chunk_steps", "fit_on_device"]

MAX_CHUNK_STEPS = 256  # steps per compiled call: how often a stop request is looked at


def chunk_steps(steps_per_epoch: int, most: int = MAX_CHUNK_STEPS) -> int:
    """Steps per call: a divisor of the epoch, so every call has one shape (one compilation), unless the
    epoch's only divisors are small (then the epoch's last call is shorter and compiles once more)."""
    if steps_per_epoch <= most:
        return steps_per_epoch
    best = max(d for d in range(1, most + 1) if steps_per_epoch % d == 0)
    return best if best >= most // 4 else most


def fit_on_device(
    model,
    x,
    y,
    *,
    batch_size: int,
    epochs: int,
    initial_epoch: int,
    steps_per_epoch: int,
    seed: int,
    callback,
    passes: int = 1,
    devices=None,
    validation_data=None,
    validation_batch_size: int = 1024,
    scan: bool | None = None,
) -> None:
    """``scan``: many steps per call (default: unless the device is a CPU) or one step per call.
    ``devices``: the trial's devices (default: JAX's default device)."""
    import jax
    import jax.numpy as jnp
    import keras
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from tornadostudy.train.batches import batch_rows

    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    devices = list(devices or [jax.config.jax_default_device or jax.devices()[0]])
    home = devices[0]
    # Everything a compiled call takes is committed to the trial's devices: JAX compiles a call again when an
    # argument's placement changes from uncommitted (fresh arrays) to committed (the call's own outputs).
    mesh = Mesh(np.array(devices), ("data",))
    replicated = NamedSharding(mesh, P())
    split = NamedSharding(mesh, P(None, "data"))  # a chunk's rows (steps, batch): each device takes a share
    x_dev, y_dev = jax.device_put(x, replicated), jax.device_put(y.astype(np.float32), replicated)
    loss_of = keras.losses.BinaryCrossentropy()

    def loss_and_prediction(trainable, non_trainable, xb, yb):
        prediction, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
        return loss_of(yb, prediction[:, 0]), (prediction[:, 0], non_trainable)

    gradient = jax.value_and_grad(loss_and_prediction, has_aux=True)

    # The training arrays are an argument of every compiled call, never captured: a captured array becomes
    # a constant of the program, and XLA took ~24 s to compile one holding a full training set (H100 measured).
    def step(data, carry, rows):
        xs, ys = data
        trainable, non_trainable, optimizer_state, totals = carry
        yb = ys[rows]
        (loss, (prediction, non_trainable)), grads = gradient(trainable, non_trainable, xs[rows], yb)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        correct = jnp.sum((prediction >= 0.5) == (yb >= 0.5))
        return (trainable, non_trainable, optimizer_state, totals + jnp.stack([loss, correct])), None

    if scan is None:
        scan = home.platform != "cpu"
    if not scan:
        # XLA:CPU runs this model's convolutions inside a loop (scan) ~15x slower than as straight-line code
        # (measured: 530 vs 34 ms a step), and a CPU step is long enough to pay one call each.
        one_step = jax.jit(step)

        def run_chunk(carry, rows, data):
            for step_rows in rows:
                carry, _ = one_step(data, carry, step_rows)
            return carry

    else:

        @jax.jit
        def run_chunk(carry, rows, data):
            return jax.lax.scan(functools.partial(step, data), carry, rows)[0]

    def place_rows(rows: np.ndarray):
        return jax.device_put(rows, split if rows.shape[1] % len(devices) == 0 else replicated)

    def variables():
        groups = (model.trainable_variables, model.non_trainable_variables, optimizer.variables)
        return jax.device_put([[v.value for v in group] for group in groups], replicated)

    def write_back(trainable, non_trainable, optimizer_state):
        # Back on the first device, where Keras's own evaluate and predict run.
        for group, values in (
            (model.trainable_variables, trainable),
            (model.non_trainable_variables, non_trainable),
            (optimizer.variables, optimizer_state),
        ):
            for variable, value in zip(group, values, strict=True):
                variable.assign(jax.device_put(value, home) if len(devices) > 1 else value)

    # The index stream continues across epochs, seeded per trial and epoch start, so a resumed trial draws a
    # fresh stream rather than replaying the first epoch's order.
    indices = batch_rows(len(x), batch_size, seed + initial_epoch, passes)
    full_steps = len(x) * passes // batch_size
    per_call = chunk_steps(max(full_steps, 1))
    trainable, non_trainable, optimizer_state = variables()
    model.stop_training = False
    for epoch in range(initial_epoch, epochs):
        callback.on_epoch_begin(epoch)
        totals = jax.device_put(jnp.zeros(2, jnp.float32), replicated)
        done = seen = 0
        while done < steps_per_epoch:
            callback.on_train_batch_begin(done)
            if model.stop_training:
                break
            # Full batches in chunks; the epoch's last, smaller batch (if any) in a call of its own.
            take = min(per_call, full_steps - done) if done < full_steps else 1
            rows = np.stack([next(indices) for _ in range(take)]).astype(np.int32)
            trainable, non_trainable, optimizer_state, totals = run_chunk(
                (trainable, non_trainable, optimizer_state, totals), place_rows(rows), (x_dev, y_dev)
            )
            done += take
            seen += rows.size
        loss_sum, correct = (float(v) for v in totals)  # one wait for the devices per epoch
        logs = {"loss": loss_sum / max(done, 1), "accuracy": correct / max(seen, 1)}
        write_back(trainable, non_trainable, optimizer_state)
        if validation_data is not None and not model.stop_training:
            callback.on_test_begin()
            scores = model.evaluate(*validation_data, batch_size=validation_batch_size, verbose=0, return_dict=True)
            callback.on_test_end()
            logs.update({f"val_{name}": value for name, value in scores.items()})
            # Keras's evaluate donates the variables' buffers to its own step: carry on from what it left.
            trainable, non_trainable, optimizer_state = variables()
        callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
