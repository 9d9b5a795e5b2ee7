import pytest

from tornadostudy.data.prepared import PreparedData
from tornadostudy.data.resolve import resolve_data
from tornadostudy.errors import DataError
from tornadostudy.spec import DataSpec


def test_a_prepared_folder_is_used_as_is(prepared_small, tmp_path):
    assert resolve_data(DataSpec(source=str(prepared_small)), {1, 4}, tmp_path) == prepared_small.resolve()


def test_a_prepared_folder_missing_a_multiplier_is_refused(prepared_small, tmp_path):
    with pytest.raises(DataError, match=r"needs \[8\]: prepare again with --multipliers 1,8"):
        resolve_data(DataSpec(source=str(prepared_small)), {8}, tmp_path)


def test_a_raw_folder_is_prepared_once_into_the_cache(raw_small, tmp_path):
    spec = DataSpec(source=str(raw_small), cache=str(tmp_path / "cache"))
    first = resolve_data(spec, {2}, tmp_path)
    assert first.parent == (tmp_path / "cache").resolve()
    assert PreparedData.open(first).multipliers == (1, 2)
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert resolve_data(spec, {2}, tmp_path) == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp, "cached, not prepared again"


def test_synthetic_data_is_made_and_cached(tmp_path):
    spec = DataSpec(source="synthetic", storms=120, seed=4, cache=str(tmp_path / "c"))
    folder = resolve_data(spec, {1}, tmp_path)
    manifest = PreparedData.open(folder).manifest
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == 120
    assert resolve_data(spec, {1}, tmp_path) == folder


def test_relative_sources_resolve_against_the_base_folder(raw_small, tmp_path):
    spec = DataSpec(source=raw_small.name, cache=str(tmp_path / "cache"))
    folder = resolve_data(spec, {1}, raw_small.parent)
    assert PreparedData.open(folder).manifest["source"]["folder"] == str(raw_small.resolve())
    with pytest.raises(DataError, match="does not exist"):
        resolve_data(DataSpec(source="no-such-folder"), {1}, tmp_path)
