import datetime as dt
import hashlib
import json
import shutil

import netCDF4
import numpy as np
import pytest

from tests.conftest import run_cli, write_patch_file
from tornadostudy.data.labels import LabelRule
from tornadostudy.data.prepare import PrepareOptions, prepare
from tornadostudy.data.prepared import PreparedData
from tornadostudy.data.schema import CHANNELS, run_date_of
from tornadostudy.errors import DataError, UserInputError

SPLIT = dt.date(2015, 1, 1)


def _raw_split(raw):
    """Channels, labels (default rule) of the raw files, by side of the split."""
    parts = {"train": ([], []), "test": ([], [])}
    for path in sorted(raw.glob("*.nc"), key=lambda p: run_date_of(p)):
        side = "train" if run_date_of(path) < SPLIT else "test"
        with netCDF4.Dataset(path) as ds:
            parts[side][0].append(np.stack([ds[c][:] for c in CHANNELS], axis=-1))
            parts[side][1].append(LabelRule().apply(ds["RVORT1_MAX_future"][:], ds["masks"][:]))
    return {k: (np.concatenate(x), np.concatenate(y)) for k, (x, y) in parts.items()}


def test_split_by_run_date_and_labels_match_the_rule(raw_small, prepared_small):
    raw = _raw_split(raw_small)
    data = PreparedData.open(prepared_small)
    manifest = data.manifest
    assert all(dt.date.fromisoformat(f["run_date"]) < SPLIT for f in manifest["source"]["train_files"])
    assert all(dt.date.fromisoformat(f["run_date"]) >= SPLIT for f in manifest["source"]["test_files"])
    (x_train, y_train), (x_test, y_test) = data.train(1), data.test()
    np.testing.assert_array_equal(y_train, raw["train"][1])
    np.testing.assert_array_equal(y_test, raw["test"][1])
    assert manifest["counts"] == {
        "train": len(raw["train"][1]),
        "test": len(raw["test"][1]),
        "train_positives": int(raw["train"][1].sum()),
        "test_positives": int(raw["test"][1].sum()),
    }
    # The arrays are the raw channels, standardised: same storms in the same order.
    mean, scale = data.mean, data.scale
    np.testing.assert_allclose(np.asarray(x_test), (raw["test"][0] - mean) / scale, atol=1e-4)
    assert x_train.dtype == np.float32 and x_train.shape[1:] == (32, 32, 3)
    assert isinstance(x_train, np.memmap)


def test_scaler_is_fit_on_training_data_only(raw_small, prepared_small):
    raw = _raw_split(raw_small)
    data = PreparedData.open(prepared_small)
    train_raw = raw["train"][0].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(data.mean, train_raw.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(data.scale, train_raw.std(axis=0), rtol=1e-4)
    all_raw = np.concatenate([raw["train"][0], raw["test"][0]]).reshape(-1, 3).astype(np.float64)
    assert not np.allclose(data.mean, all_raw.mean(axis=0), rtol=1e-4), "test data leaked into the scaler"
    x_train = np.asarray(data.train(1)[0]).reshape(-1, 3)
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(x_train.std(axis=0), 1, atol=1e-3)


def test_multiplier_sets_are_k_times_with_originals_first(prepared_small):
    data = PreparedData.open(prepared_small)
    x1, y1 = data.train(1)
    n = len(y1)
    for k in (2, 4):
        xk, yk = data.train(k)
        assert len(xk) == len(yk) == k * n
        assert yk.sum() == k * y1.sum()
        np.testing.assert_array_equal(xk[:n], x1)
        for copy in range(1, k):
            part = np.asarray(xk[copy * n : (copy + 1) * n])
            np.testing.assert_array_equal(yk[copy * n : (copy + 1) * n], y1)
            assert not np.allclose(part, x1), "augmented copies differ from the originals"
            # Small transforms: an augmented storm still resembles its original.
            corr = [np.corrcoef(part[i, ..., 0].ravel(), x1[i, ..., 0].ravel())[0, 1] for i in range(20)]
            assert np.median(corr) > 0.5
    with pytest.raises(DataError, match="data multiplier 3"):
        data.train(3)


def test_manifest_records_provenance(raw_small, prepared_small):
    manifest = json.loads((prepared_small / "manifest.json").read_text())
    files = manifest["source"]["train_files"] + manifest["source"]["test_files"]
    assert len(files) == 20
    first = files[0]
    assert first["sha256"] == hashlib.sha256((raw_small / first["name"]).read_bytes()).hexdigest()
    assert manifest["seed"] == 3 and manifest["balance"] == "none"
    assert manifest["label_rule"] == LabelRule().to_dict()
    assert manifest["scaler"]["fit_on"] == "train"
    assert {"tornadostudy", "numpy", "netCDF4", "scikit-learn", "python"} <= set(manifest["versions"])
    assert manifest["augmentation"]["max_rotation_deg"] > 0


def test_deterministic_by_seed(raw_small, tmp_path):
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        prepare(PrepareOptions(source=raw_small, out=tmp_path / name, multipliers=(2,), seed=seed))
        runs[name] = hashlib.sha256((tmp_path / name / "train_k2_x.npy").read_bytes()).hexdigest()
    assert runs["a"] == runs["b"] != runs["c"]


def test_oversample_balances_the_classes(raw_small, tmp_path):
    prepare(PrepareOptions(source=raw_small, out=tmp_path / "bal", multipliers=(1, 2), balance="oversample"))
    data = PreparedData.open(tmp_path / "bal")
    _, y = data.train(1)
    assert 0.4 < y.mean() < 0.6
    assert len(data.train(2)[1]) == 2 * len(y)
    assert data.manifest["counts"]["train"] < len(y)


def test_custom_label_rule_is_applied_and_recorded(raw_small, tmp_path):
    rule = LabelRule(statistic="max", region="patch", threshold=0.003, comparison=">=")
    prepare(PrepareOptions(source=raw_small, out=tmp_path / "r", multipliers=(1,), label_rule=rule))
    data = PreparedData.open(tmp_path / "r")
    default = PreparedData.open(tmp_path / "r").manifest["counts"]["train_positives"]
    assert data.manifest["label_rule"] == rule.to_dict()
    assert default >= 0 and data.manifest["label_rule_text"] == rule.describe()


def test_split_date_is_configurable_and_checked(raw_small, tmp_path):
    prepare(PrepareOptions(source=raw_small, out=tmp_path / "s", multipliers=(1,), split_date=dt.date(2013, 1, 1)))
    assert PreparedData.open(tmp_path / "s").manifest["split"]["date"] == "2013-01-01"
    with pytest.raises(DataError, match="no test storms"):
        prepare(PrepareOptions(source=raw_small, out=tmp_path / "t", split_date=dt.date(2030, 1, 1)))
    assert not (tmp_path / "t").exists()


def _assert_nothing_written(parent, out):
    assert not out.exists()
    assert not [p for p in parent.iterdir() if ".partial-" in p.name]


def _bad_folder(tmp_path, kind, good_file):
    folder = tmp_path / "src"
    folder.mkdir()
    name = "NCARSTORM_20160501-0000_d01_model_patches.nc"
    shutil.copy(good_file, folder / "NCARSTORM_20120501-0000_d01_model_patches.nc")
    if kind == "missing-variable":
        write_patch_file(folder / name, drop=("V10_curr",))
    elif kind == "not-32x32":
        write_patch_file(folder / name, size=16)
    elif kind == "nan":
        write_patch_file(folder / name, nan_in="REFL_COM_curr")
    elif kind == "truncated":
        blob = good_file.read_bytes()
        (folder / name).write_bytes(blob[: len(blob) // 2])
    elif kind == "garbage":
        (folder / name).write_bytes(b"not a netCDF file at all")
    return folder


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("missing-variable", "V10_curr missing"),
        ("not-32x32", "16×16"),
        ("nan", "NaN"),
        ("truncated", "truncated or corrupt"),
        ("garbage", "truncated or corrupt"),
    ],
)
def test_bad_files_give_one_line_naming_the_file_and_write_nothing(tmp_path, raw_small, kind, needle):
    good = sorted(raw_small.glob("*.nc"))[0]
    source = _bad_folder(tmp_path, kind, good)
    out = tmp_path / "out"
    result = run_cli("data", "prepare", "--source", str(source), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr and "NCARSTORM_20160501" in result.stderr
    _assert_nothing_written(tmp_path, out)


def test_missing_and_empty_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no data here")
    for source, needle in ((tmp_path / "nope", "does not exist"), (empty, "holds no NCARSTORM")):
        result = run_cli("data", "prepare", "--source", str(source), "--out", str(tmp_path / "out"))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and needle in result.stderr
        _assert_nothing_written(tmp_path, tmp_path / "out")


def test_existing_output_is_kept_unless_overwrite(raw_small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(UserInputError, match="not empty"):
        prepare(PrepareOptions(source=raw_small, out=out, multipliers=(1,)))
    assert (out / "keep.txt").exists()
    prepare(PrepareOptions(source=raw_small, out=out, multipliers=(1,), overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()


def test_a_failure_midway_leaves_no_partial_output(raw_small, tmp_path, monkeypatch):
    from tornadostudy.data import prepare as prepare_module

    def boom(*args, **kwargs):
        raise DataError("simulated failure while augmenting")

    monkeypatch.setattr(prepare_module, "augment_numpy", boom)
    with pytest.raises(DataError):
        prepare(PrepareOptions(source=raw_small, out=tmp_path / "out", multipliers=(1, 2)))
    _assert_nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"multipliers": (0,)}, "multipliers"), ({"balance": "smote"}, "balance"), ({"multipliers": ()}, "multipliers")],
)
def test_bad_options(tmp_path, kwargs, needle):
    with pytest.raises(UserInputError, match=needle):
        PrepareOptions(source=tmp_path, out=tmp_path / "o", **kwargs)


def test_the_papers_balance_tiles_each_tornadic_storm_18_more_times(prepared_paper_balance):
    """On the NCAR data this makes 76,377 + 18 x 3,477 = 138,963 samples, the paper's training set."""
    import json

    import numpy as np

    manifest = json.loads((prepared_paper_balance / "manifest.json").read_text())
    n, positives = manifest["counts"]["train"], manifest["counts"]["train_positives"]
    assert positives > 0 and manifest["balance"] == "paper"
    one = manifest["train_sets"]["1"]
    assert one["size"] == n + 18 * positives and one["positives"] == 19 * positives
    assert manifest["train_sets"]["2"]["size"] == 2 * one["size"]
    y = np.load(prepared_paper_balance / one["y"])
    assert len(y) == one["size"] and int(y.sum()) == 19 * positives
    assert 76_377 + 18 * 3_477 == 138_963
