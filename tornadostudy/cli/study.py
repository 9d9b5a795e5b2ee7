"""``tornadostudy create|worker|run|submit|plan|tracking``: the commands that make and run studies."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from tornadostudy.cli.args import STORAGE_HELP, TRACKING_HELP, int_list, positive_int, storage_url
from tornadostudy.errors import UserInputError

__all__ = ["add_study_commands"]

PROG = "tornadostudy"


def _cmd_create(args: argparse.Namespace) -> int:
    from tornadostudy.spec import load_spec
    from tornadostudy.study.create import create_study
    from tornadostudy.tracking import resolve_tracking_uri
    from tornadostudy.urls import mask_url

    spec = load_spec(args.spec)
    storage, tracking = storage_url(args), resolve_tracking_uri(args.tracking_uri)
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

    if getattr(args, "debug", False):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # --debug: TensorFlow's own messages too
    gpus, ids = detect_gpus(args.gpus)
    opts = WorkerOptions(args.study, storage_url(args), args.tracking_uri, gpus, tuple(ids), args.max_trials)
    from tornadostudy.study.worker import WorkerStopped

    try:
        summary = run_worker(opts)
    except WorkerStopped as exc:
        print(f"{PROG}: worker stopped: {exc}", file=sys.stderr)
        return 143
    if summary.note:
        print(f"worker {summary.worker}: {summary.note}")
    else:
        print(f"worker {summary.worker}: {len(summary.completed)} trials complete, {len(summary.failed)} failed")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tornadostudy.cluster.launch import LocalRunOptions, run_local
    from tornadostudy.tracking import resolve_tracking_uri

    opts = LocalRunOptions(
        str(args.spec),
        storage_url(args),
        resolve_tracking_uri(args.tracking_uri),
        args.workers,
        max_trials=args.max_trials,
    )
    status = run_local(opts)
    if status.get("stopped_by"):
        return 130 if status["stopped_by"] == "SIGINT" else 143
    if args.max_trials is not None:
        return 0  # a capped run leaves cells for the next one
    if status["complete"] < status["total_cells"]:
        print(
            f"{PROG}: {status['total_cells'] - status['complete']} cells not complete "
            f"({status['failed']} failed); see 'tornadostudy status {status['study']}'",
            file=sys.stderr,
        )
        return 1
    return 0


def _split_extra(text: str | None) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise UserInputError(f'--extra {text!r}: {exc}: quote sbatch options as in a shell, e.g. "--mem=16G"') from None


def _cmd_submit(args: argparse.Namespace) -> int:
    from tornadostudy.cluster.submit import (
        SubmitOptions,
        plan_jobs,
        reachability_warnings,
        submit_study,
        tracking_uri_for,
    )
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.urls import mask_url

    opts = SubmitOptions(
        gpus=args.gpus,
        array=args.array,
        partition=args.partition,
        time=args.time,
        account=args.account,
        extra=tuple(_split_extra(args.extra)),
        log_dir=args.log_dir,
        tracking_uri=args.tracking_uri,
        cpus_per_task=args.cpus_per_task,
        workers_per_task=args.workers_per_task,
    )
    storage = storage_url(args)
    handle = StudyHandle.open(args.study, storage)
    for warning in reachability_warnings(storage, tracking_uri_for(handle, opts)):
        print(f"{PROG}: warning: {mask_url(warning)}", file=sys.stderr)
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


def _cmd_tracking_sync(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tornadostudy.study.recovery import stale_after_s
    from tornadostudy.tracking import Tracker, close_abandoned_runs, resolve_tracking_uri
    from tornadostudy.tracking.spool import Spool, default_spool_root

    root = Path(args.spool) if args.spool else default_spool_root()
    if root.exists() and not root.is_dir():
        raise UserInputError(f"--spool {root} is a file, not a spool folder: give the folder workers spool to")
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

    storage_help, tracking_help = STORAGE_HELP, TRACKING_HELP

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
    run.add_argument(
        "--max-trials", type=positive_int, default=None, help="each worker stops after this many trials (a trial run)"
    )
    run.set_defaults(handler=_cmd_run)

    submit = sub.add_parser("submit", parents=[common], help="submit SLURM array jobs of workers, one per GPU count")
    submit.add_argument("study", help="study name")
    submit.add_argument("--storage", help=storage_help)
    submit.add_argument("--tracking-uri", help=tracking_help)
    submit.add_argument(
        "--gpus", type=int_list(0, "1,2,3,4"), default=(0, 1, 2, 3, 4), help="GPU counts to submit, e.g. 1,2,3,4"
    )
    submit.add_argument("--array", type=positive_int, required=True, help="array tasks (workers) per GPU count")
    submit.add_argument("--partition", help="SLURM partition for the tasks (default: the cluster's default)")
    submit.add_argument("--time", help="time limit per task, e.g. 2:00:00")
    submit.add_argument("--account", help="SLURM account to charge (default: yours)")
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
