"""Verification scores of a probabilistic yes/no forecast (tornado or not)."""

from __future__ import annotations

import numpy as np

__all__ = ["SCORE_NAMES", "binary_scores", "climatology_scores"]

# Every score a trial logs (as test_<name>), defined or NaN, so that every run has the same set.
SCORE_NAMES = ("accuracy", "accuracy_baseline", "auc", "base_rate", "brier", "bss", "csi", "far", "loss", "pod")


def climatology_scores(brier: float, base_rate: float) -> dict[str, float]:
    """The scores measured against always forecasting the test set's base rate."""
    reference = base_rate * (1 - base_rate)
    return {
        "base_rate": base_rate,
        "accuracy_baseline": max(base_rate, 1 - base_rate) if base_rate == base_rate else float("nan"),
        "bss": 1 - brier / reference if reference else float("nan"),
    }


def binary_scores(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, POD, FAR, CSI (at ``threshold``), ROC AUC, Brier score, Brier skill score against
    climatology (``bss``: 1 - Brier / Brier of always forecasting the base rate; 0 is no skill), log loss, and
    the test set's base rate and the accuracy of always forecasting its majority class (``accuracy_baseline``).

    A score whose denominator is zero (e.g. FAR with no "yes" forecasts) is NaN: it is undefined,
    not zero. AUC and BSS are NaN when the test set holds only one class.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    p = np.clip(np.asarray(prob, dtype=np.float64).ravel(), 0.0, 1.0)
    yes = p >= threshold
    hits = float(np.sum(yes & y))
    misses = float(np.sum(~yes & y))
    false_alarms = float(np.sum(yes & ~y))

    def ratio(num: float, den: float) -> float:
        return num / den if den else float("nan")

    eps = 1e-7
    pc = np.clip(p, eps, 1 - eps)
    out = {
        "accuracy": float(np.mean(yes == y)),
        "pod": ratio(hits, hits + misses),
        "far": ratio(false_alarms, hits + false_alarms),
        "csi": ratio(hits, hits + misses + false_alarms),
        "brier": float(np.mean((p - y) ** 2)),
        "loss": float(-np.mean(y * np.log(pc) + (~y) * np.log(1 - pc))),
        "auc": float("nan"),
    }
    out.update(climatology_scores(out["brier"], float(np.mean(y)) if y.size else float("nan")))
    if y.any() and not y.all():
        from sklearn.metrics import roc_auc_score

        out["auc"] = float(roc_auc_score(y, p))
    return out
