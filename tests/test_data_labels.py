import numpy as np
import pytest

from tornadostudy.data.labels import LabelRule
from tornadostudy.errors import UserInputError


@pytest.fixture
def fields():
    field = np.zeros((4, 32, 32))
    masks = np.zeros((4, 32, 32), dtype=np.int32)
    masks[:, 10:20, 10:20] = 1
    field[0, 15, 15] = 0.006  # strong rotation inside the storm
    field[1, 2, 2] = 0.009  # strong rotation outside the storm mask only
    field[2, 10:20, 10:20] = 0.005  # exactly at the threshold everywhere in the mask
    field[3] = 0.001  # weak everywhere
    return field, masks


def test_default_is_max_over_mask_strictly_above_0005(fields):
    assert LabelRule().apply(*fields).tolist() == [1, 0, 0, 0]


def test_region_patch_counts_rotation_outside_the_mask(fields):
    assert LabelRule(region="patch").apply(*fields).tolist() == [1, 1, 0, 0]


def test_greater_or_equal_includes_the_threshold(fields):
    assert LabelRule(comparison=">=").apply(*fields).tolist() == [1, 0, 1, 0]


def test_mean_statistic(fields):
    # mean over the 100 mask pixels: 0.006/100, 0, 0.005, 0.001
    assert LabelRule(statistic="mean", threshold=0.004).apply(*fields).tolist() == [0, 0, 1, 0]
    assert LabelRule(statistic="mean", region="patch", threshold=0.0009).apply(*fields).tolist() == [0, 0, 0, 1]


def test_empty_mask_is_never_tornadic():
    field = np.full((1, 32, 32), 0.1)
    assert LabelRule().apply(field, np.zeros((1, 32, 32))).tolist() == [0]
    assert LabelRule(statistic="mean").apply(field, np.zeros((1, 32, 32))).tolist() == [0]


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"statistic": "median"}, "statistic 'median'"),
        ({"region": "box"}, "region 'box'"),
        ({"comparison": "<"}, "comparison '<'"),
        ({"threshold": float("nan")}, "threshold"),
        ({"variable": ""}, "variable"),
    ],
)
def test_invalid_rules_name_the_field(kwargs, needle):
    with pytest.raises(UserInputError, match=needle):
        LabelRule(**kwargs)


def test_round_trip_and_description():
    rule = LabelRule(statistic="mean", threshold=0.008, comparison=">=")
    assert LabelRule.from_dict(rule.to_dict()) == rule
    assert rule.describe() == "mean(RVORT1_MAX_future over mask) >= 0.008"
