"""``data prepare``: NCAR patch files → standardised, labelled, split, pre-augmented arrays.

Output (all float32 NHWC ``(n, 32, 32, 3)`` or uint8 labels, as ``.npy`` so training can
memory-map them):

* ``test_x.npy``/``test_y.npy`` — every storm on/after the split date;
* ``train_x.npy``/``train_y.npy`` — every storm before it (the k = 1 set when ``balance = none``);
* ``train_k{k}_x.npy``/``train_k{k}_y.npy`` — k× the (balanced) training set: the originals, then
  k − 1 augmented copies;
* ``manifest.json`` — counts, scaler, label rule, split, sources and checksums, seed, versions.

Memory stays bounded: arrays are written through memory maps in chunks, so the peak is a few chunks,
not the data set. The folder appears only when complete (see :mod:`tornadostudy.data.atomic`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tornadostudy.data.atomic import atomic_output_dir
from tornadostudy.data.augment import AugmentConfig, augment_numpy
from tornadostudy.data.labels import LabelRule
from tornadostudy.data.reader import SourceFile, file_sha256, list_source_files, read_variables
from tornadostudy.data.schema import CHANNELS, PATCH_SIZE
from tornadostudy.errors import DataError, UserInputError

__all__ = [
    "BALANCE_MODES",
    "DEFAULT_SPLIT_DATE",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PAPER_EXTRA_COPIES",
    "PrepareOptions",
    "prepare",
    "train_set_files",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
DEFAULT_SPLIT_DATE = dt.date(2015, 1, 1)
BALANCE_MODES = ("none", "oversample", "paper")
# The paper's training set: each tornadic training storm appears this many more times (19 in all). On the
# NCAR data that turns 76,377 storms (3,477 tornadic) into the paper's 138,963 training samples.
PAPER_EXTRA_COPIES = 18
CHUNK = 2048


@dataclass(frozen=True)
class PrepareOptions:
    source: Path
    out: Path
    multipliers: tuple[int, ...] = (1, 2, 4)
    seed: int = 0
    balance: str = "none"
    label_rule: LabelRule = field(default_factory=LabelRule)
    split_date: dt.date = DEFAULT_SPLIT_DATE
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.multipliers:
            raise UserInputError("--multipliers is empty: give e.g. --multipliers 1,2,4")
        for k in self.multipliers:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise UserInputError(f"--multipliers: {k!r} is not a whole number ≥ 1: give e.g. --multipliers 1,2,4")
        object.__setattr__(self, "multipliers", tuple(sorted(set(self.multipliers))))
        if self.balance not in BALANCE_MODES:
            raise UserInputError(f"--balance {self.balance!r} is not valid: use one of {', '.join(BALANCE_MODES)}")


def train_set_files(k: int, balance: str) -> tuple[str, str]:
    """File names of the k× training set."""
    if k == 1 and balance == "none":
        return "train_x.npy", "train_y.npy"
    return f"train_k{k}_x.npy", f"train_k{k}_y.npy"


def _versions() -> dict[str, str]:
    import netCDF4
    import sklearn

    from tornadostudy import __version__

    return {
        "tornadostudy": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "netCDF4": netCDF4.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _open_array(path: Path, n: int):
    return np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(n, PATCH_SIZE, PATCH_SIZE, len(CHANNELS))
    )


def _read_split(files: list[SourceFile], x_out, rule: LabelRule, scaler=None) -> tuple[np.ndarray, list[dict]]:
    """Read channels and labels of ``files`` into ``x_out``; optionally feed ``scaler``."""
    labels = np.empty(len(x_out), dtype=np.uint8)
    records = []
    needed = tuple(dict.fromkeys((*CHANNELS, rule.variable, *(("masks",) if rule.region == "mask" else ()))))
    offset = 0
    for source in files:
        values = read_variables(source, needed)
        n = source.storms
        x = np.stack([values[c] for c in CHANNELS], axis=-1)
        x_out[offset : offset + n] = x
        labels[offset : offset + n] = rule.apply(values[rule.variable], values.get("masks"))
        if scaler is not None:
            scaler.partial_fit(x.reshape(-1, len(CHANNELS)))
        records.append(
            {
                "name": source.path.name,
                "sha256": file_sha256(source.path),
                "run_date": source.run_date.isoformat(),
                "storms": n,
                "positives": int(labels[offset : offset + n].sum()),
            }
        )
        offset += n
    return labels, records


def _standardise_in_place(x, mean: np.ndarray, scale: np.ndarray) -> None:
    for start in range(0, len(x), CHUNK):
        block = x[start : start + CHUNK]
        x[start : start + CHUNK] = (block - mean) / scale


def _balanced_index(labels: np.ndarray, balance: str) -> np.ndarray:
    index = np.arange(len(labels))
    if balance == "none":
        return index
    positives = np.flatnonzero(labels)
    if len(positives) == 0:
        raise DataError(f"--balance {balance}: the training set has no tornadic storms: use --balance none")
    if balance == "paper":
        extra_copies = PAPER_EXTRA_COPIES
    else:  # oversample: as many copies as make the positives about half of the set
        extra_copies = max(0, round((len(labels) - len(positives)) / len(positives)) - 1)
    return np.concatenate([index, np.tile(positives, extra_copies)])


def _write_train_set(
    folder: Path, k: int, opts: PrepareOptions, train_x, train_y, index: np.ndarray, mean, scale
) -> dict[str, Any]:
    x_name, y_name = train_set_files(k, opts.balance)
    base = len(index)
    if (x_name, y_name) != ("train_x.npy", "train_y.npy"):
        x_out = _open_array(folder / x_name, base * k)
        rng = np.random.default_rng([opts.seed, k])
        for copy in range(k):
            for start in range(0, base, CHUNK):
                rows = index[start : start + CHUNK]
                block = np.asarray(train_x[rows])
                if copy > 0:
                    block = augment_numpy(block, rng, opts.augment, mean, scale)
                x_out[copy * base + start : copy * base + start + len(rows)] = block
        x_out.flush()
        del x_out
        np.save(folder / y_name, np.tile(train_y[index], k))
    y = np.load(folder / y_name)
    return {"x": x_name, "y": y_name, "size": len(y), "positives": int(y.sum()), "augmented_copies": k - 1}


def prepare(opts: PrepareOptions) -> dict[str, Any]:
    """Run the whole preparation; returns the manifest written to ``opts.out``."""
    from sklearn.preprocessing import StandardScaler

    rule = opts.label_rule
    required = tuple(dict.fromkeys((*CHANNELS, rule.variable, *(("masks",) if rule.region == "mask" else ()))))
    files = list_source_files(opts.source, required)
    train_files = [f for f in files if f.run_date < opts.split_date]
    test_files = [f for f in files if f.run_date >= opts.split_date]
    for name, part in (("training", train_files), ("test", test_files)):
        if not part:
            raise DataError(
                f"{opts.source}: no {name} storms with split date {opts.split_date} "
                f"(run dates {files[0].run_date} … {files[-1].run_date}): choose another --split-date"
            )
    n_train = sum(f.storms for f in train_files)
    n_test = sum(f.storms for f in test_files)
    log.info("preparing %d train / %d test storms from %d files", n_train, n_test, len(files))

    with atomic_output_dir(Path(opts.out), overwrite=opts.overwrite) as tmp:
        scaler = StandardScaler()
        train_x = _open_array(tmp / "train_x.npy", n_train)
        train_y, train_records = _read_split(train_files, train_x, rule, scaler)
        test_x = _open_array(tmp / "test_x.npy", n_test)
        test_y, test_records = _read_split(test_files, test_x, rule)
        mean = scaler.mean_.astype(np.float32)
        scale = scaler.scale_.astype(np.float32)
        _standardise_in_place(train_x, mean, scale)
        _standardise_in_place(test_x, mean, scale)
        train_x.flush()
        test_x.flush()
        np.save(tmp / "train_y.npy", train_y)
        np.save(tmp / "test_y.npy", test_y)

        index = _balanced_index(train_y, opts.balance)
        sets = {str(k): _write_train_set(tmp, k, opts, train_x, train_y, index, mean, scale) for k in opts.multipliers}
        manifest = {
            "format": "tornadostudy-prepared",
            "format_version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "channels": list(CHANNELS),
            "patch_size": PATCH_SIZE,
            "layout": "NHWC float32, standardised; labels uint8",
            "counts": {
                "train": n_train,
                "test": n_test,
                "train_positives": int(train_y.sum()),
                "test_positives": int(test_y.sum()),
            },
            "split": {"date": opts.split_date.isoformat(), "train": "run date < date", "test": "run date >= date"},
            "label_rule": rule.to_dict(),
            "label_rule_text": rule.describe(),
            "scaler": {
                "kind": "sklearn StandardScaler per channel",
                "fit_on": "train",
                "mean": [float(v) for v in scaler.mean_],
                "scale": [float(v) for v in scaler.scale_],
                "n_samples": int(scaler.n_samples_seen_),
            },
            "balance": opts.balance,
            "multipliers": list(opts.multipliers),
            "train_sets": sets,
            "test": {"x": "test_x.npy", "y": "test_y.npy", "size": n_test},
            "augmentation": opts.augment.to_dict(),
            "seed": opts.seed,
            "source": {
                "folder": str(Path(opts.source).resolve()),
                "train_files": train_records,
                "test_files": test_records,
            },
            "versions": _versions(),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
