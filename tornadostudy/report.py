"""``tornadostudy report``: the paper's table layouts, and any pivot, from a study's trials.

Repeats of a cell are shown as mean ± std; a cell with no completed trial is shown as missing
("—" in Markdown, empty in CSV), never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tornadostudy.errors import UserInputError

__all__ = ["PAPER_LAYOUTS", "Block", "Layout", "paper_blocks", "pivot_blocks", "render"]

FORMATS = ("md", "csv")


@dataclass(frozen=True)
class Layout:
    title: str
    value: str
    rows: str
    cols: str
    by: tuple[str, ...]


PAPER_LAYOUTS = (
    Layout("Wall time (s), batch size × data multiplier (paper Tables 2–5)", "wall_time_s", "batch_size",
           "data_multiplier", ("augmentation", "num_gpus", "epochs")),
    Layout("Test accuracy, epochs × batch size (paper Table 8)", "test_accuracy", "epochs", "batch_size",
           ("augmentation", "num_gpus", "data_multiplier")),
)  # fmt: skip


@dataclass(frozen=True)
class Block:
    title: str
    table: Any  # pandas.DataFrame of display strings (index = rows, columns = cols)
    numeric: Any  # pandas.DataFrame of means (NaN where missing)


def _frame(records: list[dict[str, Any]]):
    import pandas as pd

    return pd.DataFrame.from_records(records)


def _fmt(mean: float, std: float, count: int) -> str:
    if count == 0 or mean != mean:
        return ""
    text = f"{mean:.4g}"
    return f"{text} ± {std:.2g}" if count > 1 else text


def pivot_blocks(records: list[dict[str, Any]], rows: str, cols: str, value: str,
                 by: tuple[str, ...] = (), agg: str = "mean", title: str | None = None) -> list[Block]:  # fmt: skip
    """One table of ``value`` (rows × cols) per combination of the ``by`` columns."""
    df = _frame(records)
    if df.empty:
        return []
    missing = [c for c in (rows, cols, value, *by) if c not in df.columns]
    if missing:
        raise UserInputError(
            f"report: column {missing[0]!r} is not in this study's trials; available: {', '.join(sorted(df.columns))}"
        )
    if agg not in ("mean", "median", "min", "max"):
        raise UserInputError(f"report: --agg {agg!r} is not valid: use mean, median, min or max")
    blocks = []
    groups = df.groupby(list(by), sort=True) if by else [((), df)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        grouped = part.groupby([rows, cols])[value]
        stat = getattr(grouped, agg)().unstack(cols)
        std = grouped.std().unstack(cols)
        count = grouped.count().unstack(cols)
        all_rows = sorted(df[rows].dropna().unique())
        all_cols = sorted(df[cols].dropna().unique())
        stat, std, count = (t.reindex(index=all_rows, columns=all_cols) for t in (stat, std, count))
        table = stat.copy().astype(object)
        for r in all_rows:
            for c in all_cols:
                n = count.loc[r, c]
                n = 0 if n != n else int(n)
                table.loc[r, c] = (
                    _fmt(stat.loc[r, c], std.loc[r, c], n) if agg == "mean" else _fmt(stat.loc[r, c], 0, min(n, 1))
                )
        table.index.name, table.columns.name = rows, cols
        where = ", ".join(f"{b}={k}" for b, k in zip(by, key, strict=True))
        head = title or f"{value} ({agg}), {rows} × {cols}"
        blocks.append(Block(f"{head}" + (f" — {where}" if where else ""), table, stat))
    return blocks


def paper_blocks(records: list[dict[str, Any]]) -> list[Block]:
    blocks = []
    columns = set(_frame(records).columns)
    for layout in PAPER_LAYOUTS:
        if {layout.value, layout.rows, layout.cols, *layout.by} <= columns:
            blocks += pivot_blocks(records, layout.rows, layout.cols, layout.value, layout.by, title=layout.title)
    return blocks


def _markdown(block: Block) -> str:
    table = block.table
    header = f"| {table.index.name} \\ {table.columns.name} | " + " | ".join(str(c) for c in table.columns) + " |"
    lines = [f"### {block.title}", "", header, "|" + "---|" * (len(table.columns) + 1)]
    for idx, row in table.iterrows():
        lines.append(f"| {idx} | " + " | ".join(v if v else "—" for v in row) + " |")
    return "\n".join(lines)


def _csv(block: Block) -> str:
    import io

    buf = io.StringIO()
    block.table.to_csv(buf)
    return f"# {block.title}\n{buf.getvalue()}"


def render(blocks: list[Block], fmt: str = "md", heading: str | None = None) -> str:
    if fmt not in FORMATS:
        raise UserInputError(f"--format {fmt!r} is not valid: use one of {', '.join(FORMATS)}")
    if not blocks:
        return (f"## {heading}\n\n" if heading and fmt == "md" else "") + "(no completed trials yet)\n"
    parts = [_markdown(b) if fmt == "md" else _csv(b) for b in blocks]
    text = "\n\n".join(parts) + "\n"
    return (f"## {heading}\n\n" + text) if heading and fmt == "md" else text
