"""Facts about the NCAR storm-patch netCDF files, shared by the synthesiser and the reader."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

__all__ = [
    "CHANNELS",
    "FILE_PATTERN",
    "GLOBAL_ATTRS",
    "PATCH_SIZE",
    "PATCH_VARIABLES",
    "PIXEL_VARIABLES",
    "file_name_for",
    "run_date_of",
]

PATCH_SIZE = 32
# The three input channels of the paper's CNN, in this order (T2_curr exists but is not used).
CHANNELS = ("REFL_COM_curr", "U10_curr", "V10_curr")
# Per-pixel variables, dims (p, row, col). Rows run south -> north (WRF's j), columns west -> east (i).
PIXEL_VARIABLES = (
    "lon",
    "lat",
    "i",
    "j",
    "x",
    "y",
    "masks",
    "REFL_COM_curr",
    "U10_curr",
    "V10_curr",
    "T2_curr",
    "RVORT1_MAX_future",
    "HAIL_MAXK1_future",
)
# Per-patch variables, dim (p).
PATCH_VARIABLES = (
    "time",
    "centroid_lon",
    "centroid_lat",
    "centroid_i",
    "centroid_j",
    "track_id",
    "track_step",
)
GLOBAL_ATTRS = {"Conventions": "CF-1.6", "object_variable": "REFL_COM"}

FILE_PATTERN = re.compile(r"^NCARSTORM_(\d{8})-0000_d01_model_patches\.nc$")


def file_name_for(run_date: dt.date) -> str:
    return f"NCARSTORM_{run_date:%Y%m%d}-0000_d01_model_patches.nc"


def run_date_of(path: Path | str) -> dt.date | None:
    """The model run date encoded in an NCAR patch file name, or None if the name does not match."""
    match = FILE_PATTERN.match(Path(path).name)
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None
