"""Training on JAX with the data on the device and many steps per compiled call.

Keras's own ``fit`` loop costs ~1.8 ms of Python per step on the GPU machine measured (docs/benchmarks.md),
several times what a step of this small CNN costs on an H100. Here the training arrays are copied to the
device once per trial, the host only draws each step's row indices (``batch_rows``, the stream ``numpy_batches`` reads),
and ``lax.scan`` runs a chunk of steps (loss, gradients, optimizer update, live augmentation inside the
model) per call (on a CPU, one compiled step per call: see ``run_chunk``). The Keras callback protocol is
kept: ``on_epoch_begin``, ``on_train_batch_begin`` before each chunk (``model.stop_training`` ends the
epoch there), ``on_epoch_end`` with ``loss``, ``accuracy`` and, with validation data, ``val_loss`` and
``val_accuracy``.
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


def fit_on_device(model, x, y, *, batch_size: int, epochs: int, initial_epoch: int, steps_per_epoch: int,
                  seed: int, callback, validation_data=None, validation_batch_size: int = 1024,
                  scan: bool | None = None) -> None:  # fmt: skip
    """``scan``: many steps per call (default: unless the device is a CPU) or one step per call."""
    import jax
    import jax.numpy as jnp
    import keras

    from tornadostudy.train.backends import batch_rows

    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    # Everything the compiled call takes is committed to one device: JAX compiles a call again when an
    # argument's placement changes from uncommitted (fresh arrays) to committed (the call's own outputs).
    device = jax.config.jax_default_device or jax.devices()[0]
    x_dev, y_dev = jax.device_put(x, device), jax.device_put(y.astype(np.float32), device)
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
        scan = device.platform != "cpu"
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

    def variables():
        groups = (model.trainable_variables, model.non_trainable_variables, optimizer.variables)
        return jax.device_put([[v.value for v in group] for group in groups], device)

    def write_back(trainable, non_trainable, optimizer_state):
        for group, values in ((model.trainable_variables, trainable), (model.non_trainable_variables, non_trainable),
                              (optimizer.variables, optimizer_state)):  # fmt: skip
            for variable, value in zip(group, values, strict=True):
                variable.assign(value)

    # The index stream continues across epochs (like the tf.data stream), seeded per trial and epoch start,
    # so a resumed trial draws a fresh stream rather than replaying the first epoch's order.
    indices = batch_rows(len(x), batch_size, seed + initial_epoch)
    per_call = chunk_steps(steps_per_epoch)
    trainable, non_trainable, optimizer_state = variables()
    model.stop_training = False
    for epoch in range(initial_epoch, epochs):
        callback.on_epoch_begin(epoch)
        totals = jax.device_put(jnp.zeros(2, jnp.float32), device)
        done = 0
        while done < steps_per_epoch:
            callback.on_train_batch_begin(done)
            if model.stop_training:
                break
            take = min(per_call, steps_per_epoch - done)
            rows = np.stack([next(indices) for _ in range(take)]).astype(np.int32)
            trainable, non_trainable, optimizer_state, totals = run_chunk(
                (trainable, non_trainable, optimizer_state, totals), rows, (x_dev, y_dev)
            )
            done += take
        loss_sum, correct = (float(v) for v in totals)  # one wait for the device per epoch
        logs = {"loss": loss_sum / max(done, 1), "accuracy": correct / max(done * batch_size, 1)}
        write_back(trainable, non_trainable, optimizer_state)
        if validation_data is not None and not model.stop_training:
            scores = model.evaluate(*validation_data, batch_size=validation_batch_size, verbose=0, return_dict=True)
            logs.update({f"val_{name}": value for name, value in scores.items()})
            # Keras's evaluate donates the variables' buffers to its own step: carry on from what it left.
            trainable, non_trainable, optimizer_state = variables()
        callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
