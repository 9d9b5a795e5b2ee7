import json

from tests.conftest import run_cli
from tornadostudy.data.info import describe, format_text


def test_prepared_info_has_the_documented_keys(prepared_small):
    info = describe(prepared_small)
    for key in ("train", "test", "train_positives", "test_positives", "channels", "multipliers"):
        assert key in info
    assert info["kind"] == "prepared" and info["multipliers"] == (1, 2, 4)
    assert info["train_sets"]["4"]["size"] == 4 * info["train"]
    assert "k=4" in format_text(info)


def test_raw_info_counts_storms_and_positives(raw_small, prepared_small):
    raw = describe(raw_small)
    prepared = describe(prepared_small)
    assert raw["kind"] == "raw" and raw["files"] == 20 and raw["storms"] == 600
    for key in ("train", "test", "train_positives", "test_positives"):
        assert raw[key] == prepared[key]


def test_json_output_is_one_object(prepared_small):
    result = run_cli("data", "info", str(prepared_small), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["channels"] == ["REFL_COM_curr", "U10_curr", "V10_curr"]
