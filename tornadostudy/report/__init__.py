"""``tornadostudy report``: the paper's tables and figures, and any pivot, from a study's trials.

``tables`` aggregates (pandas, imported lazily), ``formats`` renders (Markdown, CSV, LaTeX, HTML),
``plots`` draws (matplotlib, imported lazily), ``build`` puts a report together and logs it to MLflow.
"""

from tornadostudy.report.build import Pivot, Report, ReportOptions, build_report, log_report
from tornadostudy.report.formats import FORMATS, render
from tornadostudy.report.plots import Figures, make_figures, pareto_front
from tornadostudy.report.tables import (
    PAPER_LAYOUTS,
    Block,
    Layout,
    add_time_to_target,
    default_target,
    fastest_reaching,
    paper_blocks,
    pivot_blocks,
)

__all__ = [
    "FORMATS",
    "PAPER_LAYOUTS",
    "Block",
    "Figures",
    "Layout",
    "Pivot",
    "Report",
    "ReportOptions",
    "add_time_to_target",
    "build_report",
    "default_target",
    "fastest_reaching",
    "log_report",
    "make_figures",
    "paper_blocks",
    "pareto_front",
    "pivot_blocks",
    "render",
]
