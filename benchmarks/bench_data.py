"""Data preparation: tornadostudy's streaming `prepare` vs a naive in-memory baseline, side by side.

Both read the same synthetic NCAR files and write the same arrays (train/test split, train-only scaling,
k× augmented sets). The baseline does it the direct way — every file into RAM, concatenate, fit and
transform in memory, build each k× set with np.concatenate — as the original study code did.
tornadostudy streams through memory maps in chunks. Each side runs in its own process, so its peak
memory (max RSS) is measured alone.

    python benchmarks/bench_data.py                 # full size: 121,137 storms, multipliers 1,2,4
    python benchmarks/bench_data.py --quick         # 3,000 storms

Prints wall time and peak memory for `data synth`, tornadostudy's `prepare` and the baseline, then
``ratio=`` (baseline peak memory ÷ tornadostudy peak memory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = r"""
import sys, datetime as dt, numpy as np, netCDF4
from pathlib import Path
from sklearn.preprocessing import StandardScaler
from tornadostudy.data.augment import AugmentConfig, augment_numpy
from tornadostudy.data.labels import LabelRule
from tornadostudy.data.schema import CHANNELS, run_date_of
src, out, ks = Path(sys.argv[1]), Path(sys.argv[2]), [int(k) for k in sys.argv[3].split(",")]
out.mkdir(parents=True)
parts = {"train": ([], []), "test": ([], [])}
for path in sorted(src.glob("*.nc")):
    with netCDF4.Dataset(path) as ds:
        x = np.stack([ds[c][:] for c in CHANNELS], axis=-1).astype(np.float32)
        y = LabelRule().apply(ds["RVORT1_MAX_future"][:], ds["masks"][:])
    side = "train" if run_date_of(path) < dt.date(2015, 1, 1) else "test"
    parts[side][0].append(x); parts[side][1].append(y)
(xtr, ytr), (xte, yte) = [(np.concatenate(a), np.concatenate(b)) for a, b in (parts["train"], parts["test"])]
scaler = StandardScaler().fit(xtr.reshape(-1, 3))
xtr = scaler.transform(xtr.reshape(-1, 3)).reshape(xtr.shape).astype(np.float32)
xte = scaler.transform(xte.reshape(-1, 3)).reshape(xte.shape).astype(np.float32)
np.save(out / "test_x.npy", xte); np.save(out / "train_x.npy", xtr)
rng = np.random.default_rng(0)
for k in ks:
    if k > 1:
        copies = [xtr] + [augment_numpy(xtr, rng, AugmentConfig(), scaler.mean_, scaler.scale_) for _ in range(k - 1)]
        np.save(out / f"train_k{k}_x.npy", np.concatenate(copies)); del copies
"""


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed with exit code {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 2**20


def _size_gib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**30


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--storms", type=int, default=121_137)
    parser.add_argument("--multipliers", default="1,2,4")
    parser.add_argument("--workdir", help="where to write (default: a temporary folder, removed after)")
    args = parser.parse_args(argv)
    storms = 3000 if args.quick else args.storms
    exe = [sys.executable, "-m", "tornadostudy"]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-data-"))
    try:
        synth = _timed([*exe, "data", "synth", "--out", str(root / "raw"), "--storms", str(storms)])
        ours = _timed(
            [
                *exe,
                "data",
                "prepare",
                "--source",
                str(root / "raw"),
                "--out",
                str(root / "ours"),
                "--multipliers",
                args.multipliers,
            ]
        )
        base = _timed([sys.executable, "-c", BASELINE, str(root / "raw"), str(root / "base"), args.multipliers])
        out_gib = _size_gib(root / "ours")
        print(
            f"machine: {os.cpu_count()} CPUs; {storms} storms, multipliers {args.multipliers}; "
            f"prepared output {out_gib:.2f} GiB, raw {_size_gib(root / 'raw'):.2f} GiB"
        )
        print(f"{'':24}{'wall s':>9}{'peak RSS GiB':>14}")
        for name, (wall, rss) in (
            ("data synth", synth),
            ("tornadostudy prepare", ours),
            ("baseline (in memory)", base),
        ):
            print(f"{name:24}{wall:9.1f}{rss:14.2f}")
        per_out = (ours[1] / out_gib, base[1] / out_gib)
        print(
            f"prepare peak memory / output size: tornadostudy {per_out[0]:.2f}, baseline {per_out[1]:.2f}"
            " (target: tornadostudy <= ~2)"
        )
        print(f"wall time baseline / tornadostudy: {base[0] / ours[0]:.2f}")
        print(f"ratio={base[1] / ours[1]:.2f}")
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
