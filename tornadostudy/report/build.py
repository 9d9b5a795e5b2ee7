"""Assemble a study's report: tables, figures, notes; write it to a folder and log it to MLflow."""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornadostudy.errors import TrackingError, UserInputError
from tornadostudy.report.formats import FORMATS, render
from tornadostudy.report.plots import Figures, make_figures
from tornadostudy.report.tables import (
    LOWER_IS_BETTER,
    TIME_TO_TARGET,
    Block,
    add_time_to_target,
    augmentation_ratio_blocks,
    default_target,
    fastest_reaching,
    paper_blocks,
    pivot_blocks,
)

__all__ = ["Pivot", "Report", "ReportOptions", "build_report", "log_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pivot:
    rows: str
    cols: str
    value: str
    by: tuple[str, ...] = ()
    agg: str = "mean"


@dataclass(frozen=True)
class ReportOptions:
    fmt: str = "md"
    out: Path | None = None  # write report.<fmt> and figures/ here; None: text only
    metrics: tuple[str, ...] | None = None  # None: the paper's choice per layout
    skill: str = "test_accuracy"
    target: float | None = None  # None: within 1 % of the best trial
    plots: bool = True
    pivot: Pivot | None = None
    paper: bool = False  # the paper's value beside each cell of the paper layouts

    @property
    def draws_figures(self) -> bool:
        """Figures go into the folder or the HTML page; a printed text report has none."""
        return self.plots and self.pivot is None and (self.out is not None or self.fmt == "html")


@dataclass
class Report:
    text: str
    blocks: list[Block]
    notes: list[str]
    figures: Figures = field(default_factory=Figures)
    files: list[Path] = field(default_factory=list)


def _skill_notes(best, params, skill: str, target: float, given: bool) -> list[str]:
    sign = "≤" if skill in LOWER_IS_BETTER else "≥"
    how = "given" if given else "within 1 % of the best trial"
    notes = [
        f"Target skill: {skill} {sign} {target:.4g} ({how}); {TIME_TO_TARGET} is a trial's wall time "
        "if it reached the target, else 'not reached'."
    ]
    if best is None:
        notes.append(f"No configuration reached {skill} {sign} {target:.4g} on the mean of its repeats.")
    else:
        config = ", ".join(f"{p}={best[p]}" for p in params if p in best)
        notes.append(
            f"Fastest configuration reaching the target: {config} — {best['wall_time_s']:.4g} s, "
            f"{skill} {best[skill]:.4g} (mean of {int(best['repeats'])} repeat(s))."
        )
    return notes


def build_report(
    study: str,
    records: list[dict[str, Any]],
    params: list[str],
    opts: ReportOptions,
    read_curve: Callable[[str, str], list[tuple[int, float]]] | None = None,
) -> Report:
    """Tables (and, with a folder or HTML, figures) for ``records``: one dict per completed trial."""
    if opts.fmt not in FORMATS:
        raise UserInputError(f"--format {opts.fmt!r} is not valid: use one of {', '.join(FORMATS)}")
    heading = f"Report: {study}"
    if opts.pivot is not None:
        p = opts.pivot
        blocks = pivot_blocks(records, p.rows, p.cols, p.value, p.by, p.agg)
        return Report(render(blocks, opts.fmt, heading), blocks, [])
    notes = [f"{len(records)} completed trial(s)."]
    target, fastest = math.nan, None
    if records:
        if opts.target is not None and not math.isfinite(opts.target):
            raise UserInputError(f"report: --target {opts.target} is not a finite number")
        if not any(r.get(opts.skill) is not None for r in records):
            have = sorted({k for r in records for k in r if k.startswith("test_")})
            raise UserInputError(
                f"report: --skill {opts.skill!r} is not a metric of this study's trials; use one of {', '.join(have)}"
            )
        target = opts.target if opts.target is not None else default_target(records, opts.skill)
        records = add_time_to_target(records, opts.skill, target)
        fastest = fastest_reaching(records, params, opts.skill, target)
        notes += _skill_notes(fastest, params, opts.skill, target, opts.target is not None)
    blocks = paper_blocks(records, opts.metrics) + augmentation_ratio_blocks(records, params)
    if opts.paper and records:
        from tornadostudy.report.beside_paper import LAYOUT_TABLES, beside_paper, setup_notes

        blocks = [beside_paper(b, b.layout) if b.layout in LAYOUT_TABLES else b for b in blocks]
        notes += setup_notes(records)
    report = Report("", blocks, notes)
    with tempfile.TemporaryDirectory(prefix="tornadostudy-report-") as scratch:
        if opts.draws_figures and records:
            folder = (opts.out / "figures") if opts.out else Path(scratch)
            report.figures = make_figures(
                records,
                params,
                folder,
                skill=opts.skill,
                target=target,
                read_curve=read_curve,
                fastest=fastest,
                paper=opts.paper,
            )
            notes += [f"Figure not drawn — {why}." for why in report.figures.skipped]
        empty = (
            "(no completed trials yet)"
            if not records
            else (
                "No paper table layout fits this study: none of batch_size, data_multiplier, epochs, num_gpus varies. "
                "Use a pivot: --rows PARAM --cols PARAM --value METRIC."
            )
        )
        report.text = render(blocks, opts.fmt, heading, plots=report.figures.made, notes=notes, empty=empty)
    if opts.out is not None:
        opts.out.mkdir(parents=True, exist_ok=True)
        path = opts.out / f"report.{opts.fmt}"
        path.write_text(report.text)
        report.files = [path, *(p for _, p in report.figures.made)]
    return report


def log_report(tracker, run_id: str | None, folder: Path) -> str:
    """Upload the report folder as artifacts ``report/`` of the study's parent run; a line saying what happened."""
    if not run_id:
        return "report not logged to MLflow: the study has no parent run"
    try:
        tracker.log_artifacts(run_id, str(folder), "report")
    except TrackingError as exc:
        log.warning("could not log the report to MLflow: %s", exc)
        return f"report not logged to MLflow ({str(exc)[:160]}); run the same command again to retry"
    return f"report logged to MLflow run {run_id} (artifacts: report/)"
