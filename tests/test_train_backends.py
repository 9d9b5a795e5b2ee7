"""The Keras trainer on its two backends: TensorFlow (the rest of the suite) and JAX (here, in a subprocess,
since Keras picks its backend once per process)."""

import json
import os
import subprocess
import sys
from collections import Counter
from importlib.util import find_spec

import numpy as np
import pytest

from tornadostudy.train.backends import compilation_cache_dir, numpy_batches
from tornadostudy.train.batches import steps_per_epoch
from tornadostudy.train.jax_loop import chunk_steps


@pytest.mark.parametrize(("n", "batch", "passes"), [(10, 5, 1), (7, 5, 1), (3, 5, 1), (7, 5, 3)])
def test_every_epoch_is_whole_passes_with_a_smaller_last_batch(n, batch, passes):
    x = np.arange(n, dtype=np.float32)[:, None]
    stream = numpy_batches(x, np.arange(n), batch, seed=1, passes=passes)
    steps = steps_per_epoch(n, passes, batch)
    for _ in range(3):  # three epochs
        epoch = [next(stream) for _ in range(steps)]
        sizes = [len(by) for _, by in epoch]
        assert sizes[:-1] == [batch] * (steps - 1) and 0 < sizes[-1] <= batch
        assert all((bx[:, 0] == by).all() and (np.diff(by) >= 0).all() for bx, by in epoch)
        # every row exactly `passes` times: an epoch never sees more samples than its passes hold
        assert Counter(np.concatenate([by for _, by in epoch]).tolist()) == dict.fromkeys(range(n), passes)
    again = numpy_batches(x, np.arange(n), batch, seed=1, passes=passes)
    first = numpy_batches(x, np.arange(n), batch, seed=1, passes=passes)
    assert all((next(again)[1] == next(first)[1]).all() for _ in range(steps)), "the same seed, the same stream"


def test_jax_compiles_into_a_user_cache_unless_told_where_or_not_to(tmp_path):
    assert compilation_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "tornadostudy" / "jax")
    assert compilation_cache_dir({}) == os.path.join(os.path.expanduser("~"), ".cache", "tornadostudy", "jax")
    # The user's own setting (a path, or empty for no cache) is JAX's to read: tornadostudy sets nothing.
    assert compilation_cache_dir({"JAX_COMPILATION_CACHE_DIR": ""}) is None
    assert compilation_cache_dir({"JAX_COMPILATION_CACHE_DIR": "/scratch/jc", "XDG_CACHE_HOME": "/x"}) is None


@pytest.mark.parametrize(
    ("steps", "per_call"),
    [(100, 100), (608, 152), (512, 256), (257, 256), (2 * 131, 131), (4 * 67, 134), (2 * 257, 256)],
)
def test_an_epoch_is_cut_into_calls_of_one_length_where_it_can(steps, per_call):
    # 608 steps (batch 128 at full size) = 4 calls of 152; 514 = 2 × 257 has only tiny divisors: 256, 256, 2
    assert chunk_steps(steps) == per_call


_JAX_TRIAL = """
import json, sys
from tornadostudy.spec import TrainerSpec
from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams
from tornadostudy.train.checkpoint import TrialInterrupted
from tornadostudy.train.keras_trainer import KerasTrainer

class Stop(TrialCallbacks):
    # asks for a stop at the first poll after `after` epochs ended (polled per chunk of steps on JAX)
    def __init__(self, after):
        self.after, self.epochs = after, []
    def on_epoch_end(self, epoch, metrics):
        self.epochs.append(epoch)
    def should_stop(self):
        return len(self.epochs) >= self.after

trainer = KerasTrainer(TrainerSpec(kind="keras", evaluate_every_epoch=True), sys.argv[1])
out = {}
for mode in ("pre", "live"):
    params = TrialParams(epochs=2, batch_size=64, learning_rate=1e-3, data_multiplier=2, num_gpus=0, augmentation=mode)
    first = Stop(after=99 if mode == "pre" else 1)  # live: stopped in epoch 2, resumed from epoch 1's end
    context = TrialContext(0, checkpoint_dir=__import__("pathlib").Path(sys.argv[2]) / mode)
    try:
        result = trainer.train(params, first, context)
    except TrialInterrupted as stop:
        out[mode + "_interrupted_at"] = stop.epoch
        second = Stop(after=99)
        result = trainer.train(params, second, context)
        first.epochs += second.epochs
    out[mode] = {"epochs": first.epochs, "info": result.info, "test": result.test, "times": result.times}
print(json.dumps(out))
"""


def _jax_env(**extra) -> dict:
    if find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install -e '.[test]' installs it)")
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", **extra}


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["device", "keras"])
def test_a_trial_trains_checkpoints_and_resumes_on_jax(prepared_small, tmp_path, loop):
    env = _jax_env(TORNADOSTUDY_JAX_FIT=loop)
    done = subprocess.run(
        [sys.executable, "-c", _JAX_TRIAL, str(prepared_small), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.splitlines()[-1])
    for mode in ("pre", "live"):
        assert out[mode]["epochs"] == [1, 2], out[mode]
        assert out[mode]["info"]["keras_backend"] == "jax"
        assert out[mode]["info"]["devices"] == ["cpu"]
        assert 0 <= out[mode]["test"]["accuracy"] <= 1
        assert set(out[mode]["times"]) == {"data_s", "first_epoch_s", "steady_epochs_s", "eval_s", "test_s"}
    assert out["live_interrupted_at"] == 1, "stopped inside epoch 2; the resumed attempt trained epoch 2 only"
    assert out["live"]["info"]["resumed_from_epoch"] == 1


_SCAN_VS_STEPS = """
import json, keras, numpy as np
from tornadostudy.data.augment import AugmentConfig
from tornadostudy.model import build_cnn, storm_augmentation_layer
from tornadostudy.train.jax_loop import fit_on_device

class Logs:
    def __init__(self):
        self.epochs = []
    def set_model(self, model):
        pass
    def on_epoch_begin(self, epoch):
        pass
    def on_train_batch_begin(self, step):
        pass
    def on_epoch_end(self, epoch, logs):
        self.epochs.append(logs)

rng = np.random.default_rng(0)
x = rng.normal(size=(300, 32, 32, 3)).astype(np.float32)
y = (rng.random(300) < 0.3).astype(np.float32)
out = {}
for scan in (True, False):
    keras.utils.set_random_seed(1)
    model = build_cnn(1e-3, augmentation=storm_augmentation_layer(AugmentConfig(), None, None, seed=2))
    logs = Logs()
    fit_on_device(model, x, y, batch_size=32, epochs=2, initial_epoch=0, steps_per_epoch=10, seed=3,
                  callback=logs, scan=scan)
    out[str(scan)] = {"logs": logs.epochs, "weights": [float(np.abs(w).sum()) for w in model.get_weights()]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_many_steps_per_call_train_exactly_as_one_step_per_call():
    env = _jax_env()
    done = subprocess.run([sys.executable, "-c", _SCAN_VS_STEPS], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.splitlines()[-1])
    scan, steps = out["True"], out["False"]
    assert [sorted(e) for e in scan["logs"]] == [["accuracy", "loss"]] * 2
    for a, b in zip(scan["logs"], steps["logs"], strict=True):
        assert a == pytest.approx(b, rel=1e-3)
    assert scan["weights"] == pytest.approx(steps["weights"], rel=1e-3, abs=1e-5)  # float32 sums in another order
    assert scan["logs"][0]["loss"] != scan["logs"][1]["loss"], "it trained"
