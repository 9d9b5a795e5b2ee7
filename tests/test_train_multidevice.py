"""A trial spread over 2-4 devices really trains on its multi-device path, on logical CPU devices.

TensorFlow: MirroredStrategy over logical CPU devices (tf.config.set_logical_device_configuration).
JAX: data parallelism over host devices made by ``XLA_FLAGS=--xla_force_host_platform_device_count``.
Each runs in a fresh interpreter, because both settings must be made before the framework starts.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SCRIPT = """
import json, os, sys
devices = int(sys.argv[2])
backend_name = os.environ["KERAS_BACKEND"]
if backend_name == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    from tornadostudy.train.backends import TensorFlowBackend
    backend = TensorFlowBackend(devices=[f"/cpu:{i}" for i in range(devices)])
else:
    import jax
    from tornadostudy.train.backends import JaxBackend
    backend = JaxBackend(devices=jax.devices("cpu"))
from tornadostudy.spec import TrainerSpec
from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams
from tornadostudy.train.keras_trainer import KerasTrainer

trainer = KerasTrainer(TrainerSpec(kind="keras", jit_compile=False), sys.argv[1], backend=backend)
out = {}
for n in (1, devices):
    params = TrialParams(epochs=2, batch_size=64, learning_rate=1e-3, data_multiplier=1, num_gpus=n,
                         augmentation="live")
    result = trainer.train(params, TrialCallbacks(), TrialContext(0))
    out[n] = {"replicas": result.info["replicas"], "devices": result.info["devices"],
              "loss": [h["loss"] for h in result.history], "auc": result.test["auc"],
              "samples": result.info["train_samples"]}
print("RESULT " + json.dumps(out))
"""


def _run(prepared, backend: str, devices: int) -> dict:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(prepared), str(devices)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return {int(k): v for k, v in json.loads(line[7:]).items()}


@pytest.mark.parametrize(("backend", "devices"), [("tensorflow", 2), ("tensorflow", 4), ("jax", 4)])
def test_a_trial_trains_data_parallel_over_several_devices(prepared_small, backend, devices):
    pytest.importorskip(backend)
    result = _run(prepared_small, backend, devices)
    one, many = result[1], result[devices]
    assert one["replicas"] == 1 and many["replicas"] == devices
    assert len(many["devices"]) == devices
    assert many["samples"] == one["samples"], "the global batch is split, the epoch is the same"
    for run in (one, many):
        assert all(loss == loss and loss < 5 for loss in run["loss"]), run
        assert run["loss"][-1] < run["loss"][0] * 1.5
    # Same data, same model, split batches: the curves agree in scale (not bit for bit: reductions reorder).
    assert many["loss"][-1] == pytest.approx(one["loss"][-1], rel=0.5)
