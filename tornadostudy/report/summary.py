"""The head of every report: the study's objectives and the forecast's skill scores, best configurations first.

Test accuracy alone misleads on this data: most storms are not tornadic, so always saying "no tornado" is
already right most of the time. The summary prints that baseline beside accuracy, leads with the study's own
objectives, and shows the skill scores (POD, FAR, CSI, ROC AUC, Brier skill score against climatology). A
configuration whose forecast is worse than random (AUC below 0.5) is flagged, with the number of weight
updates it had when that is the likely reason.
"""

from __future__ import annotations

import math
from typing import Any

from tornadostudy.report.tables import LOWER_IS_BETTER, Block, cell_means

__all__ = ["SKILL_SCORES", "summary"]

SKILL_SCORES = ("test_auc", "test_bss", "test_csi", "test_pod", "test_far", "test_accuracy")
SHOWN = 15  # configurations in the summary table
FEW_UPDATES = 100  # fewer weight updates than this is too few to learn this task


def _updates(row: dict[str, Any]) -> int | None:
    """Weight updates a configuration had: steps per epoch (whole passes, last batch smaller) × epochs."""
    try:
        steps = math.ceil(float(row["train_samples"]) / float(row["batch_size"]))
        return steps * int(row["epochs"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _flag(row: dict[str, Any]) -> str:
    auc = row.get("test_auc")
    if auc is None or not math.isfinite(auc) or auc >= 0.5:
        return ""
    updates = _updates(row)
    if updates is not None and updates < FEW_UPDATES:
        steps = updates // int(row["epochs"])
        return (
            f"worse than random: {steps} steps per epoch at batch size {int(row['batch_size'])} "
            f"({updates} updates in all)"
        )
    return "worse than random"


def summary(
    records: list[dict[str, Any]], params: list[str], objectives: tuple[tuple[str, str], ...]
) -> tuple[list[Block], list[str]]:
    """The summary table (configurations, best first by the first objective) and its notes."""
    import pandas as pd

    if not records:
        return [], []
    objective_names = [m for m, _ in objectives]
    columns = tuple(dict.fromkeys([*objective_names, *SKILL_SCORES, "wall_time_s"]))
    columns = tuple(c for c in columns if any(c in r for r in records))
    extra = tuple(c for c in ("train_samples",) if all(c in r for r in records))
    means = cell_means(records, params, columns + extra)
    if means.empty:
        return [], []
    varying = [p for p in params if p in means.columns and means[p].nunique(dropna=True) > 1]
    first, direction = objectives[0] if objectives else ("test_auc", "maximize")
    if first in means.columns:
        means = means.sort_values(first, ascending=direction == "minimize", na_position="last")
    rows = means.to_dict("records")
    flags = [_flag(r) for r in rows]
    notes = []
    described = ", ".join(f"{m} ({d})" for m, d in objectives) or "none (the paper's grid)"
    notes.append(f"Objectives of the study: {described}.")
    # The test set is the study's, so every trial has the same baseline; their mean guards against rounding.
    base = [r["test_accuracy_baseline"] for r in records if r.get("test_accuracy_baseline") is not None]
    baseline = sum(base) / len(base) if base else None
    if baseline is not None and math.isfinite(baseline):
        notes.append(
            f"Accuracy baseline: always forecasting 'no tornado' scores test_accuracy {baseline:.4f} on this test "
            "set, so accuracy says little; read ROC AUC (0.5 is random), the Brier skill score (0 is climatology, "
            "above 0 is skill), CSI, POD and FAR (lower is better)."
        )
    bad = [f for f in flags if f]
    if bad:
        notes.append(
            f"{len(bad)} configuration(s) forecast worse than random (test_auc < 0.5), flagged below. Few weight "
            f"updates (under {FEW_UPDATES}) are the usual cause: a large batch on a small training set."
        )
    shown_cols = [*varying, *columns]
    table = pd.DataFrame(
        [
            [_text(r[c], c) for c in shown_cols] + [str(int(r["repeats"])), flag]
            for r, flag in zip(rows[:SHOWN], flags[:SHOWN], strict=False)
        ],
        columns=[*shown_cols, "trials", "flag"],
    )
    hidden = [f for f in flags[SHOWN:] if f]
    if len(rows) > SHOWN:
        notes.append(
            f"The summary shows the best {SHOWN} of {len(rows)} configurations by {first}"
            + (f"; {len(hidden)} more are flagged worse than random." if hidden else ".")
        )
    table.index = range(1, len(table) + 1)
    table.index.name = "rank"
    numeric = means[[*shown_cols, "repeats"]].head(SHOWN).reset_index(drop=True)
    better = "lower" if first in LOWER_IS_BETTER or direction == "minimize" else "higher"
    title = f"Summary: configurations by {first} ({better} is better), with the skill scores"
    return [Block(title, table, numeric, first, lead=True)], notes


def _text(value: Any, column: str) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4g}" if column.startswith(("test_", "wall")) else f"{value:g}"
    return str(value)
