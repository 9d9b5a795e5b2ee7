"""Synthetic storm patches in the exact NCAR netCDF schema.

Each patch holds one storm: an elliptical reflectivity cell (peak 45–68 dBZ, so the ≥ 40 dBZ storm
mask is never empty) over a weak noisy background, a 10 m wind field made of an environmental wind, a
Rankine vortex centred on the storm (mostly cyclonic) and smooth noise, a 2 m temperature with a cold
pool under the storm, and future fields driven by the storm: the future 1 km vorticity grows with
the vortex strength and the reflectivity peak plus noise. Its scale is set so that about 5 % of storms
pass the default label rule (max over mask > 0.005) — learnable from the three input channels, but
not perfectly, because of the noise term.

Files are written in parallel, one per process, each from its own seed drawn from the study seed, so
the output depends only on ``(storms, seed, files)``, never on the number of processes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tornadostudy.data.atomic import atomic_output_dir
from tornadostudy.data.schema import (
    GLOBAL_ATTRS,
    PATCH_SIZE,
    PATCH_VARIABLES,
    PIXEL_VARIABLES,
    file_name_for,
)
from tornadostudy.errors import UserInputError

__all__ = ["FIRST_RUN_DATE", "FULL_SIZE_STORMS", "LAST_RUN_DATE", "SynthSummary", "synthesize"]

log = logging.getLogger(__name__)

FULL_SIZE_STORMS = 121_137
FIRST_RUN_DATE = dt.date(2010, 10, 24)
LAST_RUN_DATE = dt.date(2017, 3, 29)
MAX_FILES = 100
# More files than this would put two runs on one day (spacing ≥ 4.7 days keeps jittered dates apart).
FILES_LIMIT = 500
GRID_SPACING_M = 3000.0

# Weights of the (standardised) drivers of future rotation. The noise weight keeps the task from
# being trivially separable; the threshold quantile makes ~5 % of storms tornadic.
_W_ROT, _W_REFL, _W_NOISE = 0.6, 0.3, 0.4
_TORNADIC_Z = 1.645 * math.sqrt(_W_ROT**2 + _W_REFL**2 + _W_NOISE**2)
_LABEL_THRESHOLD = 0.005

_INT_VARIABLES = {"i", "j", "masks", "centroid_i", "centroid_j", "track_id", "track_step"}


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    files: int
    storms: int
    first_date: dt.date
    last_date: dt.date


def run_dates(n_files: int, rng: np.random.Generator) -> list[dt.date]:
    """``n_files`` distinct run dates spread evenly (with jitter) over the real data's range.

    Even spacing keeps the train/test proportion of the 2015 split close to the real data's (~63 %)
    even for a handful of files; first and last dates are the real ones.
    """
    span = (LAST_RUN_DATE - FIRST_RUN_DATE).days
    if n_files == 1:
        return [FIRST_RUN_DATE]
    gap = span / (n_files - 1)
    days = np.linspace(0, span, n_files) + rng.uniform(-0.25, 0.25, n_files) * gap
    days = np.clip(np.round(days), 0, span).astype(int)
    days[0], days[-1] = 0, span
    # gap ≥ 1 day whenever n_files ≤ span, and |jitter| < gap/2, so the days are distinct and sorted.
    return [FIRST_RUN_DATE + dt.timedelta(days=int(d)) for d in days]


def _smooth_noise(rng: np.random.Generator, n: int, width: int = 5) -> np.ndarray:
    """Unit-variance noise with spatial structure (a box filter over white noise)."""
    size = PATCH_SIZE + width - 1
    white = rng.standard_normal((n, size, size), dtype=np.float32)
    acc = white.cumsum(axis=1).cumsum(axis=2)
    acc = np.pad(acc, ((0, 0), (1, 0), (1, 0)))
    box = acc[:, width:, width:] - acc[:, :-width, width:] - acc[:, width:, :-width] + acc[:, :-width, :-width]
    return box / np.float32(width)


def generate_patches(n: int, rng: np.random.Generator, first_track_id: int = 0) -> dict[str, np.ndarray]:
    """All variables of ``n`` synthetic storm patches (no file I/O)."""
    f32 = np.float32
    rows, cols = np.meshgrid(np.arange(PATCH_SIZE, dtype=f32), np.arange(PATCH_SIZE, dtype=f32), indexing="ij")
    cx = (15.5 + rng.uniform(-3, 3, n)).astype(f32)[:, None, None]
    cy = (15.5 + rng.uniform(-3, 3, n)).astype(f32)[:, None, None]
    dx = cols[None] - cx
    dy = rows[None] - cy
    dist = np.sqrt(dx * dx + dy * dy)

    # Reflectivity: an elliptical cell over background echoes.
    orient = rng.uniform(0, math.pi, n).astype(f32)[:, None, None]
    major = rng.uniform(3.5, 7.0, n).astype(f32)[:, None, None]
    minor = major * rng.uniform(0.5, 1.0, n).astype(f32)[:, None, None]
    along = dx * np.cos(orient) + dy * np.sin(orient)
    across = -dx * np.sin(orient) + dy * np.cos(orient)
    cell = np.exp(-0.5 * ((along / major) ** 2 + (across / minor) ** 2))
    peak = rng.uniform(45.0, 68.0, n).astype(f32)
    background = 12.0 + 4.0 * _smooth_noise(rng, n)
    refl = background * (1 - cell) + peak[:, None, None] * cell + 1.5 * _smooth_noise(rng, n, 3)
    masks = (refl >= 40.0).astype(np.int32)

    # Wind: environment + Rankine vortex (positive = counter-clockwise = cyclonic) + smooth noise.
    z_rot = rng.standard_normal(n).astype(f32)
    cyclonic = rng.random(n) < 0.93
    vorticity = (0.0025 * np.exp(0.45 * z_rot) * np.where(cyclonic, 1.0, -0.6)).astype(f32)
    core_px = rng.uniform(2.0, 5.0, n).astype(f32)[:, None, None]
    r_m = np.maximum(dist, 1e-3) * GRID_SPACING_M
    core_m = core_px * GRID_SPACING_M
    omega = vorticity[:, None, None]
    v_tan = np.where(r_m < core_m, 0.5 * omega * r_m, 0.5 * omega * core_m**2 / r_m)
    env_u = rng.normal(6.0, 5.0, n).astype(f32)[:, None, None]
    env_v = rng.normal(3.0, 5.0, n).astype(f32)[:, None, None]
    u10 = env_u - v_tan * dy / np.maximum(dist, 1e-3) + 1.2 * _smooth_noise(rng, n)
    v10 = env_v + v_tan * dx / np.maximum(dist, 1e-3) + 1.2 * _smooth_noise(rng, n)

    # 2 m temperature: warm sector with a gradient and a cold pool under the storm.
    t_base = rng.normal(294.0, 5.0, n).astype(f32)[:, None, None]
    gradient = rng.uniform(-0.08, 0.08, n).astype(f32)[:, None, None]
    t2 = t_base + gradient * (rows[None] - 15.5) - rng.uniform(1.0, 5.0, n).astype(f32)[:, None, None] * cell
    t2 = t2 + 0.3 * _smooth_noise(rng, n)

    # Future rotation: driven by vortex strength and reflectivity peak, plus noise the inputs do not show.
    z_refl = (peak - 56.5) / 6.64
    z = _W_ROT * np.where(cyclonic, z_rot, -2.5) + _W_REFL * z_refl + _W_NOISE * rng.standard_normal(n)
    future_peak = (_LABEL_THRESHOLD * np.exp(0.8 * (z - _TORNADIC_Z))).astype(f32)[:, None, None]
    future_core = np.exp(-0.5 * (dist / core_px) ** 2)
    rvort = future_peak * future_core + 2e-4 * np.abs(_smooth_noise(rng, n, 3))
    hail = np.maximum(0.0, (refl - 50.0) / 15.0) * 0.02 * cell * rng.uniform(0.5, 1.5, n).astype(f32)[:, None, None]

    # Geolocation on a 3 km grid.
    centroid_lat = rng.uniform(29.0, 45.0, n)
    centroid_lon = rng.uniform(-104.0, -82.0, n)
    dlat = GRID_SPACING_M / 111_000.0
    dlon = dlat / np.cos(np.radians(centroid_lat))
    lat = centroid_lat[:, None, None] + (rows[None] - 15.5) * dlat
    lon = centroid_lon[:, None, None] + (cols[None] - 15.5) * dlon[:, None, None]
    centroid_i = rng.integers(16, 1200, n)
    centroid_j = rng.integers(16, 800, n)
    i_idx = centroid_i[:, None, None] - 16 + cols[None].astype(np.int64)
    j_idx = centroid_j[:, None, None] - 16 + rows[None].astype(np.int64)

    forecast_hour = rng.integers(12, 37, n)
    order = np.argsort(forecast_hour, kind="stable")  # patches in a file are in time order
    track_steps = rng.integers(1, 6, n)
    data = {
        "lon": lon,
        "lat": lat,
        "i": i_idx,
        "j": j_idx,
        "x": i_idx * GRID_SPACING_M,
        "y": j_idx * GRID_SPACING_M,
        "masks": masks,
        "REFL_COM_curr": refl,
        "U10_curr": u10,
        "V10_curr": v10,
        "T2_curr": t2,
        "RVORT1_MAX_future": rvort,
        "HAIL_MAXK1_future": hail,
        "time": forecast_hour,
        "centroid_lon": centroid_lon,
        "centroid_lat": centroid_lat,
        "centroid_i": centroid_i,
        "centroid_j": centroid_j,
        "track_step": track_steps,
    }
    out = {}
    for name, values in data.items():
        dtype = np.int32 if name in _INT_VARIABLES else (np.float64 if name == "time" else np.float32)
        out[name] = np.asarray(values)[order].astype(dtype, copy=False)
    out["track_id"] = np.arange(first_track_id, first_track_id + n, dtype=np.int32)
    return out


def _write_file(path: Path, n: int, seed: np.random.SeedSequence, first_track_id: int, run_date: dt.date) -> None:
    import netCDF4

    data = generate_patches(n, np.random.default_rng(seed), first_track_id)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("p", n)
        ds.createDimension("row", PATCH_SIZE)
        ds.createDimension("col", PATCH_SIZE)
        for name in PIXEL_VARIABLES + PATCH_VARIABLES:
            dims = ("p", "row", "col") if name in PIXEL_VARIABLES else ("p",)
            var = ds.createVariable(name, data[name].dtype, dims)
            var.units = ""
            var[:] = data[name]
        ds.setncatts(
            {
                **GLOBAL_ATTRS,
                "title": f"Synthetic NCAR storm patches (tornadostudy), run {run_date:%Y-%m-%d}",
            }
        )


def synthesize(
    out: Path,
    storms: int = FULL_SIZE_STORMS,
    seed: int = 0,
    files: int | None = None,
    processes: int | None = None,
    overwrite: bool = False,
) -> SynthSummary:
    """Write ``storms`` synthetic storms into ``out`` as NCAR patch files (atomically)."""
    if storms < 1:
        raise UserInputError(f"--storms {storms} is not a positive count: give e.g. --storms 3000")
    n_files = min(storms, MAX_FILES) if files is None else files
    if not 1 <= n_files <= min(storms, FILES_LIMIT):
        raise UserInputError(
            f"--files {files} is out of range: give 1 … {min(storms, FILES_LIMIT)} (at most one file per storm "
            f"and {FILES_LIMIT} run dates)"
        )
    rng = np.random.default_rng(seed)
    dates = run_dates(n_files, rng)
    weights = rng.uniform(0.7, 1.3, n_files)
    counts = rng.multinomial(storms - n_files, weights / weights.sum()) + 1
    seeds = np.random.SeedSequence(seed).spawn(n_files)
    first_ids = np.concatenate([[0], np.cumsum(counts)[:-1]])
    workers = processes or min(n_files, os.cpu_count() or 1)

    with atomic_output_dir(Path(out), overwrite=overwrite) as tmp:
        jobs = [
            (tmp / file_name_for(d), int(c), s, int(f), d)
            for d, c, s, f in zip(dates, counts, seeds, first_ids, strict=True)
        ]
        if workers <= 1:
            for job in jobs:
                _write_file(*job)
        else:
            with ProcessPoolExecutor(workers) as pool:
                for future in [pool.submit(_write_file, *job) for job in jobs]:
                    future.result()
    log.info("wrote %d storms in %d files to %s", storms, n_files, out)
    return SynthSummary(Path(out), n_files, storms, dates[0], dates[-1])
