import math

import numpy as np
import pytest

from tornadostudy.train.scores import binary_scores


def test_contingency_scores():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.3, 0.4])
    s = binary_scores(y, p)
    # hits 2, misses 1, false alarms 1, correct negatives 4
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["pod"] == pytest.approx(2 / 3)
    assert s["far"] == pytest.approx(1 / 3)
    assert s["csi"] == pytest.approx(2 / 4)
    assert s["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert s["auc"] == pytest.approx(12 / 15)  # positive beats negative in 5 + 5 + 2 of 15 pairs


def test_undefined_scores_are_nan_not_zero():
    s = binary_scores(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(s["far"]) and s["pod"] == 0.0
    assert math.isnan(binary_scores(np.zeros(4), np.full(4, 0.2))["auc"])


def test_skill_against_climatology_and_the_majority_class_baseline():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.3, 0.4])
    s = binary_scores(y, p)
    base = 3 / 8
    assert s["base_rate"] == pytest.approx(base) and s["accuracy_baseline"] == pytest.approx(5 / 8)
    assert s["bss"] == pytest.approx(1 - s["brier"] / (base * (1 - base)))
    climatology = binary_scores(y, np.full(8, base))
    assert climatology["bss"] == pytest.approx(0.0, abs=1e-12), "forecasting the base rate has no skill"
    assert math.isnan(binary_scores(np.zeros(4), np.full(4, 0.2))["bss"]), "one class: undefined"
    from tornadostudy.train.scores import SCORE_NAMES

    assert set(s) == set(SCORE_NAMES), "every trial logs the same scores"
