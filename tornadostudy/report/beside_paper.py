"""``report --paper``: the paper's number beside each cell of every paper-layout table, with ours ÷ paper.

A cell is matched with the paper's by its parameters (augmentation, epochs, batch size, data multiplier,
GPUs) in the tables the layout reproduces; the paper's live augmentation is our ``live_cpu``, and its
Tables 3 and 5 trained on one GPU (tornadostudy/paper). What differs in set-up (hardware, library versions,
training-set size) is listed under the tables, from what the study's trials recorded.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from tornadostudy.paper import PAPER_SETUP, PAPER_TRAIN_SAMPLES, paper_value
from tornadostudy.report.tables import Block

__all__ = ["LAYOUT_TABLES", "beside_paper", "paper_ratios", "setup_notes"]

# The paper's tables each layout reproduces.
LAYOUT_TABLES = {"Tables 2–5": (2, 3, 4, 5), "Table 6": (6,), "Table 7": (7,), "Tables 8–9": (8, 9)}


def _cells(block: Block):
    table = block.numeric
    for row in table.index:
        for col in table.columns:
            params = {**block.where, table.index.name: row, table.columns.name: col}
            yield row, col, params, float(table.loc[row, col])


def paper_ratios(block: Block, layout: str) -> list[tuple[dict[str, Any], float, float, int]]:
    """(params, ours, paper, paper table) for every cell of ``block`` that the paper has and we measured."""
    out = []
    for _, _, params, ours in _cells(block):
        found = paper_value(block.value, params, LAYOUT_TABLES[layout])
        if found is not None and math.isfinite(ours):
            out.append((params, ours, found[1], found[0]))
    return out


def beside_paper(block: Block, layout: str) -> Block:
    """``block`` with each cell as ``ours / paper (ours÷paper×)``; cells the paper lacks are left as they are."""
    text = block.table.copy()
    tables: set[int] = set()
    for row, col, params, ours in _cells(block):
        found = paper_value(block.value, params, LAYOUT_TABLES[layout])
        if found is None:
            continue
        tables.add(found[0])
        paper = found[1]
        mine = text.loc[row, col] or "—"
        ratio = f" ({ours / paper:.2f}×)" if math.isfinite(ours) and paper else ""
        text.loc[row, col] = f"{mine} / {paper:.4g}{ratio}"
    if not tables:
        return block
    named = ", ".join(str(t) for t in sorted(tables))
    return replace(block, title=f"{block.title} — ours / paper (ours ÷ paper), paper Table {named}", table=text)


def setup_notes(records: list[dict[str, Any]]) -> list[str]:
    """What differs between the paper's set-up and this study's, as lines for the report."""

    def seen(key: str) -> str:
        values = sorted({str(r[key]) for r in records if r.get(key) not in (None, "")})
        return ", ".join(values) if values else "not recorded"

    samples = sorted({int(r["train_samples"]) for r in records if r.get("train_samples")})
    per_k = sorted(
        {int(r["train_samples"]) // int(r.get("data_multiplier", 1)) for r in records if r.get("train_samples")}
    )
    size = ", ".join(f"{n:,}" for n in per_k) if per_k else "not recorded"
    same = per_k == [PAPER_TRAIN_SAMPLES]
    return [
        "Beside the paper: each cell reads ours / paper (ours ÷ paper). The paper's live augmentation is "
        "Keras's ImageDataGenerator on the CPU: it is set beside our live_cpu cells only.",
        f"Paper set-up: {PAPER_SETUP['cpu']}; {PAPER_SETUP['gpu']}; {PAPER_SETUP['software']}; {PAPER_SETUP['data']}.",
        f"This study: hardware {seen('hardware')}; {seen('versions')}; 1× training set {size} samples "
        f"per pass"
        + (
            " (the paper's)"
            if same
            else f" (the paper: {PAPER_TRAIN_SAMPLES:,}: times differ by that much before any hardware difference)"
        )
        + (f"; samples per epoch {samples[0]:,}–{samples[-1]:,}" if samples else "")
        + ".",
    ]
