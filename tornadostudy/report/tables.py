"""The paper's table layouts, and any pivot, from a study's completed trials.

Repeats of a cell are shown as mean ± std. A cell with no trial is missing ("—" in Markdown, empty
in CSV), never zero; a cell whose trials have no value for the metric (e.g. the target skill was
never reached) says so ("n/a", or "not reached" for time to target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from tornadostudy.errors import UserInputError

__all__ = [
    "DEFAULT_LAYOUT_METRICS",
    "LOWER_IS_BETTER",
    "PAPER_LAYOUTS",
    "Block",
    "Layout",
    "add_time_to_target",
    "augmentation_ratio_blocks",
    "cell_means",
    "default_target",
    "fastest_reaching",
    "paper_blocks",
    "pivot_blocks",
]

AGGREGATES = ("mean", "median", "min", "max")
TIME_TO_TARGET = "time_to_target_s"
# Metrics where a smaller value is the better forecast (the rest: larger is better).
LOWER_IS_BETTER = frozenset(
    {"test_far", "test_brier", "test_loss", "train_loss", "wall_time_s", TIME_TO_TARGET}
    | {f"time_{part}_s" for part in ("data", "first_epoch", "steady_epochs", "eval", "test")}
)


@dataclass(frozen=True)
class Layout:
    name: str  # the paper's tables this layout reproduces
    rows: str
    cols: str
    by: tuple[str, ...]


PAPER_LAYOUTS = (
    Layout("Tables 2–5", "batch_size", "data_multiplier", ("augmentation", "num_gpus", "epochs")),
    Layout("Table 6", "num_gpus", "data_multiplier", ("augmentation", "batch_size", "epochs")),
    Layout("Table 7", "num_gpus", "epochs", ("augmentation", "batch_size", "data_multiplier")),
    Layout("Tables 8–9", "epochs", "batch_size", ("augmentation", "num_gpus", "data_multiplier")),
)
# Without --metrics: what the paper showed in each layout.
DEFAULT_LAYOUT_METRICS = {
    "Tables 2–5": ("wall_time_s",),
    "Table 6": ("wall_time_s",),
    "Table 7": ("wall_time_s",),
    "Tables 8–9": ("test_accuracy", "wall_time_s"),
}
METRIC_NAMES = {
    "wall_time_s": "Wall time (s)",
    "test_accuracy": "Test accuracy",
    "test_auc": "Test ROC AUC",
    "test_csi": "Test CSI",
    "test_pod": "Test POD",
    "test_far": "Test FAR",
    "test_bss": "Test Brier skill score",
    TIME_TO_TARGET: "Time to target skill (s)",
}


@dataclass(frozen=True)
class Block:
    title: str
    table: Any  # pandas.DataFrame of display strings (index = rows, columns = cols)
    numeric: Any  # pandas.DataFrame of the aggregate (NaN where missing or undefined)
    value: str = ""
    where: dict[str, Any] = field(default_factory=dict)  # the by-parameters this table holds fixed
    layout: str = ""  # the paper layout it reproduces, if any
    lead: bool = False  # shown first, before the figures (the summary)


def _frame(records: list[dict[str, Any]]):
    import pandas as pd

    return pd.DataFrame.from_records(records)


def _fmt(value: float, std: float, count: int) -> str:
    """A cell's value; the mean of repeats says how many (``n``) and their spread."""
    text = f"{value:.4g}"
    return f"{text} ± {std:.2g} (n={count})" if count > 1 and std == std else text


def pivot_blocks(
    records: list[dict[str, Any]],
    rows: str,
    cols: str,
    value: str,
    by: tuple[str, ...] = (),
    agg: str = "mean",
    title: str | None = None,
) -> list[Block]:
    """One table of ``value`` (rows × cols) per combination of the ``by`` columns."""
    return _pivot(_frame(records), rows, cols, value, by, agg, title)


def _pivot(df, rows: str, cols: str, value: str, by: tuple[str, ...], agg: str, title: str | None) -> list[Block]:
    # One groupby over every key for the whole study, then one unstack per table: a study of
    # 20,000 trials and hundreds of tables stays fast (no per-cell pandas indexing).
    import pandas as pd

    if df.empty:
        return []
    missing = [c for c in (rows, cols, value, *by) if c not in df.columns]
    if missing:
        raise UserInputError(
            f"report: column {missing[0]!r} is not in this study's trials; available: {', '.join(sorted(df.columns))}"
        )
    if agg not in AGGREGATES:
        raise UserInputError(f"report: --agg {agg!r} is not valid: use {', '.join(AGGREGATES)}")
    values = df[value].astype(float)
    all_rows = sorted(df[rows].dropna().unique())
    all_cols = sorted(df[cols].dropna().unique())
    undefined = "not reached" if value == TIME_TO_TARGET else "n/a"
    grouped = values.groupby([df[k] for k in (*by, rows, cols)], sort=True)
    stats = pd.DataFrame({"stat": getattr(grouped, agg)(), "std": grouped.std(), "count": grouped.count()})
    stats["text"] = [
        undefined if n == 0 else _fmt(v, sd if agg == "mean" else math.nan, n)
        for v, sd, n in zip(stats["stat"], stats["std"], stats["count"], strict=True)
    ]
    parts = stats.groupby(level=list(range(len(by))), sort=True) if by else [((), stats)]
    blocks = []
    for key, part in parts:
        key = key if isinstance(key, tuple) else (key,)
        cells = part.droplevel(list(range(len(by)))) if by else part
        table = cells["text"].unstack(cols).reindex(index=all_rows, columns=all_cols).astype(object).fillna("")
        stat = cells["stat"].unstack(cols).reindex(index=all_rows, columns=all_cols)
        table.index.name, table.columns.name = rows, cols
        stat.index.name, stat.columns.name = rows, cols
        where = ", ".join(f"{b}={k}" for b, k in zip(by, key, strict=True))
        head = title or f"{value} ({agg}), {rows} × {cols}"
        fixed = {b: (k.item() if hasattr(k, "item") else k) for b, k in zip(by, key, strict=True)}
        blocks.append(Block(head + (f" — {where}" if where else ""), table, stat, value, fixed))
    return blocks


def _varies(df, column: str) -> bool:
    return column in df.columns and df[column].nunique(dropna=True) > 1


def paper_blocks(
    records: list[dict[str, Any]],
    metrics: tuple[str, ...] | None = None,
    skill: str = "test_accuracy",
    params: list[str] | None = None,
    paper: bool = False,
) -> list[Block]:
    """Every paper layout whose dimensions the study has.

    A layout is shown when both of its axes vary in the study; if none does, those where one axis
    varies (a study of batch sizes alone still gets its table). ``metrics`` replaces the default value of
    every layout: wall time, and in Tables 8–9 the study's ``skill`` (test accuracy as well beside the paper).
    A table only averages trials that differ in nothing but its axes: any other parameter of ``params`` that
    varies gets tables of its own.
    """
    df = _frame(records)
    if df.empty:
        return []
    if metrics:
        absent = [m for m in metrics if m not in df.columns]
        if absent:
            numeric = sorted(c for c in df.columns if c.startswith(("test_", "time_", "train_", "wall")))
            raise UserInputError(
                f"report: --metrics names {absent[0]!r}, which this study's trials do not have; "
                f"available: {', '.join(numeric)}"
            )
    usable = [lay for lay in PAPER_LAYOUTS if {lay.rows, lay.cols, *lay.by} <= set(df.columns)]
    both = [lay for lay in usable if _varies(df, lay.rows) and _varies(df, lay.cols)]
    chosen = both or [lay for lay in usable if _varies(df, lay.rows) or _varies(df, lay.cols)]
    blocks = []
    for layout in chosen:
        defaults = DEFAULT_LAYOUT_METRICS[layout.name]
        if "test_accuracy" in defaults:
            defaults = tuple(dict.fromkeys([skill, *(["test_accuracy"] if paper else []), "wall_time_s"]))
        held = (layout.rows, layout.cols, *layout.by)
        by = (*layout.by, *(p for p in params or () if p not in held and p != "repeat" and _varies(df, p)))
        for value in metrics or defaults:
            if value not in df.columns:
                continue
            name = METRIC_NAMES.get(value, value)
            title = f"{name}, {layout.rows} × {layout.cols} (paper {layout.name})"
            blocks += [
                replace(b, layout=layout.name) for b in _pivot(df, layout.rows, layout.cols, value, by, "mean", title)
            ]
    return blocks


def augmentation_ratio_blocks(records: list[dict[str, Any]], params: list[str]) -> list[Block]:
    """Wall time of each live mode ÷ pre-augmented, for configurations that differ in nothing else: one table
    per GPU count, batch size × mode, each cell the mean ratio over the epochs and multipliers run (the paper:
    live on the CPU cost ~13× pre on its CPU node and ~1.9× on one GPU, at batch 128)."""
    import pandas as pd

    df = _frame(records)
    if df.empty or "augmentation" not in df.columns or "pre" not in set(df["augmentation"]):
        return []
    keys = [p for p in params if p in df.columns and p != "augmentation"]
    if "batch_size" not in keys or "num_gpus" not in keys:
        return []
    wall = df.groupby([*keys, "augmentation"])["wall_time_s"].mean().unstack("augmentation")
    modes = [m for m in wall.columns if m != "pre"]
    if not modes:
        return []
    ratios = wall[modes].div(wall["pre"], axis=0).reset_index()
    blocks = []
    for gpus, part in ratios.groupby("num_gpus", sort=True):
        mean = part.groupby("batch_size")[modes].mean()
        count = part.groupby("batch_size")[modes].count()
        if count.to_numpy().sum() == 0:
            continue
        text = pd.DataFrame(
            [[f"{v:.3g}×" if n else "" for v, n in zip(mean.loc[bs], count.loc[bs], strict=True)] for bs in mean.index],
            index=mean.index,
            columns=[f"{m} ÷ pre" for m in modes],
        )
        numeric = mean.set_axis([f"{m} ÷ pre" for m in modes], axis=1)
        text.index.name = numeric.index.name = "batch_size"
        text.columns.name = numeric.columns.name = "augmentation"
        title = f"Wall time, live augmentation ÷ pre-augmented (mean over epochs and multipliers) — num_gpus={gpus}"
        blocks.append(Block(title, text, numeric, "wall_time_ratio", {"num_gpus": gpus}))
    return blocks


def default_target(records: list[dict[str, Any]], skill: str) -> float:
    """Within 1 % of the best skill any trial reached (in the metric's good direction)."""
    values = [float(r[skill]) for r in records if r.get(skill) is not None and math.isfinite(float(r[skill]))]
    if not values:
        raise UserInputError(f"report: no completed trial has the skill metric {skill!r}; pick another with --skill")
    if skill in LOWER_IS_BETTER:
        best = min(values)
        return best + 0.01 * abs(best)
    best = max(values)
    return best - 0.01 * abs(best)


def reached(value: float, target: float, skill: str) -> bool:
    return value <= target if skill in LOWER_IS_BETTER else value >= target


def add_time_to_target(records: list[dict[str, Any]], skill: str, target: float) -> list[dict[str, Any]]:
    """Each record plus ``time_to_target_s``: its wall time if it reached ``target`` on ``skill``, else NaN."""
    out = []
    for r in records:
        value = r.get(skill)
        ok = value is not None and math.isfinite(float(value)) and reached(float(value), target, skill)
        out.append({**r, TIME_TO_TARGET: float(r["wall_time_s"]) if ok else math.nan})
    return out


def cell_means(records: list[dict[str, Any]], params: list[str], columns: tuple[str, ...]):
    """One row per configuration (repeats averaged): ``params`` + the mean of each of ``columns``."""
    df = _frame(records)
    keys = [p for p in params if p in df.columns]
    if df.empty or not keys or any(c not in df.columns for c in columns):
        return df.iloc[0:0]
    means = df.groupby(keys, dropna=False)[list(columns)].mean().reset_index()
    means["repeats"] = df.groupby(keys, dropna=False).size().values
    return means


def fastest_reaching(
    records: list[dict[str, Any]], params: list[str], skill: str, target: float
) -> dict[str, Any] | None:
    """The configuration with the least mean wall time whose mean ``skill`` reaches ``target``."""
    cells = cell_means(records, params, ("wall_time_s", skill)).dropna(subset=["wall_time_s", skill])
    if cells.empty:
        return None
    ok = cells[[reached(float(v), target, skill) for v in cells[skill]]]
    if ok.empty:
        return None
    best = ok.loc[ok["wall_time_s"].idxmin()]
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}
