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
from tornadostudy.report.search import best_trials_block, search_figures
from tornadostudy.report.summary import summary
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
    objectives: tuple[tuple[str, str], ...] = ()  # the study's (metric, direction), first the main one
    sampler: str = "grid"  # tpe/random: best trials, history, importances, slices instead of grid tables
    importances: dict[str, float] | None = None  # of the first objective (study side: optuna.importance)

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
    head, summary_notes = summary(records, params, opts.objectives)
    notes = summary_notes + notes
    searched = opts.sampler != "grid"
    if searched:
        blocks = head + best_trials_block(records, params, opts.objectives)
    else:
        grid = paper_blocks(records, opts.metrics, opts.skill, params, opts.paper)
        if records and not grid:
            notes.append(
                "No paper table layout fits this study: none of batch_size, data_multiplier, epochs, num_gpus "
                "varies. Use a pivot: --rows PARAM --cols PARAM --value METRIC."
            )
        blocks = head + grid + augmentation_ratio_blocks(records, params)
    if opts.paper and records and not searched:
        from tornadostudy.report.beside_paper import LAYOUT_TABLES, beside_paper, setup_notes

        blocks = [beside_paper(b, b.layout) if b.layout in LAYOUT_TABLES else b for b in blocks]
        notes += setup_notes(records)
    report = Report("", blocks, notes)
    with tempfile.TemporaryDirectory(prefix="tornadostudy-report-") as scratch:
        if opts.draws_figures and records:
            folder = (opts.out / "figures") if opts.out else Path(scratch)
            for stale in folder.glob("*.png") if folder.is_dir() else []:
                stale.unlink()  # figures of an earlier report that this one may not draw again
            report.figures = make_figures(
                records,
                params,
                folder,
                skill=opts.skill,
                target=target,
                read_curve=read_curve,
                fastest=fastest,
                paper=opts.paper,
                grid=not searched,
            )
            if searched:
                search_figures(records, params, opts.objectives, opts.importances, folder, report.figures)
            notes += [f"Figure not drawn — {why}." for why in report.figures.skipped]
        empty = "(no completed trials yet)"
        report.text = render(blocks, opts.fmt, heading, plots=report.figures.made, notes=notes, empty=empty)
    if opts.out is not None:
        opts.out.mkdir(parents=True, exist_ok=True)
        path = opts.out / f"report.{opts.fmt}"
        path.write_text(report.text)
        report.files = [path, *(p for _, p in report.figures.made)]
    return report


def log_report(tracker, experiment_id: str | None, parent_run_id: str | None, folder: Path, files: list[Path]) -> str:
    """Log the report's files as the artifacts ``report/`` of the study's report run (a child of the study run),
    replacing an earlier report's: the experiment holds one set. A line saying what happened."""
    if not experiment_id or not parent_run_id:
        return "report not logged to MLflow: the study has no parent run"
    try:
        run_id = tracker.replace_report_run(experiment_id, parent_run_id, folder, files)
    except TrackingError as exc:
        log.warning("could not log the report to MLflow: %s", exc)
        return f"report not logged to MLflow ({str(exc)[:160]}); run the same command again to retry"
    return f"report logged to MLflow run {run_id} ('report', under the study's run; artifacts: report/)"
