"""The report's figures (PNG): accuracy curves, wall time vs batch size, speed-up, Pareto front.

Each figure fixes the parameters it does not plot at a reference value (the paper's usual slice:
1 GPU or the fewest, pre-augmented, the most epochs, the smallest batch and multiplier) and says
so in its title. A figure whose dimension does not vary in the study is skipped with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornadostudy.report.tables import LOWER_IS_BETTER, cell_means, fastest_reaching

__all__ = ["Figures", "make_figures", "pareto_front", "reference_slice"]

log = logging.getLogger(__name__)

# Curves per epoch come from the tracking server; this reads one run's history of one metric.
CurveReader = Callable[[str, str], list[tuple[int, float]]]


@dataclass
class Figures:
    made: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)
    skipped: list[str] = field(default_factory=list)  # why a figure is absent


def _reference(df, column: str):
    values = sorted(df[column].dropna().unique())
    if column == "augmentation":
        return "pre" if "pre" in values else values[0]
    return values[-1] if column == "epochs" else values[0]


def reference_slice(df, params: list[str], free: tuple[str, ...]):
    """Rows of ``df`` with every parameter except ``free`` at its reference value; and that slice."""
    fixed = {p: _reference(df, p) for p in params if p not in free and p in df.columns and df[p].nunique() > 0}
    mask = df.index == df.index
    for p, v in fixed.items():
        mask &= df[p] == v
    return df[mask], fixed


def _describe(fixed: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fixed.items() if k != "seed")


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points (time, skill) no other point beats on both: less time and better skill."""
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], -math.inf
    for i in order:
        skill = sign * points[i][1]
        if skill > best:
            front.append(i)
            best = skill
    return front


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str, caption: str, figures: Figures) -> None:
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    figures.made.append((caption, path))


def _curves(df, params, group: str, metric: str, read: CurveReader | None, out: Path, figures: Figures) -> None:
    name = f"curves_by_{group}"
    if group not in df.columns or df[group].nunique() < 2:
        figures.skipped.append(f"{name}: {group} does not vary in this study")
        return
    if read is None or "run_id" not in df.columns:
        figures.skipped.append(f"{name}: per-epoch curves need the tracking server")
        return
    part, fixed = reference_slice(df, params, (group,))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for value, rows in part.sort_values("trial").groupby(group, sort=True):
        run_id = rows.iloc[0]["run_id"]
        try:
            points = read(str(run_id), metric)
        except Exception as exc:  # a run the tracking server cannot give: skip its line, keep the figure
            log.warning("no %s history for run %s: %s", metric, run_id, str(exc)[:200])
            continue
        if points:
            ax.plot(*zip(*sorted(points), strict=True), marker="o", ms=3, label=f"{group}={value}")
            drawn += 1
    if drawn == 0:
        plt.close(fig)
        figures.skipped.append(f"{name}: no {metric!r} history in the tracking server for this slice")
        return
    ax.xaxis.get_major_locator().set_params(integer=True)
    figure = {"num_gpus": "paper Figure 6", "batch_size": "paper Figure 7"}[group]
    _finish(
        fig,
        ax,
        fixed,
        out,
        name,
        f"Training {metric} per epoch by {group}",
        f"Training {metric} per epoch, one line per {group} ({figure})",
        figures,
        xlabel="epoch",
        ylabel=f"training {metric}",
    )


def _per_line_figure(df, params, name: str, x: str, lines: str, figures: Figures):
    """The reference slice with ``x`` and ``lines`` free, and a new axes; None when ``x`` does not vary."""
    if df[x].nunique() < 2:
        figures.skipped.append(f"{name}: {x} does not vary in this study")
        return None
    part, fixed = reference_slice(df, params, (x, lines))
    fig, ax = _plt().subplots(figsize=(6, 4))
    return part, fixed, fig, ax


def _finish(fig, ax, fixed, out: Path, name: str, title: str, caption: str, figures: Figures, **labels) -> None:
    ax.set(title=f"{title}\n{_describe(fixed)}", **labels)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=8)
    _save(fig, out, name, caption, figures)


def _wall_vs_batch(df, params, out: Path, figures: Figures) -> None:
    made = _per_line_figure(df, params, "wall_vs_batch", "batch_size", "data_multiplier", figures)
    if made is None:
        return
    part, fixed, fig, ax = made
    for k, rows in part.groupby("data_multiplier", sort=True):
        mean = rows.groupby("batch_size")["wall_time_s"].mean()
        ax.plot(mean.index, mean.values, marker="o", label=f"data_multiplier={k}")
    ax.set_xscale("log", base=2)
    _finish(
        fig,
        ax,
        fixed,
        out,
        "wall_vs_batch",
        "Wall time vs batch size",
        "Wall time vs batch size, one line per data multiplier",
        figures,
        xlabel="batch size",
        ylabel="wall time (s)",
    )


def _speedup(df, params, out: Path, figures: Figures) -> None:
    made = _per_line_figure(df, params, "speedup_vs_gpus", "num_gpus", "batch_size", figures)
    if made is None:
        return
    part, fixed, fig, ax = made
    # Speed-up over the fewest GPUs: CPU-only cells (0 GPUs) have no place on this axis.
    part = part[part["num_gpus"] > 0]
    gpus = sorted(part["num_gpus"].unique())
    if len(gpus) < 2:
        _plt().close(fig)
        figures.skipped.append("speedup_vs_gpus: fewer than two GPU counts above 0 in this study")
        return
    base = gpus[0]
    for bs, rows in part.groupby("batch_size", sort=True):
        mean = rows.groupby("num_gpus")["wall_time_s"].mean()
        if base in mean.index and len(mean) > 1:  # a batch size run on one GPU count has no speed-up to draw
            ax.plot(mean.index, mean[base] / mean.values, marker="o", label=f"batch_size={bs}")
    ax.plot(gpus, [g / base for g in gpus], "k--", lw=1, label="ideal")
    _finish(
        fig,
        ax,
        fixed,
        out,
        "speedup_vs_gpus",
        "Speed-up vs GPU count",
        "Speed-up vs number of GPUs, one line per batch size",
        figures,
        xlabel="GPUs",
        ylabel=f"speed-up over {base} GPU(s)",
    )


def _accuracy_vs_epochs(df, params, out: Path, figures: Figures, paper: bool) -> None:
    """Test accuracy of the trained model against the epochs trained, one line per batch size: the paper's
    Table 8 as a figure (its Figure 8); with ``paper``, the paper's own lines dashed beside ours."""
    name = "accuracy_vs_epochs"
    if "test_accuracy" not in df.columns or "batch_size" not in df.columns:
        figures.skipped.append(f"{name}: the trials have no test_accuracy or batch_size")
        return
    made = _per_line_figure(df, params, name, "epochs", "batch_size", figures)
    if made is None:
        return
    part, fixed, fig, ax = made
    for i, (bs, rows) in enumerate(part.groupby("batch_size", sort=True)):
        mean = rows.groupby("epochs")["test_accuracy"].mean()
        ax.plot(mean.index, mean.values, marker="o", ms=3, color=f"C{i % 10}", label=f"batch_size={bs}")
        if paper:
            from tornadostudy.paper import paper_value

            cell = {**fixed, "batch_size": bs}
            theirs = [(e, paper_value("test_accuracy", {**cell, "epochs": e}, (8,))) for e in mean.index]
            theirs = [(e, found[1]) for e, found in theirs if found]
            if theirs:
                ax.plot(*zip(*theirs, strict=True), ls="--", lw=1, color=f"C{i % 10}", label=f"paper, {bs}")
    if part["epochs"].max() > 10 * part["epochs"].min():
        ax.set_xscale("log")
    caption = "Test accuracy vs epochs trained, one line per batch size (paper Table 8 and Figure 8)"
    _finish(
        fig,
        ax,
        fixed,
        out,
        name,
        "Test accuracy vs epochs",
        caption + (", the paper's dashed" if paper else ""),
        figures,
        xlabel="epochs",
        ylabel="test accuracy",
    )


def _pareto(records, params, skill: str, target: float, fastest, out: Path, figures: Figures) -> None:
    cells = cell_means(records, params, ("wall_time_s", skill)).dropna(subset=["wall_time_s", skill])
    if cells.empty:
        figures.skipped.append(f"pareto: no completed trial has {skill}")
        return
    higher = skill not in LOWER_IS_BETTER
    points = list(zip(cells["wall_time_s"], cells[skill], strict=True))
    front = [points[i] for i in pareto_front(points, higher)]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(cells["wall_time_s"], cells[skill], s=12, c="#999", label="configurations (mean of repeats)")
    ax.plot([p[0] for p in front], [p[1] for p in front], "-o", c="C0", ms=4, label="Pareto front")
    ax.axhline(target, color="C2", ls=":", lw=1, label=f"target {skill} {'≥' if higher else '≤'} {target:.4g}")
    if fastest is not None:
        ax.scatter(
            [fastest["wall_time_s"]],
            [fastest[skill]],
            marker="*",
            s=200,
            c="C3",
            zorder=5,
            label="fastest reaching the target",
        )
    if cells["wall_time_s"].max() > 10 * cells["wall_time_s"].min():
        ax.set_xscale("log")
    ax.set(xlabel="wall time (s)", ylabel=skill, title=f"{skill} vs wall time")
    ax.legend(fontsize=7)
    caption = f"Pareto front of {skill} vs wall time; the star is the fastest configuration reaching the target"
    _save(fig, out, "pareto", caption, figures)


def make_figures(
    records: list[dict[str, Any]],
    params: list[str],
    out: Path,
    *,
    skill: str,
    target: float,
    curve_metric: str = "accuracy",
    read_curve: CurveReader | None = None,
    fastest: dict[str, Any] | None = None,
    paper: bool = False,
    grid: bool = True,
) -> Figures:
    """Write every figure the study's dimensions allow into ``out``. ``fastest``: the configuration
    :func:`fastest_reaching` found, when the caller has it already."""
    import pandas as pd

    figures = Figures()
    df = pd.DataFrame.from_records(records)
    if df.empty:
        figures.skipped.append("no completed trials yet")
        return figures
    out.mkdir(parents=True, exist_ok=True)
    params = [p for p in params if p in df.columns]
    if not grid:  # a TPE/random study: no two trials share a configuration to slice the paper's way
        if fastest is None:
            fastest = fastest_reaching(records, params, skill, target)
        _pareto(records, params, skill, target, fastest, out, figures)
        return figures
    for group in ("num_gpus", "batch_size"):
        _curves(df, params, group, curve_metric, read_curve, out, figures)
    if {"batch_size", "data_multiplier"} <= set(df.columns):
        _wall_vs_batch(df, params, out, figures)
    if {"num_gpus", "batch_size"} <= set(df.columns):
        _speedup(df, params, out, figures)
    if "epochs" in df.columns:
        _accuracy_vs_epochs(df, params, out, figures, paper)
    if fastest is None:
        fastest = fastest_reaching(records, params, skill, target)
    _pareto(records, params, skill, target, fastest, out, figures)
    return figures
