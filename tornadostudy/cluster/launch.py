"""``tornadostudy run``: create (or reuse) a study, run N local workers with a live progress line,
then print the report. The embedded default: SQLite storage and MLflow in the current folder.

``run`` owns its workers: they run in a process group of their own, so a Ctrl-C or a ``kill`` reaches ``run``
alone, which passes one SIGTERM to every worker: each trial stops at its next batch with a checkpoint, and
the next ``run`` resumes it from that epoch. On Linux a worker also gets SIGTERM if ``run`` dies (even by
SIGKILL), so no worker outlives it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

__all__ = ["LocalRunOptions", "run_local"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalRunOptions:
    spec_path: str
    storage_url: str
    tracking_uri: str
    workers: int = 1
    poll_s: float = 2.0
    quiet: bool = False
    max_trials: int | None = None  # per worker


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _own_group_and_die_with_parent() -> None:  # runs in the child, before the worker starts
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class _StopRequested(Exception):
    """SIGTERM or SIGINT reached ``run``."""


def _stop_workers(procs: list[subprocess.Popen], why: str, out) -> None:
    """One SIGTERM to each worker's process group, then wait (up to 2 min) while they checkpoint; a second
    Ctrl-C or SIGTERM kills them at once."""
    forced: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: forced.append(signum))
    print(
        f"\n{why}: asking {len(procs)} worker(s) to stop; their trials keep a checkpoint "
        "(Ctrl-C again to kill them at once) ...",
        file=out,
        flush=True,
    )
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while any(p.poll() is None for p in procs) and not forced and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def run_local(opts: LocalRunOptions, out=sys.stdout) -> dict:
    from tornadostudy.spec import load_spec
    from tornadostudy.study.create import create_study
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.recovery import reap_lost_workers
    from tornadostudy.study.status import progress_bar, study_status
    from tornadostudy.urls import mask_url

    spec = load_spec(opts.spec_path)
    created = create_study(spec, opts.storage_url, opts.tracking_uri, exists_ok=True)
    print(
        f"study {created.name}: {created.n_cells} cells ({'created' if created.created else 'resumed'}) "
        f"in {mask_url(opts.storage_url)}; MLflow {mask_url(opts.tracking_uri)}; data {created.data_folder}",
        file=out,
        flush=True,
    )
    handle = StudyHandle.open(spec.name, opts.storage_url)
    reap_lost_workers(handle)  # a worker killed in an earlier run leaves its cell running: it waits again now
    before = study_status(handle)
    if before["waiting"] == 0 and before["running"] == 0:
        print(
            f"nothing to run: {before['complete']} cells complete, {before['failed']} failed"
            + (f" (put them back with 'tornadostudy retry {spec.name} --failed')" if before["failed"] else ""),
            file=out,
        )
        return _finish(handle, spec, [], out)

    env = {
        **os.environ,
        # Secrets travel in the environment, never on a command line that `ps` shows.
        "TORNADOSTUDY_STORAGE": opts.storage_url,
        "MLFLOW_TRACKING_URI": opts.tracking_uri,
        "TF_NUM_INTRAOP_THREADS": str(_threads_per_worker(opts.workers)),
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
    }
    command = [sys.executable, "-m", "tornadostudy", "worker", spec.name]
    if opts.max_trials is not None:
        command += ["--max-trials", str(opts.max_trials)]

    def stop(signum, _frame):
        raise _StopRequested(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[subprocess.Popen] = []
    tty = out.isatty()
    last_line = None
    try:
        for _ in range(opts.workers):
            procs.append(subprocess.Popen(command, env=env, preexec_fn=_own_group_and_die_with_parent))
        while any(p.poll() is None for p in procs):
            time.sleep(opts.poll_s)
            reap_lost_workers(handle)
            if not opts.quiet:
                status = study_status(handle)
                eta = "-" if status["eta_s"] is None else f"{status['eta_s']:.0f}s"
                line = (
                    f"{progress_bar(status['complete'], status['total_cells'])} running {status['running']} "
                    f"failed {status['failed']} eta {eta}"
                )
                if tty:
                    print("\r" + line, end="", file=out, flush=True)
                elif line != last_line:
                    print(line, file=out, flush=True)
                last_line = line
    except _StopRequested as exc:
        _stop_workers(procs, str(exc), out)
        status = study_status(handle)
        print(
            f"stopped: {status['complete']} of {status['total_cells']} cells complete; run the same command "
            "again to go on (interrupted trials resume from their checkpoints)",
            file=out,
        )
        status["stopped_by"] = str(exc)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if tty and not opts.quiet:
        print(file=out)
    return _finish(handle, spec, procs, out)


def _finish(handle, spec, procs: list[subprocess.Popen], out) -> dict:
    from tornadostudy.report import ReportOptions, build_report
    from tornadostudy.study.status import format_status, study_status
    from tornadostudy.study.trials import completed_trials, report_params, report_skill

    status = study_status(handle)
    print(format_status(status), file=out)
    tables = ReportOptions(
        fmt="md",
        skill=report_skill(handle),
        plots=False,
        objectives=tuple((o.metric, o.direction) for o in spec.objectives),
        sampler=spec.sampler,
    )
    print(build_report(spec.name, completed_trials(handle), report_params(handle), tables).text, file=out)
    status["worker_exit_codes"] = [p.returncode for p in procs]
    return status
