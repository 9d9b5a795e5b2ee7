"""``tornadostudy retry``: put failed cells back to waiting, keeping their history.

A failed cell's trials stay FAIL in Optuna and its MLflow runs keep their reasons; the cell itself gets a
fresh set of attempts and its last error stays on it until a worker claims it again. Only failed cells
are touched, chosen by number (``--cells``) and/or by parameter value (``--where batch_size=4096``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from tornadostudy.errors import UserInputError
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.storage import retrying

__all__ = ["parse_where", "retry_failed_cells"]


def parse_where(items: list[str], names: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` filters, values read as JSON where they parse (numbers, true/false), else as text."""
    where: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserInputError(f"--where {item!r} is not NAME=VALUE: use e.g. --where batch_size=4096")
        if name not in names:
            raise UserInputError(f"--where {name!r} is not a parameter of the study: use one of {', '.join(names)}")
        try:
            where[name] = json.loads(text)
        except ValueError:
            where[name] = text.strip()
    return where


def _matches(params: dict[str, Any], where: dict[str, Any]) -> bool:
    for name, wanted in where.items():
        value = params.get(name)
        if isinstance(value, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(value, bool):
            if not math.isclose(value, wanted, rel_tol=1e-9, abs_tol=0.0):
                return False
        elif str(value) != str(wanted):
            return False
    return True


def retry_failed_cells(handle: StudyHandle, cells: set[int] | None, where: dict[str, Any]) -> list[int]:
    """Failed cells of the study (those in ``cells`` if given, matching ``where``) back to waiting with their
    attempts reset. Returns the cells put back (sorted); a cell claimed meanwhile is left as it is."""
    table = handle.cells
    rows = table.rows(handle.name, cells)
    if cells is not None:
        unknown = sorted(cells - {r["cell"] for r in rows})
        if unknown:
            last = sum(table.counts(handle.name).values()) - 1
            raise UserInputError(
                f"--cells {','.join(map(str, unknown))}: no such cell in study {handle.name} (cells are 0..{last}; "
                f"'tornadostudy status {handle.name}' lists the failed ones)"
            )
    chosen = [
        r["cell"]
        for r in rows
        if r["state"] == "failed" and _matches(json.loads(r["params"]) if r["params"] else {}, where)
    ]
    t, sa = table.table, table.sa
    statement = (
        t.update()
        .where((t.c.study == handle.name) & (t.c.cell == sa.bindparam("c")) & (t.c.state == "failed"))
        .values(state="waiting", attempts=0, worker=None)
    )

    def attempt():
        with table.engine.begin() as conn:
            return [c for c in chosen if conn.execute(statement, {"c": c}).rowcount == 1]

    return sorted(retrying(attempt, what="put failed cells back")) if chosen else []
