"""``tornadostudy create|worker|run|submit|status|report|tracking``: the study commands."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from tornadostudy.cli.args import int_list, name_list, positive_int
from tornadostudy.errors import TrackingError, UserInputError

__all__ = ["add_study_commands"]

PROG = "tornadostudy"


def _storage(args: argparse.Namespace) -> str:
    """The study database URL (and, since every study command uses one: quiet library loggers)."""
    from tornadostudy.study.storage import resolve_storage_url

    if not (args.verbose or getattr(args, "debug", False)):
        from tornadostudy.study.logs import quiet_libraries

        quiet_libraries()

    return resolve_storage_url(args.storage)


def _cmd_create(args: argparse.Namespace) -> int:
    from tornadostudy.spec import load_spec
    from tornadostudy.study.create import create_study
    from tornadostudy.tracking import resolve_tracking_uri
    from tornadostudy.urls import mask_url

    spec = load_spec(args.spec)
    storage, tracking = _storage(args), resolve_tracking_uri(args.tracking_uri)
    result = create_study(spec, storage, tracking, exists_ok=args.exists_ok)
    verb = "created" if result.created else "exists (identical spec)"
    print(f"study {result.name} {verb}: {result.n_cells} {'cells' if spec.sampler == 'grid' else 'trials'}")
    print(f"  storage  {mask_url(storage)}")
    print(f"  mlflow   {mask_url(tracking)} (experiment {result.experiment_id})")
    print(f"  data     {result.data_folder}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from tornadostudy.study.gpus import detect_gpus
    from tornadostudy.study.worker import WorkerOptions, run_worker

    gpus, ids = detect_gpus(args.gpus)
    opts = WorkerOptions(args.study, _storage(args), args.tracking_uri, gpus, tuple(ids), args.max_trials)
    from tornadostudy.study.worker import WorkerStopped

    try:
        summary = run_worker(opts)
    except WorkerStopped as exc:
        print(f"{PROG}: worker stopped by {exc}; its trial was given back", file=sys.stderr)
        return 143
    print(f"worker {summary.worker}: {len(summary.completed)} trials complete, {len(summary.failed)} failed")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tornadostudy.cluster.launch import LocalRunOptions, run_local
    from tornadostudy.tracking import resolve_tracking_uri

    opts = LocalRunOptions(str(args.spec), _storage(args), resolve_tracking_uri(args.tracking_uri), args.workers)
    status = run_local(opts)
    if status["complete"] < status["total_cells"]:
        print(
            f"{PROG}: {status['total_cells'] - status['complete']} cells not complete "
            f"({status['failed']} failed); see 'tornadostudy status {status['study']}'",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from tornadostudy.cluster.slurm import SlurmError
    from tornadostudy.cluster.submit import job_status
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.recovery import reap_lost_workers
    from tornadostudy.study.status import format_status, study_status

    handle = StudyHandle.open(args.study, _storage(args))
    reap_lost_workers(handle)  # a lost worker's cell is found even when no worker asks for work
    status = study_status(handle)
    try:
        status["slurm_jobs"] = job_status(handle)
    except SlurmError as exc:  # the study is still readable without the scheduler
        status["slurm_jobs"], status["slurm_error"] = [], str(exc)
    print(json.dumps(status) if args.json else format_status(status))
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from tornadostudy.cluster.submit import SubmitOptions, plan_jobs, submit_study
    from tornadostudy.study.handle import StudyHandle

    opts = SubmitOptions(
        gpus=args.gpus,
        array=args.array,
        partition=args.partition,
        time=args.time,
        account=args.account,
        extra=tuple(shlex.split(args.extra or "")),
        log_dir=args.log_dir,
        tracking_uri=args.tracking_uri,
        cpus_per_task=args.cpus_per_task,
        workers_per_task=args.workers_per_task,
    )
    handle = StudyHandle.open(args.study, _storage(args))
    if args.dry_run:
        for job in plan_jobs(handle, opts):
            print(job.script)
        return 0
    for job in submit_study(handle, opts):
        print(f"submitted job {job.job_id}: {args.array} task(s) × {job.gpus} GPU(s) for study {args.study}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from tornadostudy.spec import load_spec
    from tornadostudy.study.plan import plan_study

    print(plan_study(load_spec(args.spec), args.array, args.train_samples).text())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tornadostudy.report import Pivot, ReportOptions, build_report, log_report
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.trials import completed_trials, fill_run_ids, report_params, report_skill
    from tornadostudy.tracking import Tracker, resolve_tracking_uri

    pivot = [args.rows, args.cols, args.value]
    if any(pivot) and not all(pivot):
        raise UserInputError("a pivot needs --rows, --cols and --value together (and optionally --by, --agg)")
    handle = StudyHandle.open(args.study, _storage(args))
    opts = ReportOptions(
        fmt=args.format,
        out=Path(args.out) if args.out else None,
        metrics=tuple(args.metrics) if args.metrics else None,
        skill=args.skill or report_skill(handle),
        target=args.target,
        plots=not args.no_plots,
        pivot=Pivot(args.rows, args.cols, args.value, tuple(args.by or ()), args.agg) if all(pivot) else None,
        paper=args.paper,
    )
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
    report = build_report(
        args.study, trials, report_params(handle), opts, read_curve=tracker.curve if tracker else None
    )
    if opts.out is None:
        print(report.text, end="")
        return 0
    for path in report.files:
        print(f"wrote {path}")
    if logs and tracker is not None:
        print(log_report(tracker, handle.parent_run_id, opts.out))
    return 0


def _cmd_tracking_sync(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tornadostudy.study.recovery import stale_after_s
    from tornadostudy.tracking import Tracker, close_abandoned_runs, resolve_tracking_uri
    from tornadostudy.tracking.spool import Spool, default_spool_root

    root = Path(args.spool) if args.spool else default_spool_root()
    # Only the spools of workers that are gone: a live worker delivers its own.
    adopted = Spool.adopt_orphans(root, None, stale_after_s())
    live = sum(1 for folder in Spool.folders(root) if any(folder.glob("*.jsonl"))) - len(adopted)
    delivered = waiting = 0
    for spool in adopted:
        close_abandoned_runs(spool)
        runs = spool.runs()
        tracker = Tracker(resolve_tracking_uri(args.tracking_uri, spool.uri), spool=spool)
        left = tracker.close(wait_s=60)  # removes the spool folder once it is empty
        delivered += len(runs) - len(left)
        waiting += len(left)
    print(
        f"tracking sync: {delivered} run(s) delivered, {waiting} still waiting, "
        f"{live} live worker(s) delivering their own (spool {root})"
    )
    return 0 if waiting == 0 else 1


def add_study_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from pathlib import Path

    storage_help = "study database URL (default: $TORNADOSTUDY_STORAGE, else sqlite:///tornadostudy.db)"
    tracking_help = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the study's, else sqlite:///mlflow.db)"

    create = sub.add_parser("create", parents=[common], help="create a study from a spec (once, before workers)")
    create.add_argument("spec", type=Path, help="a studies/*.toml file")
    create.add_argument("--storage", help=storage_help)
    create.add_argument("--tracking-uri", help=tracking_help)
    create.add_argument("--exists-ok", action="store_true", help="reuse an existing study with an identical spec")
    create.set_defaults(handler=_cmd_create)

    worker = sub.add_parser("worker", parents=[common], help="claim, train and report trials until none is left")
    worker.add_argument("study", help="study name")
    worker.add_argument("--storage", help=storage_help)
    worker.add_argument("--tracking-uri", help=tracking_help)
    worker.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="GPUs this worker uses (default: from CUDA_VISIBLE_DEVICES / SLURM, else 0)",
    )
    worker.add_argument("--max-trials", type=positive_int, default=None, help="stop after this many trials")
    worker.set_defaults(handler=_cmd_worker)

    run = sub.add_parser("run", parents=[common], help="create + local workers + progress + report")
    run.add_argument("spec", type=Path, help="a studies/*.toml file")
    run.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
    run.add_argument("--storage", help=storage_help)
    run.add_argument("--tracking-uri", help=tracking_help)
    run.set_defaults(handler=_cmd_run)

    submit = sub.add_parser("submit", parents=[common], help="submit SLURM array jobs of workers, one per GPU count")
    submit.add_argument("study", help="study name")
    submit.add_argument("--storage", help=storage_help)
    submit.add_argument("--tracking-uri", help=tracking_help)
    submit.add_argument(
        "--gpus", type=int_list(0, "1,2,3,4"), default=(0, 1, 2, 3, 4), help="GPU counts to submit, e.g. 1,2,3,4"
    )
    submit.add_argument("--array", type=positive_int, required=True, help="array tasks (workers) per GPU count")
    submit.add_argument("--partition")
    submit.add_argument("--time", help="time limit per task, e.g. 2:00:00")
    submit.add_argument("--account")
    submit.add_argument(
        "--cpus-per-task",
        type=positive_int,
        help="CPUs per array task (default: 4 for a GPU task; a whole node, --exclusive, for a CPU "
        "task, as the paper's CPU runs)",
    )
    submit.add_argument(
        "--workers-per-task",
        type=positive_int,
        default=1,
        help="worker processes per task sharing its GPUs, for trials too small to fill one (default 1)",
    )
    submit.add_argument("--extra", help='more sbatch options, e.g. "--mem=16G --qos=short"')
    submit.add_argument("--log-dir", default="slurm-logs", help="folder for the tasks' output (default ./slurm-logs)")
    submit.add_argument("--dry-run", action="store_true", help="print the scripts instead of submitting")
    submit.set_defaults(handler=_cmd_submit)

    tracking = sub.add_parser("tracking", parents=[common], help="MLflow helpers")
    tracking_sub = tracking.add_subparsers(dest="tracking_command", required=True, metavar="{sync}")
    sync_help = "deliver the spooled MLflow writes of workers that are gone"
    sync = tracking_sub.add_parser("sync", parents=[common], help=sync_help)
    sync.add_argument("--spool", help="spool folder (default $TORNADOSTUDY_SPOOL_DIR, else ./.tornadostudy/spool)")
    sync.add_argument("--tracking-uri", help=tracking_help)
    sync.set_defaults(handler=_cmd_tracking_sync)

    status = sub.add_parser("status", parents=[common], help="cells complete/running/failed/waiting, ETA")
    status.add_argument("study", help="study name")
    status.add_argument("--storage", help=storage_help)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_cmd_status)

    plan_help = "estimated node-hours per GPU count and makespan of a spec, before submitting"
    plan = sub.add_parser("plan", parents=[common], help=plan_help)
    plan.add_argument("spec", help="study spec file (studies/*.toml)")
    plan.add_argument(
        "--array", type=positive_int, default=1, help="array tasks per GPU count, as for submit (default 1)"
    )
    plan.add_argument(
        "--train-samples",
        type=positive_int,
        help="size of the 1x training set (default: trainer.train_samples, else the NCAR data's for "
        "the spec's balance; the paper's: 138963)",
    )
    plan.set_defaults(handler=_cmd_plan)

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
