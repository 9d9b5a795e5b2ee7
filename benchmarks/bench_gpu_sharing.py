"""Several workers per GPU (``submit --workers-per-task N``): trials per hour with 1 worker vs N workers sharing
one GPU, side by side in one run, on the same cells.

Each configuration starts N worker processes on the same device. Each starts its backend and trains one short
warm-up trial (a worker pays that once for all its trials), waits until all N are ready, then claims cells one
at a time from a shared queue (a locked counter file, as workers claim from the study) until none are left.
Trials per hour = cells ÷ (last trial's end − first trial's start) × 3600. One worker per GPU is the baseline.
The cells are the paper's 5-epoch row at multiplier 1 (batch 128…4096, pre and live): small trials, the case
where one trial may not keep a GPU busy.

    python benchmarks/bench_gpu_sharing.py                     # full size: 121,137 synthetic storms
    python benchmarks/bench_gpu_sharing.py --quick             # small, any machine: what the tests run
    KERAS_BACKEND=jax python benchmarks/bench_gpu_sharing.py   # Keras on JAX

Prints a table, then ``ratio=`` (the best N's trials/hour ÷ one worker's).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Workers sharing a GPU take its memory as they need it (what `submit --workers-per-task` sets).
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
STORMS = 121_137


def claim(counter: Path, total: int) -> int | None:
    """The next cell's index, or None when all are claimed; one claim per cell across processes."""
    with counter.open("r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        taken = int(f.read() or 0)
        if taken >= total:
            return None
        f.seek(0)
        f.write(str(taken + 1))
        f.truncate()
        return taken


def throughput(records: list[dict]) -> tuple[float, float, float]:
    """(span seconds, trials per hour, mean seconds a trial) of one configuration's trial records."""
    span = max(r["end"] for r in records) - min(r["start"] for r in records)
    return span, len(records) / span * 3600, sum(r["wall_s"] for r in records) / len(records)


def _child(args) -> int:
    from bench_gpu import tornadostudy_cell  # this script's folder is on sys.path

    from tornadostudy.spec import TrainerSpec
    from tornadostudy.train.keras_trainer import KerasTrainer

    cells = json.loads(args.cells)
    trainer = KerasTrainer(TrainerSpec(kind="keras", jit_compile=True), args.data)
    gpus = 1 if trainer.gpus else 0
    tornadostudy_cell(trainer, "live", 1, cells[-1][1], gpus)  # the warm-up, as bench_gpu.py's
    (args.folder / f"ready.{os.getpid()}").touch()
    while len(list(args.folder.glob("ready.*"))) < args.n:
        time.sleep(0.05)
    with (args.folder / "trials.jsonl").open("a") as log:
        while (index := claim(args.folder / "counter", len(cells))) is not None:
            epochs, batch, mode = cells[index]
            start = time.time()  # wall clock: compared across processes
            cell = tornadostudy_cell(trainer, mode, epochs, batch, gpus)
            record = {
                "cell": index,
                "start": start,
                "end": time.time(),
                "wall_s": cell["wall_s"],
                "device": cell["device"],
                "pid": os.getpid(),
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
    return 0


def run_config(n: int, data: Path, cells: list, folder: Path) -> list[dict]:
    folder.mkdir()
    (folder / "counter").write_text("0")
    command = [
        sys.executable,
        __file__,
        "--child",
        "--data",
        str(data),
        "--folder",
        str(folder),
        "--n",
        str(n),
        "--cells",
        json.dumps(cells),
    ]
    logs = [(folder / f"worker{i}.err").open("w") for i in range(n)]
    children = [subprocess.Popen(command, stderr=log) for log in logs]
    # A worker that fails never becomes ready: stop the others, which would wait for it forever.
    while True:
        codes = [child.poll() for child in children]  # None while running
        failed = next((i for i, code in enumerate(codes) if code), None)
        if failed is not None:
            for child in children:
                child.kill()
            last = (folder / f"worker{failed}.err").read_text().strip().splitlines()[-1:]
            raise SystemExit(f"a worker of {n} exited with {codes[failed]}: {last}")
        if all(code == 0 for code in codes):
            break
        time.sleep(0.2)
    for log in logs:
        log.close()
    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    if sorted(r["cell"] for r in records) != list(range(len(cells))):
        raise SystemExit(f"{n} workers: cells run {sorted(r['cell'] for r in records)}, expected each once")
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, any machine: checks the benchmark runs")
    parser.add_argument("--storms", type=int, default=STORMS)
    parser.add_argument("--data", type=Path, help="a prepared data folder to use instead of synthesizing one")
    parser.add_argument("--workers", default="1,2,4", help="workers per GPU to compare; the first is the baseline")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-sizes", default="128,256,512,1024,2048,4096")
    parser.add_argument("--repeat", type=int, default=1, help="run each cell this many times per configuration")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cells", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.quick:
        args.storms, args.workers, args.epochs, args.batch_sizes = 400, "1,2", 1, "128"
    counts = [int(w) for w in args.workers.split(",")]
    cells = [(args.epochs, int(b), mode) for b in args.batch_sizes.split(",") for mode in ("pre", "live")]
    cells *= args.repeat

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_training import _prepare

            data = _prepare(args.storms, Path(tmp))
        results = {n: throughput(run_config(n, data, cells, Path(tmp) / f"w{n}")) for n in counts}

    print(f"{len(cells)} trials per configuration ({args.epochs} epochs, batch {args.batch_sizes}, pre and live)")
    print(f"{'workers/GPU':>12}{'span s':>10}{'trials/h':>10}{'s/trial':>9}{'vs 1':>8}")
    base = results[counts[0]][1]
    for n, (span, per_hour, trial_s) in results.items():
        print(f"{n:12}{span:10.1f}{per_hour:10.0f}{trial_s:9.2f}{per_hour / base:7.2f}x")
    print(f"ratio={max(per_hour for _, per_hour, _ in results.values()) / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
