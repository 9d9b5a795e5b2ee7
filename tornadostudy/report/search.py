"""The report of a TPE or random study: its best trials, the optimisation history, parameter importances and
slices of the objective against each parameter.

Such a study samples a new point for every trial, so no two trials share a configuration: nothing is averaged,
and the paper's grid tables (which assume repeats of fixed cells) are not made.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tornadostudy.report.tables import Block

__all__ = ["best_trials_block", "search_figures"]

BEST = 10


def _sorted(records: list[dict[str, Any]], metric: str, direction: str) -> list[dict[str, Any]]:
    usable = [r for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    return sorted(usable, key=lambda r: r[metric], reverse=direction == "maximize")


def best_trials_block(
    records: list[dict[str, Any]], params: list[str], objectives: tuple[tuple[str, str], ...]
) -> list[Block]:
    """The best trials by the first objective: each trial's own parameters and numbers, nothing averaged."""
    import pandas as pd

    metric, direction = objectives[0] if objectives else ("test_auc", "maximize")
    best = _sorted(records, metric, direction)[:BEST]
    if not best:
        return []
    columns = [p for p in params if any(p in r for r in best)]
    shown = list(dict.fromkeys([*(m for m, _ in objectives), "test_auc", "test_bss", "wall_time_s"]))
    shown = [c for c in shown if any(c in r for r in best)]
    rows = [[_text(r.get(c)) for c in [*columns, *shown]] for r in best]
    table = pd.DataFrame(rows, columns=[*columns, *shown], index=[r["trial"] for r in best])
    table.index.name = "trial"
    numeric = pd.DataFrame([{c: r.get(c) for c in [*columns, *shown]} for r in best], index=table.index)
    title = f"Best {len(best)} of {len(records)} trials by {metric} ({direction}); each row is one trial"
    return [Block(title, table, numeric, metric)]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    return "" if value is None else str(value)


def search_figures(
    records: list[dict[str, Any]],
    params: list[str],
    objectives: tuple[tuple[str, str], ...],
    importances: dict[str, float] | None,
    out: Path,
    figures,
) -> None:
    """optimisation_history.png, param_importances.png (Optuna's fANOVA evaluator, computed by the study side)
    and slice.png, added to ``figures``."""
    from tornadostudy.report.plots import _plt, _save

    plt = _plt()
    metric, direction = objectives[0] if objectives else ("test_auc", "maximize")
    done = sorted(
        (r for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])),
        key=lambda r: r["trial"],
    )
    if not done:
        figures.skipped.append(f"no trial has a finite {metric}")
        return
    xs, ys = [r["trial"] for r in done], [r[metric] for r in done]
    pick = max if direction == "maximize" else min
    running = [pick(ys[: i + 1]) for i in range(len(ys))]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(xs, ys, s=18, label="trial")
    ax.step(xs, running, where="post", color="C3", label=f"best so far ({direction})")
    ax.set(xlabel="trial number", ylabel=metric, title=f"Optimisation history: {metric}")
    ax.legend()
    _save(fig, out, "optimisation_history", f"{metric} of every trial in order, and the best so far", figures)

    if importances:
        names = sorted(importances, key=importances.get)
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(names)))
        ax.barh(names, [importances[n] for n in names])
        ax.set(xlabel=f"importance for {metric} (fANOVA, sums to 1)", title="Parameter importances")
        _save(fig, out, "param_importances", f"How much each parameter explains of {metric}", figures)
    else:
        figures.skipped.append("parameter importances need at least two completed trials with varying parameters")

    varying = [p for p in params if len({str(r.get(p)) for r in done}) > 1]
    if varying:
        fig, axes = plt.subplots(1, len(varying), figsize=(3.2 * len(varying), 3.4), sharey=True, squeeze=False)
        for ax, name in zip(axes[0], varying, strict=True):
            values = [r.get(name) for r in done]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            shown = values if numeric else [str(v) for v in values]
            ax.scatter(shown, ys, c=xs, cmap="viridis", s=16)
            if numeric and name == "learning_rate":
                ax.set_xscale("log")
            ax.set(xlabel=name)
        axes[0][0].set_ylabel(metric)
        fig.suptitle(f"Slices: {metric} against each parameter (colour: trial number)")
        _save(fig, out, "slice", f"{metric} against each searched parameter", figures)
