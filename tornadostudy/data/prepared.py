"""Open a prepared folder (written by ``data prepare``) for training: memory-mapped, checked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tornadostudy.data.prepare import FORMAT_VERSION, MANIFEST_NAME
from tornadostudy.errors import DataError

__all__ = ["EpochSet", "PreparedData", "is_prepared"]


@dataclass(frozen=True)
class EpochSet:
    """What one epoch of a trial trains on: the rows it reads, how many passes over them, and so the
    samples an epoch sees and their share of tornadic storms (logged with every trial)."""

    set_multiplier: int  # which prepared set is read: k (pre) or 1 (live, augmented as it trains)
    passes: int  # passes over that set per epoch: 1 (pre) or k (live)
    rows: int
    positives: int

    @property
    def samples(self) -> int:
        return self.rows * self.passes

    @property
    def positive_fraction(self) -> float:
        return self.positives / self.rows if self.rows else 0.0


def is_prepared(folder: Path) -> bool:
    return (Path(folder) / MANIFEST_NAME).is_file()


@dataclass(frozen=True)
class PreparedData:
    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, folder: Path) -> PreparedData:
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not folder.is_dir():
            raise DataError(
                f"data folder {folder} does not exist: check the spec's [data] folder, or make it with "
                "'tornadostudy data prepare'"
            )
        if not path.is_file():
            raise DataError(
                f"{folder}: no {MANIFEST_NAME}: this is not a prepared folder; run 'tornadostudy data prepare'"
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable manifest ({exc}): prepare the folder again") from exc
        if manifest.get("format") != "tornadostudy-prepared" or manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path}: format {manifest.get('format')!r} v{manifest.get('format_version')!r} is not "
                f"tornadostudy-prepared v{FORMAT_VERSION}: prepare the folder again with this version"
            )
        return cls(folder, manifest)

    def files(self) -> dict[str, int]:
        """Every array file the manifest names, with the rows it must hold."""
        m = self.manifest
        files = {"train_x.npy": m["counts"]["train"], "train_y.npy": m["counts"]["train"]}
        for entry in [*m["train_sets"].values(), m["test"]]:
            files[entry["x"]] = files[entry["y"]] = int(entry["size"])
        return files

    def verify(self) -> None:
        """Check that every file the manifest names is there, whole (its rows as the manifest says, its size
        what its header promises): a worker checks before it claims, so a missing file fails no cell."""
        for name, rows in self.files().items():
            path = self.root / name
            try:
                found = len(np.load(path, mmap_mode="r"))  # reads the header; a truncated file fails to map
            except FileNotFoundError:
                raise DataError(
                    f"{path} is missing (the manifest lists it): prepare the folder again with "
                    "'tornadostudy data prepare', or copy the file back"
                ) from None
            except (OSError, ValueError) as exc:
                raise DataError(f"{path} is damaged ({exc}): prepare the folder again") from None
            if found != rows:
                raise DataError(f"{path} has {found} rows, the manifest says {rows}: prepare the folder again")

    @property
    def multipliers(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.manifest["multipliers"])

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.manifest["scaler"]["mean"], dtype=np.float32)

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(self.manifest["scaler"]["scale"], dtype=np.float32)

    def _load(self, x_name: str, y_name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            x = np.load(self.root / x_name, mmap_mode="r")
            y = np.load(self.root / y_name)
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.root}: {x_name}/{y_name} unreadable ({exc}): prepare the folder again") from exc
        if len(x) != size or len(y) != size:
            raise DataError(
                f"{self.root}: {x_name} has {len(x)} rows and {y_name} {len(y)}, manifest says {size}: "
                "the folder is corrupt; prepare it again"
            )
        return x, y

    def train(self, multiplier: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The pre-augmented k× training set: (memory-mapped x, labels)."""
        entry = self.manifest["train_sets"].get(str(multiplier))
        if entry is None:
            raise DataError(
                f"{self.root}: no training set for data multiplier {multiplier} "
                f"(prepared: {', '.join(map(str, self.multipliers))}): prepare with --multipliers including it"
            )
        return self._load(entry["x"], entry["y"], entry["size"])

    def train_original(self) -> tuple[np.ndarray, np.ndarray]:
        """The training storms as read, before balancing and augmentation."""
        return self._load("train_x.npy", "train_y.npy", self.manifest["counts"]["train"])

    def epoch_set(self, multiplier: int, augmentation: str) -> EpochSet:
        """The rows an epoch of (multiplier, augmentation) trains on. Pre-augmented: one pass over the stored
        k× set. Live (on the device or on the CPU): k passes over the balanced 1× set, every pass freshly
        augmented. Both see the same balance, the same samples per epoch and the same positive fraction."""
        live = augmentation != "pre"
        key = 1 if live else multiplier
        entry = self.manifest["train_sets"].get(str(key))
        if entry is None:
            raise DataError(
                f"{self.root}: no training set for data multiplier {key} "
                f"(prepared: {', '.join(map(str, self.multipliers))}): prepare with --multipliers including it"
            )
        return EpochSet(key, multiplier if live else 1, int(entry["size"]), int(entry["positives"]))

    def test(self) -> tuple[np.ndarray, np.ndarray]:
        entry = self.manifest["test"]
        return self._load(entry["x"], entry["y"], entry["size"])
