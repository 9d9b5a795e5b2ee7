"""Read NCAR storm-patch netCDF files (real or synthetic) with every check done up front."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tornadostudy.data.schema import CHANNELS, FILE_PATTERN, PATCH_SIZE, run_date_of
from tornadostudy.errors import DataError

__all__ = ["SourceFile", "file_sha256", "list_source_files", "read_variables"]

_HINT = "see docs/data.md for where the files come from"


@dataclass(frozen=True)
class SourceFile:
    path: Path
    run_date: dt.date
    storms: int
    variables: frozenset[str]


def _open(path: Path):
    import netCDF4

    try:
        ds = netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError) as exc:
        raise DataError(
            f"{path}: cannot be read as netCDF ({exc}): the file is truncated or corrupt; download it again"
        ) from exc
    ds.set_auto_mask(False)
    return ds


def _inspect(path: Path, required: tuple[str, ...]) -> SourceFile:
    run_date = run_date_of(path)
    if run_date is None:
        raise DataError(f"{path}: the run date in the file name is not a real date: rename or remove the file")
    with _open(path) as ds:
        dims = {name: len(dim) for name, dim in ds.dimensions.items()}
        for dim in ("p", "row", "col"):
            if dim not in dims:
                raise DataError(f"{path}: dimension '{dim}' is missing: this is not an NCAR patch file; {_HINT}")
        if (dims["row"], dims["col"]) != (PATCH_SIZE, PATCH_SIZE):
            raise DataError(
                f"{path}: patches are {dims['row']}×{dims['col']}, expected {PATCH_SIZE}×{PATCH_SIZE}: "
                "only the 32×32 NCAR patches are supported; remove this file"
            )
        variables = frozenset(ds.variables)
        missing = [name for name in required if name not in variables]
        if missing:
            raise DataError(
                f"{path}: variable {', '.join(missing)} missing (needed: {', '.join(required)}): "
                "the file is incomplete; download it again"
            )
        for name in required:
            if ds.variables[name].dimensions != ("p", "row", "col"):
                raise DataError(
                    f"{path}: variable {name} has dims {ds.variables[name].dimensions}, expected (p, row, col)"
                )
        return SourceFile(path, run_date, dims["p"], variables)


def list_source_files(folder: Path, required: tuple[str, ...] = (*CHANNELS, "masks")) -> list[SourceFile]:
    """Every NCAR patch file in ``folder``, sorted by run date, each checked for the ``required`` variables."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist: pass the folder holding the NCARSTORM_*.nc files")
    if not folder.is_dir():
        raise DataError(f"data folder {folder} is not a folder: pass the folder holding the NCARSTORM_*.nc files")
    paths = sorted(p for p in folder.iterdir() if FILE_PATTERN.match(p.name))
    if not paths:
        raise DataError(
            f"data folder {folder} holds no NCARSTORM_YYYYMMDD-0000_d01_model_patches.nc files: "
            f"point at the downloaded files or make some with 'tornadostudy data synth'; {_HINT}"
        )
    files = [_inspect(p, required) for p in paths]
    return sorted(files, key=lambda f: (f.run_date, f.path.name))


def read_variables(source: SourceFile, names: tuple[str, ...], dtype=np.float32) -> dict[str, np.ndarray]:
    """The named per-pixel variables of one file, as ``(p, 32, 32)`` arrays, refusing NaN or inf."""
    out = {}
    with _open(source.path) as ds:
        for name in names:
            try:
                values = np.asarray(ds.variables[name][:], dtype=dtype)
            except (OSError, RuntimeError, IndexError) as exc:
                raise DataError(
                    f"{source.path}: variable {name} cannot be read ({exc}): the file is corrupt; download it again"
                ) from exc
            bad = ~np.isfinite(values)
            if bad.any():
                patch = int(np.argwhere(bad)[0][0])
                raise DataError(
                    f"{source.path}: variable {name} has {int(bad.sum())} NaN/inf values (first in patch {patch}): "
                    "fix or remove the file"
                )
            out[name] = values
    return out


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
