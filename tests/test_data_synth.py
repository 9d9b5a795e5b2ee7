import datetime as dt

import netCDF4
import numpy as np
import pytest

from tornadostudy.data.labels import LabelRule
from tornadostudy.data.schema import PATCH_VARIABLES, PIXEL_VARIABLES, run_date_of
from tornadostudy.data.synth import FIRST_RUN_DATE, LAST_RUN_DATE, generate_patches, synthesize
from tornadostudy.errors import UserInputError


def _files(folder):
    return sorted(folder.glob("*.nc"))


def test_files_follow_the_ncar_schema(raw_small):
    files = _files(raw_small)
    assert len(files) == 20
    total = 0
    for path in files:
        assert run_date_of(path) is not None, path.name
        with netCDF4.Dataset(path) as ds:
            assert set(ds.dimensions) == {"p", "row", "col"}
            assert len(ds.dimensions["row"]) == len(ds.dimensions["col"]) == 32
            assert set(ds.variables) == set(PIXEL_VARIABLES) | set(PATCH_VARIABLES)
            for name in PIXEL_VARIABLES:
                assert ds[name].dimensions == ("p", "row", "col")
                assert ds[name].units == ""
            for name in PATCH_VARIABLES:
                assert ds[name].dimensions == ("p",)
            assert ds.Conventions == "CF-1.6" and ds.object_variable == "REFL_COM" and ds.title
            total += len(ds.dimensions["p"])
    assert total == 600


def test_run_dates_span_the_real_range_and_both_sides_of_the_split(raw_small):
    dates = [run_date_of(p) for p in _files(raw_small)]
    assert dates[0] == FIRST_RUN_DATE and dates[-1] == LAST_RUN_DATE
    assert len(set(dates)) == len(dates)
    before = sum(d < dt.date(2015, 1, 1) for d in dates)
    assert 0.5 < before / len(dates) < 0.8


def test_patches_look_like_storms():
    rng = np.random.default_rng(11)
    d = generate_patches(2000, rng)
    refl, masks = d["REFL_COM_curr"], d["masks"].astype(bool)
    assert masks.reshape(2000, -1).any(axis=1).all(), "every storm has a ≥ 40 dBZ object"
    assert (refl[masks] >= 40).all() and (refl[~masks] < 40).all()
    assert refl.max(axis=(1, 2)).min() >= 40
    assert np.median(refl[~masks]) < 25, "background echoes are weak"
    # Relative vorticity dv/dx − du/dy near the storm centre: mostly cyclonic (rows run south → north).
    u, v = d["U10_curr"], d["V10_curr"]
    vort = np.gradient(v, axis=2) - np.gradient(u, axis=1)
    centre = vort[:, 12:20, 12:20].mean(axis=(1, 2))
    assert 0.8 < (centre > 0).mean() < 1.0
    assert (d["T2_curr"] > 250).all() and (d["T2_curr"] < 320).all()
    assert (d["RVORT1_MAX_future"] >= 0).all() and (d["HAIL_MAXK1_future"] >= 0).all()
    assert np.isfinite(np.stack([d[k].astype(float) for k in PIXEL_VARIABLES])).all()


def test_future_rotation_follows_present_rotation_and_gives_3_to_8_percent_tornadic():
    d = generate_patches(5000, np.random.default_rng(5))
    labels = LabelRule().apply(d["RVORT1_MAX_future"], d["masks"])
    assert 0.03 <= labels.mean() <= 0.08
    u, v = d["U10_curr"], d["V10_curr"]
    centre = (np.gradient(v, axis=2) - np.gradient(u, axis=1))[:, 12:20, 12:20].mean(axis=(1, 2))
    assert centre[labels == 1].mean() > 1.5 * centre[labels == 0].mean()
    peak = d["REFL_COM_curr"].max(axis=(1, 2))
    assert peak[labels == 1].mean() > peak[labels == 0].mean()


def test_deterministic_by_seed_and_independent_of_process_count(tmp_path):
    a = synthesize(tmp_path / "a", storms=90, seed=3, files=6, processes=1).out
    b = synthesize(tmp_path / "b", storms=90, seed=3, files=6, processes=2).out
    c = synthesize(tmp_path / "c", storms=90, seed=4, files=6, processes=1).out
    assert [p.name for p in _files(a)] == [p.name for p in _files(b)]
    for fa, fb, fc in zip(_files(a), _files(b), _files(c), strict=False):
        with netCDF4.Dataset(fa) as da, netCDF4.Dataset(fb) as db, netCDF4.Dataset(fc) as dc:
            for name in PIXEL_VARIABLES + PATCH_VARIABLES:
                np.testing.assert_array_equal(da[name][:], db[name][:])
            assert not np.array_equal(da["REFL_COM_curr"][:], dc["REFL_COM_curr"][:])


def test_default_file_count_and_bad_counts(tmp_path):
    assert synthesize(tmp_path / "few", storms=7, seed=0).files == 7
    with pytest.raises(UserInputError, match="--storms"):
        synthesize(tmp_path / "none", storms=0)
    with pytest.raises(UserInputError, match="--files"):
        synthesize(tmp_path / "toomany", storms=5, files=6)
    assert not (tmp_path / "toomany").exists()
