"""``tornadostudy status|retry|report|export``: the commands that read (and mend) a study."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from tornadostudy.cli.args import (
    STORAGE_HELP,
    check_writable_folder,
    int_list,
    name_list,
    storage_url,
)
from tornadostudy.errors import TrackingError, UserInputError

__all__ = ["add_result_commands"]

PROG = "tornadostudy"


def _cmd_status(args: argparse.Namespace) -> int:
    from tornadostudy.cluster.slurm import SlurmError
    from tornadostudy.cluster.submit import job_status
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.recovery import reap_lost_workers
    from tornadostudy.study.status import format_status, study_status

    handle = StudyHandle.open(args.study, storage_url(args))
    reap_lost_workers(handle)  # a lost worker's cell is found even when no worker asks for work
    status = study_status(handle)
    try:
        status["slurm_jobs"] = job_status(handle)
    except SlurmError as exc:  # the study is still readable without the scheduler
        status["slurm_jobs"], status["slurm_error"] = [], str(exc)
    print(json.dumps(status) if args.json else format_status(status))
    return 0


def _cmd_retry(args: argparse.Namespace) -> int:
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.mend import parse_where, retry_failed_cells

    handle = StudyHandle.open(args.study, storage_url(args))
    spec = handle.spec
    if args.where and spec.sampler != "grid":
        raise UserInputError(f"--where: study {spec.name} is a {spec.sampler} study; choose its cells with --cells")
    where = parse_where(args.where or [], sorted({*spec.grid, *spec.constants}))
    cells = set(args.cells) if args.cells is not None else None
    done = retry_failed_cells(handle, cells, where)
    if not done:
        print(f"nothing to retry: no failed cell of study {spec.name} matches")
        return 0
    shown = ", ".join(map(str, done[:20])) + (" ..." if len(done) > 20 else "")
    print(
        f"{len(done)} failed cell(s) of study {spec.name} put back to waiting with fresh attempts: {shown}; "
        "their failed trials and MLflow runs are kept. Start workers to run them (worker, run or submit)."
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tornadostudy.report import Pivot, ReportOptions, build_report, log_report
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.insights import param_importances
    from tornadostudy.study.trials import completed_trials, fill_run_ids, report_params, report_skill
    from tornadostudy.tracking import Tracker, resolve_tracking_uri

    pivot = [args.rows, args.cols, args.value]
    if any(pivot) and not all(pivot):
        raise UserInputError("a pivot needs --rows, --cols and --value together (and optionally --by, --agg)")
    if args.out:
        check_writable_folder(args.out, "--out")
    handle = StudyHandle.open(args.study, storage_url(args))
    params = report_params(handle)
    for option, names in (("--rows", [args.rows]), ("--cols", [args.cols]), ("--by", args.by or [])):
        for name in names:
            if name and name not in params:
                raise UserInputError(
                    f"{option} {name!r} is not a parameter of study {args.study}: use one of {', '.join(params)}"
                )
    opts = ReportOptions(
        fmt=args.format,
        out=Path(args.out) if args.out else None,
        metrics=tuple(args.metrics) if args.metrics else None,
        skill=args.skill or report_skill(handle),
        target=args.target,
        plots=not args.no_plots,
        pivot=Pivot(args.rows, args.cols, args.value, tuple(args.by or ()), args.agg) if all(pivot) else None,
        paper=args.paper,
        objectives=tuple((o.metric, o.direction) for o in handle.spec.objectives),
        sampler=handle.spec.sampler,
    )
    if opts.sampler != "grid" and opts.draws_figures:  # fANOVA only for the figure that shows it
        opts = dataclasses.replace(opts, importances=param_importances(handle))
    logs = opts.out is not None and opts.pivot is None and not args.no_log
    tracker = None
    if opts.draws_figures or logs:
        try:
            tracker = Tracker(resolve_tracking_uri(args.tracking_uri, handle.stored_tracking_uri))
        except TrackingError as exc:  # the tables do not need MLflow: report without curves and copy
            print(
                f"warning: {exc}; the report is written without per-epoch curves and not logged to MLflow",
                file=sys.stderr,
            )
    trials = completed_trials(handle)
    if tracker is not None:
        try:
            fill_run_ids(handle, trials, tracker)
        except TrackingError as exc:  # only some curves are missing: still the report
            print(f"warning: {exc}; trials whose run id is not recorded get no curves", file=sys.stderr)
    report = build_report(args.study, trials, params, opts, read_curve=tracker.curve if tracker else None)
    if opts.out is None:
        print(report.text, end="")
        return 0
    for path in report.files:
        print(f"wrote {path}")
    if logs and tracker is not None:
        print(log_report(tracker, handle.experiment_id, handle.parent_run_id, opts.out, report.files))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tornadostudy.study.export import write_trial_table
    from tornadostudy.study.handle import StudyHandle

    out = Path(args.out or f"{args.study}-trials")
    check_writable_folder(out, "--out")
    handle = StudyHandle.open(args.study, storage_url(args))
    for path in write_trial_table(handle, out):
        print(f"wrote {path}")
    return 0


def add_result_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    storage_help = STORAGE_HELP

    status = sub.add_parser("status", parents=[common], help="cells complete/running/failed/waiting, ETA")
    status.add_argument("study", help="study name")
    status.add_argument("--storage", help=storage_help)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_cmd_status)

    export = sub.add_parser("export", parents=[common], help="every trial as one table: CSV and Parquet")
    export.add_argument("study", help="study name")
    export.add_argument("--storage", help=storage_help)
    export.add_argument("--out", help="folder for trials.csv and trials.parquet (default ./STUDY-trials)")
    export.set_defaults(handler=_cmd_export)

    retry = sub.add_parser("retry", parents=[common], help="put failed cells back to waiting (history kept)")
    retry.add_argument("study", help="study name")
    retry.add_argument("--storage", help=storage_help)
    retry.add_argument(
        "--failed", action="store_true", help="every failed cell (the default when nothing else is said)"
    )
    retry.add_argument("--cells", type=int_list(0, "3,17,42"), help="only these failed cells, e.g. 3,17,42")
    retry.add_argument(
        "--where",
        action="append",
        metavar="NAME=VALUE",
        help="only failed cells with this parameter value (repeatable), e.g. --where batch_size=4096",
    )
    retry.set_defaults(handler=_cmd_retry)

    report = sub.add_parser("report", parents=[common], help="the paper's tables (or any pivot) from a study")
    report.add_argument("study", help="study name")
    report.add_argument("--storage", help=storage_help)
    report.add_argument(
        "--out",
        help="folder for report.<format> and figures/*.png, also logged to the study's "
        "MLflow run (default: print the tables)",
    )
    report.add_argument(
        "--format",
        choices=("md", "csv", "latex", "html"),
        default="md",
        help="html: one self-contained page with the figures embedded",
    )
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one the study was created with)")
    report.add_argument(
        "--metrics",
        type=name_list,
        help="show every paper layout for these metrics, e.g. "
        "test_auc,test_csi,time_to_target_s (default: wall time and test accuracy as in the paper)",
    )
    report.add_argument(
        "--skill",
        help="skill metric for the target and the Pareto front (default: the study's "
        "first test_ objective, else test_accuracy)",
    )
    report.add_argument("--target", type=float, help="target skill value (default: within 1%% of the best trial)")
    report.add_argument("--no-plots", action="store_true", help="tables only (no figures, no MLflow reads)")
    report.add_argument("--no-log", action="store_true", help="do not log the report to the study's MLflow run")
    report.add_argument(
        "--paper",
        action="store_true",
        help="set the paper's value beside each cell of the paper's table layouts, with ours ÷ paper, "
        "and list what differs in set-up",
    )
    report.add_argument("--rows", help="pivot: row parameter, e.g. batch_size")
    report.add_argument("--cols", help="pivot: column parameter, e.g. data_multiplier")
    report.add_argument("--value", help="pivot: metric, e.g. wall_time_s or test_auc")
    report.add_argument("--by", type=name_list, help="pivot: comma-separated parameters, one table per combination")
    report.add_argument("--agg", default="mean", help="pivot: mean (± std), median, min or max")
    report.set_defaults(handler=_cmd_report)
