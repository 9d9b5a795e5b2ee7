"""How a run's spooled writes group into MLflow ``log_batch`` calls, within MLflow's limits."""

from __future__ import annotations

from typing import Any

__all__ = ["BATCHED_OPS", "merge_writes"]

# What one log_batch call may carry (MLflow's limits): params, metrics, tags; and all of them together.
_BATCH_LIMITS, _BATCH_MAX_ENTITIES = (100, 1000, 100), 1000
_BATCH_COUNTS = {  # a spooled write's (params, metrics, tags)
    "params": lambda op: (len(op["params"]), 0, 0),
    "metrics": lambda op: (0, len(op["metrics"]), len(op.get("tags", {}))),
    "history": lambda op: (0, len(op["entries"]), 0),
    "tags": lambda op: (0, 0, len(op["tags"])),
}
BATCHED_OPS = frozenset(_BATCH_COUNTS)  # the spooled writes that go in a log_batch call


def merge_writes(ops: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A run's spooled writes, in order, in groups that one log_batch call can carry: a trial's params,
    epochs and final numbers become one round trip when they wait together (a busy or lagging
    delivery thread, a replay after an outage). Closing the run is a call of its own."""
    groups: list[list[dict[str, Any]]] = []
    total = None  # the counts of the last group, while it can still grow
    for op in ops:
        counts = _BATCH_COUNTS[op["op"]](op) if op["op"] in _BATCH_COUNTS else None
        merged = None if total is None or counts is None else [a + b for a, b in zip(total, counts, strict=True)]
        fits = merged is not None and sum(merged) <= _BATCH_MAX_ENTITIES
        if fits and all(n <= limit for n, limit in zip(merged, _BATCH_LIMITS, strict=True)):
            groups[-1].append(op)
            total = merged
        else:
            groups.append([op])
            total = counts
    return groups
