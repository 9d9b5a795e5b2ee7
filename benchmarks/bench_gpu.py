"""The paper's wall-time cells on one GPU: tornadostudy's trainer vs a paper-style baseline on the same GPU,
next to the seconds the paper measured on V100s.

Cells: the paper's Tables 3, 5 and 7 at data multiplier 1 — epochs 5/10/15 × batch 128…4096 × pre-augmented
and live, all on one GPU here (the paper's Tables 3/5 trained on one V100 of its 4×V100 node; Table 7 gives
1 V100 at batch 128). The paper trained on 138,963 samples; this benchmark on the 121,137 storms' training part.
Wall time as the paper counts it: training + testing. tornadostudy: a trial's ``wall_time_s`` (data, the first,
compiling epoch, the steady epochs, the test set). Baseline (bench_training.py's, the paper's approach in today's
Keras): ``fit`` on numpy arrays — without XLA on TensorFlow (graph mode, as the paper's TF 1 code), compiled on
JAX (it has no other fast mode) — and live augmentation in numpy, batch by batch, in a Python generator.
The baseline runs the ``--baseline-epochs`` × ``--baseline-batch-sizes`` cells only (default 5 × 128, 1024):
its live mode augments on one CPU core and would take most of the run.

    python benchmarks/bench_gpu.py                      # full size: 121,137 synthetic storms
    python benchmarks/bench_gpu.py --quick              # small, any machine (no GPU needed): what the tests run
    KERAS_BACKEND=jax python benchmarks/bench_gpu.py    # Keras on JAX: no TensorFlow needed

Prints a table, then ``ratio=`` (the paper's 1-V100 seconds ÷ tornadostudy's, 5 epochs, batch 128, pre-augmented).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
STORMS = 121_137  # the paper's raw data set


def _paper(mode: str, epochs: int, batch: int, tables: tuple[int, ...]) -> float | None:
    """The paper's seconds for a cell at multiplier 1 on one V100 (Tables 3/5 or Table 7). Its live
    augmentation ran on the CPU, so a live row here is set beside the paper's live (our live_cpu)."""
    from tornadostudy.paper import paper_value

    params = {
        "augmentation": "pre" if mode == "pre" else "live_cpu",
        "epochs": epochs,
        "batch_size": batch,
        "data_multiplier": 1,
        "num_gpus": 1,
    }
    found = paper_value("wall_time_s", params, tables)
    return found[1] if found else None


def _prepare(storms: int, folder: Path) -> Path:
    from tornadostudy.data.prepare import PrepareOptions, prepare
    from tornadostudy.data.synth import synthesize

    start = time.perf_counter()
    synthesize(folder / "raw", storms=storms, seed=0)
    prepare(PrepareOptions(source=folder / "raw", out=folder / "prepared", multipliers=(1,)))
    print(f"data: {storms} storms synthesized and prepared in {time.perf_counter() - start:.0f} s", flush=True)
    return folder / "prepared"


def tornadostudy_cell(trainer, mode: str, epochs: int, batch: int, gpus: int) -> dict:
    from tornadostudy.train import TrialCallbacks, TrialContext, TrialParams

    params = TrialParams(
        epochs=epochs, batch_size=batch, learning_rate=1e-3, data_multiplier=1, num_gpus=gpus, augmentation=mode
    )
    result = trainer.train(params, TrialCallbacks(), TrialContext(0))
    steady_epochs = max(epochs - 1, 1)
    return {
        "wall_s": result.wall_time_s,
        "first_epoch_s": result.times["first_epoch_s"],
        "steady_epoch_s": result.times["steady_epochs_s"] / steady_epochs,
        "test_accuracy": result.test["accuracy"],
        "device": result.info["devices"][0],
    }


def baseline_cell(data, mode: str, epochs: int, batch: int) -> dict:
    import keras
    import numpy as np

    from tornadostudy.model import build_cnn

    start = time.perf_counter()
    x, y = (np.asarray(a) for a in data.train_original())
    x_test, y_test = (np.asarray(a) for a in data.test())
    keras.backend.clear_session()
    model = build_cnn(1e-3, jit_compile=keras.backend.backend() != "tensorflow")
    if mode == "pre":
        model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
    else:
        from bench_training import python_augmented_batches  # this script's folder is on sys.path

        batches = python_augmented_batches(data, x, y, batch)
        model.fit(batches, steps_per_epoch=len(x) // batch, epochs=epochs, verbose=0)
    prob = model.predict(x_test, batch_size=4096, verbose=0).ravel()
    accuracy = float(((prob >= 0.5) == (y_test >= 0.5)).mean())
    return {"wall_s": time.perf_counter() - start, "test_accuracy": accuracy}


def _machine(trainer) -> str:
    import keras

    gpus = ", ".join(trainer.gpu_names) or "no GPU"
    return f"{platform.node()}: {os.cpu_count()} CPUs, {gpus}; Keras {keras.__version__} on {keras.backend.backend()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, any machine: checks the benchmark runs")
    parser.add_argument("--storms", type=int, default=STORMS)
    parser.add_argument("--data", type=Path, help="a prepared data folder to use instead of synthesizing one")
    parser.add_argument("--epochs", default="5,10,15")
    parser.add_argument("--batch-sizes", default="128,256,512,1024,2048,4096")
    parser.add_argument("--baseline-epochs", default="5", help="epochs whose cells the baseline runs too ('' = none)")
    parser.add_argument("--baseline-batch-sizes", default="128,1024", help="batch sizes the baseline runs")
    parser.add_argument("--json", type=Path, help="also write every cell's numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        # Two epoch counts (a steady epoch to time) and one batch size: every code path, half the cells.
        args.storms, args.epochs, args.batch_sizes, args.baseline_epochs = 400, "1,2", "128", "1"
        args.baseline_batch_sizes = "128"
    epochs_list = [int(e) for e in args.epochs.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    baseline_epochs = {int(e) for e in args.baseline_epochs.split(",") if e}
    baseline_batches = {int(b) for b in args.baseline_batch_sizes.split(",") if b}

    from tornadostudy.data.prepared import PreparedData
    from tornadostudy.spec import TrainerSpec
    from tornadostudy.train.keras_trainer import KerasTrainer

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or _prepare(args.storms, Path(tmp))
        trainer = KerasTrainer(TrainerSpec(kind="keras", jit_compile=True), folder)
        gpus = 1 if trainer.gpus else 0
        print(_machine(trainer), flush=True)
        data = PreparedData.open(folder)
        # A worker starts its backend once (GPU context, cuDNN, autotuning) and then runs many trials:
        # that start is timed here, apart, instead of being charged to whichever cell comes first.
        warm_up = time.perf_counter()
        tornadostudy_cell(trainer, "live", 1, batches[-1], gpus)
        warm_up = time.perf_counter() - warm_up
        print(f"backend warm-up (one 1-epoch trial, not in the table): {warm_up:.1f} s", flush=True)
        rows = []
        for epochs in epochs_list:
            for batch in batches:
                for mode in ("pre", "live"):
                    row = {"epochs": epochs, "batch": batch, "mode": mode}
                    row["tornadostudy"] = tornadostudy_cell(trainer, mode, epochs, batch, gpus)
                    if epochs in baseline_epochs and batch in baseline_batches:
                        row["baseline"] = baseline_cell(data, mode, epochs, batch)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)  # progress, and whatever is done if cut off

    n_train = data.manifest["counts"]["train"]
    print(
        f"data: {n_train} training storms (multiplier 1, no balancing; the paper: 138,963 samples), 1 device; "
        "seconds = training + test"
    )
    print(
        f"{'epochs':>6}{'batch':>6}{'mode':>6}{'paper T3/T5':>14}{'paper T7':>14}{'baseline':>10}"
        f"{'tornadostudy':>14}{'1st epoch':>11}{'steady/epoch':>14}{'vs baseline':>13}"
    )
    for r in rows:
        ours, base = r["tornadostudy"], r.get("baseline")
        p4 = _paper(r["mode"], r["epochs"], r["batch"], (3, 5))
        p1 = _paper(r["mode"], r["epochs"], r["batch"], (7,))
        cells = [
            f"{p4:14.0f}" if p4 else f"{'':14}",
            f"{p1:14.0f}" if p1 else f"{'':14}",
            f"{base['wall_s']:10.1f}" if base else f"{'':10}",
        ]
        speed = f"{base['wall_s'] / ours['wall_s']:12.2f}x" if base else ""
        print(
            f"{r['epochs']:6}{r['batch']:6}{r['mode']:>6}{''.join(cells)}{ours['wall_s']:14.2f}"
            f"{ours['first_epoch_s']:11.2f}{ours['steady_epoch_s']:14.3f}{speed:>13}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": _machine(trainer), "warm_up_s": warm_up, "rows": rows}, indent=1))

    def wall(mode):
        return next(r["tornadostudy"]["wall_s"] for r in rows if (r["epochs"], r["batch"], r["mode"]) == (*head, mode))

    head = (epochs_list[0], batches[0])
    print(
        f"{head[0]} epochs, batch {head[1]}: pre {wall('pre'):.2f} s, live {wall('live'):.2f} s, "
        f"live/pre {wall('live') / wall('pre'):.2f} (targets on an H100 at 5 epochs, batch 128: pre <= 3 s "
        f"(paper: 20 s on 1 V100), live <= 1.15x pre)"
    )
    print(f"ratio={_paper('pre', 5, 128, (7,)) / wall('pre'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
