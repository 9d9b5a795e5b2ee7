"""``tornadostudy run``: create (or reuse) a study, run N local workers with a live progress line,
then print the report. The embedded default: SQLite storage and MLflow in the current folder."""

from __future__ import annotations

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


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def run_local(opts: LocalRunOptions, out=sys.stdout) -> dict:
    from tornadostudy.report import ReportOptions, build_report
    from tornadostudy.spec import load_spec
    from tornadostudy.study.create import create_study
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.recovery import reap_lost_workers
    from tornadostudy.study.status import format_status, progress_bar, study_status
    from tornadostudy.study.trials import completed_trials, report_params, report_skill
    from tornadostudy.urls import mask_url

    spec = load_spec(opts.spec_path)
    created = create_study(spec, opts.storage_url, opts.tracking_uri, exists_ok=True)
    print(
        f"study {created.name}: {created.n_cells} cells ({'created' if created.created else 'resumed'}) "
        f"in {mask_url(opts.storage_url)}; MLflow {mask_url(opts.tracking_uri)}; data {created.data_folder}",
        file=out,
        flush=True,
    )

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
    procs = [subprocess.Popen(command, env=env) for _ in range(opts.workers)]
    handle = StudyHandle.open(spec.name, opts.storage_url)
    tty = out.isatty()
    last_line = None
    try:
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
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        raise
    if tty and not opts.quiet:
        print(file=out)
    status = study_status(handle)
    print(format_status(status), file=out)
    tables = ReportOptions(fmt="md", skill=report_skill(handle), plots=False)
    print(build_report(spec.name, completed_trials(handle), report_params(handle), tables).text, file=out)
    status["worker_exit_codes"] = [p.returncode for p in procs]
    return status
