"""``data info``: describe a raw NCAR folder or a prepared folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornadostudy.data.labels import LabelRule
from tornadostudy.data.prepare import DEFAULT_SPLIT_DATE
from tornadostudy.data.prepared import PreparedData, is_prepared
from tornadostudy.data.reader import list_source_files, read_variables
from tornadostudy.data.schema import CHANNELS

__all__ = ["describe", "format_text"]


def _describe_prepared(folder: Path) -> dict[str, Any]:
    data = PreparedData.open(folder)
    m = data.manifest
    return {
        "kind": "prepared",
        "path": str(folder),
        **m["counts"],
        "channels": m["channels"],
        "multipliers": data.multipliers,
        "train_sets": {k: {"size": v["size"], "positives": v["positives"]} for k, v in m["train_sets"].items()},
        "balance": m["balance"],
        "label_rule": m["label_rule_text"],
        "split_date": m["split"]["date"],
        "scaler_mean": m["scaler"]["mean"],
        "scaler_scale": m["scaler"]["scale"],
        "source_files": len(m["source"]["train_files"]) + len(m["source"]["test_files"]),
        "seed": m["seed"],
    }


def _describe_raw(folder: Path) -> dict[str, Any]:
    rule = LabelRule()
    files = list_source_files(folder, (*CHANNELS, "masks", rule.variable))
    counts = {"train": 0, "test": 0, "train_positives": 0, "test_positives": 0}
    for source in files:
        part = "train" if source.run_date < DEFAULT_SPLIT_DATE else "test"
        values = read_variables(source, (rule.variable, "masks"))
        counts[part] += source.storms
        counts[f"{part}_positives"] += int(rule.apply(values[rule.variable], values["masks"]).sum())
    return {
        "kind": "raw",
        "path": str(folder),
        "files": len(files),
        "storms": counts["train"] + counts["test"],
        "first_run_date": files[0].run_date.isoformat(),
        "last_run_date": files[-1].run_date.isoformat(),
        **counts,
        "channels": list(CHANNELS),
        "multipliers": [],
        "label_rule": rule.describe(),
        "split_date": DEFAULT_SPLIT_DATE.isoformat(),
    }


def describe(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    return _describe_prepared(folder) if is_prepared(folder) else _describe_raw(folder)


def format_text(info: dict[str, Any]) -> str:
    def pct(pos: int, total: int) -> str:
        return f"{100 * pos / total:.1f}%" if total else "-"

    lines = [f"{info['path']}: {info['kind']} storm-patch data"]
    if info["kind"] == "raw":
        lines.append(f"  files      {info['files']} ({info['first_run_date']} … {info['last_run_date']})")
    lines += [
        f"  train      {info['train']} storms, {info['train_positives']} tornadic "
        f"({pct(info['train_positives'], info['train'])})",
        f"  test       {info['test']} storms, {info['test_positives']} tornadic "
        f"({pct(info['test_positives'], info['test'])})",
        f"  split      run date < {info['split_date']} is training",
        f"  label      {info['label_rule']}",
        f"  channels   {', '.join(info['channels'])}",
    ]
    if info["kind"] == "prepared":
        for k, entry in info["train_sets"].items():
            lines.append(f"  k={k:<8} {entry['size']} training samples ({entry['positives']} tornadic)")
        lines.append(f"  balance    {info['balance']}, seed {info['seed']}")
    return "\n".join(lines)
