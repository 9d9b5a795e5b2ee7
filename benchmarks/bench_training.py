"""Training throughput: tornadostudy's trainer vs a paper-style baseline, side by side, same data and model.

Baseline (what the paper's code did, in today's Keras): ``model.fit`` on numpy arrays without XLA; live
augmentation on the CPU in Python, batch by batch, in a generator (the role ImageDataGenerator played).
tornadostudy: tf.data over the prepared arrays, XLA-compiled steps, live augmentation inside the compiled
step. Steady-state samples/s exclude each run's first (tracing/compiling) epoch.

    python benchmarks/bench_training.py              # 3,000 storms, 10 epochs, batch 128
    python benchmarks/bench_training.py --quick      # seconds; what the test suite runs

Prints a table, then ``ratio=`` (tornadostudy ÷ baseline steady samples/s, pre-augmented).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _prepare(storms: int, folder: Path) -> Path:
    from tornadostudy.data.prepare import PrepareOptions, prepare
    from tornadostudy.data.synth import synthesize

    synthesize(folder / "raw", storms=storms, seed=0)
    prepare(PrepareOptions(source=folder / "raw", out=folder / "prepared", multipliers=(1,)))
    return folder / "prepared"


def _steady(epoch_times: list[float], samples: int) -> float:
    steady = epoch_times[1:] or epoch_times
    return samples / statistics.median(steady)


def tornadostudy_run(folder: Path, mode: str, epochs: int, batch: int) -> float:
    from tornadostudy.spec import TrainerSpec
    from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams
    from tornadostudy.train.keras_trainer import KerasTrainer

    times: list[float] = []

    class Timer(TrialCallbacks):
        def on_epoch_end(self, epoch, metrics):
            times.append(metrics["epoch_time_s"])

    trainer = KerasTrainer(TrainerSpec(kind="keras", jit_compile=True), folder)
    params = TrialParams(
        epochs=epochs, batch_size=batch, learning_rate=1e-3, data_multiplier=1, num_gpus=0, augmentation=mode
    )
    result = trainer.train(params, Timer(), TrialContext(0))
    return _steady(times, result.info["train_samples"])


def baseline_run(folder: Path, mode: str, epochs: int, batch: int) -> float:
    import keras
    import numpy as np

    from tornadostudy.data.prepared import PreparedData
    from tornadostudy.model import build_cnn

    data = PreparedData.open(folder)
    x, y = (np.asarray(a) for a in data.train_original())
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    keras.backend.clear_session()
    model = build_cnn(1e-3, jit_compile=False)
    if mode == "pre":
        model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[Timer()])
        return _steady(times, len(x))
    steps = len(x) // batch
    model.fit(
        python_augmented_batches(data, x, y, batch),
        steps_per_epoch=steps,
        epochs=epochs,
        verbose=0,
        callbacks=[Timer()],
    )
    return _steady(times, steps * batch)


def python_augmented_batches(data, x, y, batch: int):
    """The baseline's live augmentation: CPU-side, in Python, one batch at a time, endlessly."""
    import numpy as np

    from tornadostudy.data.augment import AugmentConfig, augment_numpy

    config, mean, scale = AugmentConfig(**data.manifest["augmentation"]), data.mean, data.scale
    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(x))
        for i in range(len(x) // batch):
            idx = order[i * batch : (i + 1) * batch]
            yield augment_numpy(x[idx], rng, config, mean, scale), y[idx]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the benchmark runs")
    parser.add_argument("--storms", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    storms, epochs = (400, 2) if args.quick else (args.storms, args.epochs)

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        folder = _prepare(storms, Path(tmp))
        rows = {}
        for mode in ("pre", "live"):
            rows[("baseline", mode)] = baseline_run(folder, mode, epochs, args.batch_size)
            rows[("tornadostudy", mode)] = tornadostudy_run(folder, mode, epochs, args.batch_size)

    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, TF {tf.__version__}"
    )
    print(f"data: {storms} synthetic storms, batch {args.batch_size}, {epochs} epochs (steady = epochs 2+)")
    print(f"{'':14}{'pre samples/s':>15}{'live samples/s':>16}{'live/pre time':>15}")
    for who in ("baseline", "tornadostudy"):
        pre, live = rows[(who, "pre")], rows[(who, "live")]
        print(f"{who:14}{pre:15.0f}{live:16.0f}{pre / live:15.2f}")
    speed_pre = rows[("tornadostudy", "pre")] / rows[("baseline", "pre")]
    speed_live = rows[("tornadostudy", "live")] / rows[("baseline", "live")]
    print(f"speed-up pre {speed_pre:.2f}x, live {speed_live:.2f}x (targets on 2 cores: >= 1.5x; live/pre <= 1.3)")
    print(f"ratio={speed_pre:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
