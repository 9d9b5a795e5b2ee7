"""Orchestration: W workers on PostgreSQL, tornadostudy vs plain Optuna GridSampler + per-trial MLflow runs.

Both sides run the same grid with the same per-trial sleep (the ``simulate`` trainer's modelled time ×
the time scale), logging each epoch to MLflow: by default to an ``mlflow server`` on PostgreSQL (one
fresh server per side, started by tracking/mlflow-server.sh, as on a cluster), with ``--tracking
database`` straight in PostgreSQL. Reported per side: duplicates
(cells run more than once), holes (cells never completed), overhead per trial (each worker's time from
its first trial's start to its last trial's end, minus what it slept, over its trials: everything the
machinery does, between trials too; "in trial" counts only inside each trial's own start–end, "later
trials" the same for every trial but each worker's first, which on a small machine runs while the other
workers' interpreters start), workers that failed (exited with an error: the rest did their work),
makespan ÷ lower bound and ÷ the ideal schedule (longest cell first to the worker free soonest, no
overhead, the same start times: the bound is out of any schedule's reach when each worker runs only a
few cells), and the workers' CPU time per trial (interpreter start-up included: on a small
machine many workers queue for the CPU, so this is what the overhead is made of). The bound is that of
the workers as they became ready (each worker's first claim): the least M with Σ max(0, M − ready_i) ≥
total sleep and M ≥ first ready + longest sleep — on a cluster workers start in parallel, on one small
machine 64 interpreters start one after another, and that start-up is not the scheduler's doing (its
spread is printed). With a server, its CPU per trial is printed too (work moved off the workers shows).

The load is a trial rate, not a trial length: by default each W gets the time scale at which its workers
finish 3.2 trials per second between them — 64 workers with 20 s trials, as the paper's shortest cells on
a cluster — so every W puts the same load on the database and only the number of workers changes.
``--time-scale`` fixes the scale for all W instead.

    python benchmarks/bench_orchestration.py                      # W = 8, 32, 64; 216 cells
    python benchmarks/bench_orchestration.py --quick              # W = 4; 24 cells
    python benchmarks/bench_orchestration.py --tracking database  # workers log straight to PostgreSQL
    python benchmarks/bench_orchestration.py --delay-ms 0.5       # the study database a network away

``--delay-ms D``: both sides reach the study database through a TCP relay that holds every chunk D ms each
way, as on a cluster whose database runs on another node (on one machine a round trip costs ~0.05 ms, which
hides what a trial's round trips and a lock held across one cost there); the measured round trip is printed.

Needs PostgreSQL (``TORNADOSTUDY_TEST_POSTGRES``, default postgresql://postgres@127.0.0.1:5432/postgres).
Prints ``ratio=`` (baseline ÷ tornadostudy overhead per trial at the largest W)."""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import queue
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("TORNADOSTUDY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

BASELINE_WORKER = r"""
import sys, time, optuna, mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from optuna.storages import RDBStorage
from sqlalchemy.pool import NullPool
from tornadostudy.spec import load_spec
from tornadostudy.train.params import TrialParams
from tornadostudy.train.simulate import modelled_seconds
spec_path, storage_url, tracking, experiment_id, n_train, scale = sys.argv[1:7]
spec = load_spec(spec_path)
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = RDBStorage(storage_url, engine_kwargs={"poolclass": NullPool})
study = optuna.load_study(study_name=spec.name, storage=storage, sampler=optuna.samplers.GridSampler(spec.grid, seed=0))
client = MlflowClient(tracking)

done = []  # (start, end, seconds slept) per trial, printed at the end: no extra database write

def objective(trial):
    start = time.time()
    params = {**spec.constants, **{k: trial.suggest_categorical(k, v) for k, v in spec.grid.items()}}
    p = TrialParams.from_mapping(params)
    run = client.create_run(experiment_id, run_name=f"trial {trial.number}")
    for k, v in params.items():
        client.log_param(run.info.run_id, k, v)
    parts = modelled_seconds(p, int(n_train))
    # What the simulate trainer sleeps: a compiling first epoch, then steady ones.
    first, steady = parts["first_epoch_s"], parts["steady_epochs_s"] / max(p.epochs - 1, 1)
    slept = 0.0
    for epoch in range(1, p.epochs + 1):
        slept += float(scale) * (first if epoch == 1 else steady)
        time.sleep(float(scale) * (first if epoch == 1 else steady))
        client.log_metric(run.info.run_id, "loss", 0.1, step=epoch)
    client.set_terminated(run.info.run_id)
    done.append((start, time.time(), slept))
    return 0.5

study.optimize(objective)
for start, end, slept in done:
    print(f"trial {start!r} {end!r} {slept!r}")
"""


def _admin():
    import psycopg2

    conn = psycopg2.connect(ADMIN, connect_timeout=5)
    conn.autocommit = True
    return conn


def _admin_sql(*statements: str) -> None:
    conn = _admin()  # not `with conn`: psycopg2 would wrap it in a transaction, which CREATE DATABASE refuses
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def _database(made: list[str], delay_ms: float = 0.0) -> str:
    """A new database's URL; with ``delay_ms``, through a :class:`_Relay` (a server a network away)."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"')
    made.append(name)
    url = f"postgresql+psycopg2://{ADMIN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    if not delay_ms:
        return url
    from sqlalchemy.engine import make_url

    server = make_url(url)
    relay = _Relay((server.host or "127.0.0.1", server.port or 5432), delay_ms / 1000)
    return server.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)


class _Tracking:
    """Where one side logs: a fresh ``mlflow server`` on its own PostgreSQL database, or the database itself."""

    def __init__(self, folder: Path, name: str, kind: str, made: list[str]) -> None:
        backend = _database(made)
        self.server_env = None
        if kind == "database":
            self.uri = backend
            return
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server_env = {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": backend,
            "MLFLOW_HOST": "127.0.0.1",
            "MLFLOW_PORT": str(port),
            "MLFLOW_ARTIFACTS_DIR": str(folder / f"{name}-artifacts"),
            "MLFLOW_STATE_DIR": str(folder / f"{name}-server"),
            "MLFLOW_PYTHON": sys.executable,
        }
        self._script("start")
        self.uri = f"http://127.0.0.1:{port}"
        self.pid = int((folder / f"{name}-server" / f"mlflow-{port}.pid").read_text())
        # The server is healthy once one of its workers answers, while the others still import MLflow:
        # wait until it idles, so that its start-up is not counted against the trials.
        last, deadline = self.cpu_s(), time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.cpu_s()
            if now - last < 0.05:
                break
            last = now

    def _script(self, action: str) -> None:
        subprocess.run(
            [str(ROOT / "tracking" / "mlflow-server.sh"), action],
            env=self.server_env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def cpu_s(self) -> float:
        """CPU seconds of the server and its worker processes so far (0 without a server)."""
        if self.server_env is None:
            return 0.0
        tree, stats = {self.pid}, {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # not a process, or gone meanwhile
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))  # ppid; u+s+cu+cs time
        for _ in range(3):  # the script's server, its workers, theirs
            tree |= {pid for pid, (ppid, _) in stats.items() if ppid in tree}
        return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.server_env is not None:
            self._script("stop")


class _Relay:
    """A TCP relay on 127.0.0.1 to ``target`` that holds every chunk ``delay_s`` in each direction, keeping
    their order: a database server a network away. Threads, not asyncio: its timer waits a millisecond at least."""

    def __init__(self, target: tuple[str, int], delay_s: float) -> None:
        self.target, self.delay_s = target, delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        chunks: queue.SimpleQueue = queue.SimpleQueue()

        def read() -> None:
            try:
                while data := source.recv(65536):
                    chunks.put((time.monotonic() + self.delay_s, data))
            except OSError:
                pass
            chunks.put((0.0, b""))

        def write() -> None:
            while True:
                due, data = chunks.get()
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    if (wait := due - time.monotonic()) > 0:
                        time.sleep(wait)
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()


def _round_trip_ms(url: str) -> float:
    """The median wall time of a ``SELECT 1`` on ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        took = []
        for _ in range(50):
            start = time.perf_counter()
            conn.exec_driver_sql("SELECT 1").scalar()
            took.append(1000 * (time.perf_counter() - start))
    engine.dispose()
    return statistics.median(took)


def _spec(folder: Path, name: str, quick: bool, time_scale: float) -> Path:
    search = (
        "epochs = [1, 2]\nbatch_size = [64, 256, 1024]\ndata_multiplier = [1, 2]\nlearning_rate = [1e-3, 1e-4]"
        if quick
        else "epochs = [1, 2, 3]\nbatch_size = [32, 64, 128, 256, 512, 1024]\n"
        "data_multiplier = [1, 2, 4]\nlearning_rate = [1e-2, 1e-3, 1e-4, 1e-5]"
    )
    path = folder / f"{name}.toml"
    path.write_text(
        f'[study]\nname = "{name}"\nsampler = "grid"\n[data]\nstorms = 200\n'
        f'[trainer]\nkind = "simulate"\ntime_scale = {time_scale}\n[search]\n{search}\n'
    )
    return path


def _sleep_of(params: dict, n_train: int, scale: float) -> float:
    from tornadostudy.train.params import TrialParams
    from tornadostudy.train.simulate import modelled_seconds

    # The simulate trainer sleeps its epochs only; data loading and testing are modelled, not slept.
    parts = modelled_seconds(TrialParams.from_mapping(params), n_train)
    return (parts["first_epoch_s"] + parts["steady_epochs_s"]) * scale


def _n_train(spec) -> int:
    import json

    from tornadostudy.data.resolve import resolve_data
    from tornadostudy.study.create import needed_multipliers

    folder = resolve_data(spec.data, needed_multipliers(spec))
    return int(json.loads((folder / "manifest.json").read_text())["counts"]["train"])


def _bound(ready: list[float], total: float, longest: float) -> float:
    """The least makespan end M with Σ max(0, M − ready_i) ≥ total and M ≥ min(ready) + longest."""
    ready = sorted(ready)
    end = ready[0] + longest
    for k in range(1, len(ready) + 1):  # with the first k workers busy, M = (total + Σ ready[:k]) / k
        candidate = (total + sum(ready[:k])) / k
        if k == len(ready) or candidate <= ready[k]:
            return max(end, candidate)
    return end


def _ideal(ready: list[float], sleeps: list[float]) -> float:
    """The end of the schedule a perfect expensive-first scheduler with no overhead makes: each cell, longest
    first, to the worker free soonest (workers free from their ``ready`` time). The bound above can be out of
    any schedule's reach — 216 cells of 17–25 s on 64 workers leave 24 workers four cells each — this is not:
    makespan ÷ ideal is the machinery's own share."""
    free = sorted(ready)
    for s in sorted(sleeps, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def _workers_cpu_s() -> float:
    """CPU seconds of this process's finished children: the workers, start-up included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _summary(
    trials: list[tuple[str, float, float, float]],
    cells: Counter,
    total_cells: int,
    cpu_s: float,
    server_s: float,
    exits: list[int],
) -> dict:
    """trials: (worker, start, end, sleep) per completed trial — start and end as each side records them
    (tornadostudy: the cell's claim and completion; plain Optuna: the objective's first and last line).

    ``overhead_ms`` charges every second a worker was not sleeping, from its first start to its last end,
    to its trials: claiming, creating and reporting trials and all tracking, between trials too.
    ``in_trial_ms`` counts only inside each start–end interval (what earlier runs reported).
    ``cpu_ms``: the workers' CPU time (``cpu_s``, interpreter start-up included) per trial they ran;
    ``server_ms``: the MLflow server's (``server_s``) per trial. ``later_ms``: "in trial" for every trial
    but each worker's first, which on a small machine runs while the other workers' interpreters start.
    ``failed``: workers that exited with an error (they ran fewer trials, or none: fewer workers than W)."""
    by_worker: dict[str, list[tuple[float, float, float]]] = {}
    for worker, b, e, s in trials:
        by_worker.setdefault(worker, []).append((b, e, s))
    ready = [min(b for b, _, _ in ts) for ts in by_worker.values()]
    busy = sum(
        max(e for _, e, _ in ts) - min(b for b, _, _ in ts) - sum(s for _, _, s in ts) for ts in by_worker.values()
    )
    sleeps = [s for _, _, _, s in trials]
    inside = [(e - b) - s for _, b, e, s in trials]
    later = [(e - b) - s for ts in by_worker.values() for b, e, s in sorted(ts)[1:]]
    first, last = min(ready), max(e for _, _, e, _ in trials)
    bound = _bound(ready, sum(sleeps), max(sleeps)) - first
    return {
        "duplicates": sum(n - 1 for n in cells.values() if n > 1),
        "holes": total_cells - len(cells),
        "overhead_ms": 1000 * busy / len(trials),
        "in_trial_ms": 1000 * sum(inside) / len(inside),
        "makespan_ratio": (last - first) / bound,
        "start_spread_s": max(ready) - first,
        "ideal_ratio": (last - first) / (_ideal(ready, sleeps) - first),
        "cpu_ms": 1000 * cpu_s / len(trials),
        "server_ms": 1000 * server_s / len(trials),
        "later_ms": 1000 * sum(later) / len(later) if later else float("nan"),
        "failed": sum(code != 0 for code in exits),
    }


def run_tornadostudy(
    folder: Path, workers: int, quick: bool, scale: float, tracking: _Tracking, made: list[str], delay_ms: float = 0.0
) -> dict:
    import optuna

    from tornadostudy.spec import load_spec
    from tornadostudy.study.create import create_study
    from tornadostudy.study.handle import StudyHandle

    storage = _database(made, delay_ms)  # the study database
    spec = load_spec(_spec(folder, f"ts-{workers}", quick, scale))
    create_study(spec, storage, tracking.uri)
    env = {**os.environ, "TORNADOSTUDY_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking.uri}
    logs = [folder / f"ts-{workers}-worker{i}.log" for i in range(workers)]
    cpu_before, server_before = _workers_cpu_s(), tracking.cpu_s()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tornadostudy", "worker", spec.name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    exits = [p.wait() for p in procs]
    _report_failures("tornadostudy", exits, [log.read_text() for log in logs])
    cpu_s, server_s = _workers_cpu_s() - cpu_before, tracking.cpu_s() - server_before
    handle = StudyHandle.open(spec.name, storage)
    n_train = _n_train(spec)
    rows = {r["cell"]: r for r in handle.cells.rows(spec.name)}
    complete = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    trials = [
        (
            row["worker"],
            row["claimed_at"],
            row["finished_at"],
            _sleep_of({**spec.constants, **t.params}, n_train, scale),
        )
        for t in complete
        for row in [rows[t.user_attrs["cell"]]]
    ]
    return _summary(trials, Counter(t.user_attrs["cell"] for t in complete), spec.n_cells, cpu_s, server_s, exits)


def run_baseline(
    folder: Path, workers: int, quick: bool, scale: float, tracking: _Tracking, made: list[str], delay_ms: float = 0.0
) -> dict:
    import optuna
    from mlflow import MlflowClient

    from tornadostudy.spec import load_spec

    storage = _database(made, delay_ms)  # the study database
    spec_path = _spec(folder, f"base-{workers}", quick, scale)
    spec = load_spec(spec_path)
    optuna.create_study(study_name=spec.name, storage=storage)  # schema and study once, before workers
    experiment_id = MlflowClient(tracking.uri).create_experiment(spec.name)
    n_train = _n_train(spec)  # the same prepared data the tornadostudy side uses
    # Plain MLflow settings: none of what tornadostudy's own Tracker set in this process.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_SQLALCHEMYSTORE_", "MLFLOW_HTTP_"))}
    env["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    cpu_before, server_before = _workers_cpu_s(), tracking.cpu_s()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                BASELINE_WORKER,
                str(spec_path),
                storage,
                tracking.uri,
                experiment_id,
                str(n_train),
                str(scale),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    timings, errors = [], []
    for worker, p in enumerate(procs):
        out, err = p.communicate()
        errors.append(err)
        timings += [
            (str(worker), *map(float, line.split()[1:])) for line in out.splitlines() if line.startswith("trial ")
        ]
    cpu_s, server_s = _workers_cpu_s() - cpu_before, tracking.cpu_s() - server_before
    exits = [p.returncode for p in procs]
    _report_failures("baseline", exits, errors)
    trials = optuna.load_study(study_name=spec.name, storage=storage).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
    )
    names = sorted(spec.grid)
    counts = Counter(tuple(t.params[n] for n in names) for t in trials)
    return _summary(timings, counts, spec.n_cells, cpu_s, server_s, exits)


def _report_failures(side: str, exits: list[int], stderrs: list[str]) -> None:
    """A worker that died is a result too (fewer workers did the work): say how many, and why the first."""
    failed = [(code, err) for code, err in zip(exits, stderrs, strict=True) if code != 0]
    if failed:
        code, err = failed[0]
        last = (err.strip().splitlines() or ["(no output)"])[-1]
        print(f"{side}: {len(failed)} of {len(exits)} workers failed; the first (exit {code}): {last}", file=sys.stderr)


def _time_scale(folder: Path, quick: bool, workers: int, rate: float) -> float:
    """The scale at which ``workers`` finish ``rate`` trials per second between them."""
    from tornadostudy.spec import load_spec

    spec = load_spec(_spec(folder, "probe", quick, 1.0))
    n_train = _n_train(spec)
    names = sorted(spec.grid)
    cells = [dict(zip(names, values, strict=True)) for values in itertools.product(*(spec.grid[n] for n in names))]
    mean = sum(_sleep_of({**spec.constants, **c}, n_train, 1.0) for c in cells) / len(cells)
    return workers / (rate * mean)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", default="8,32,64")
    parser.add_argument("--trial-rate", type=float, default=3.2, help="trials per second between all workers")
    parser.add_argument("--time-scale", type=float, default=None, help="a fixed time scale instead of --trial-rate")
    parser.add_argument(
        "--tracking",
        choices=("server", "database"),
        default="server",
        help="log to an mlflow server on PostgreSQL (default) or straight to PostgreSQL",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="the study database through a relay holding each chunk this long each way",
    )
    args = parser.parse_args(argv)
    sizes = [4] if args.quick else [int(w) for w in args.workers.split(",")]
    made: list[str] = []
    rows = []
    study_db = "PostgreSQL"
    try:
        if args.delay_ms:
            rtt = _round_trip_ms(_database(made, args.delay_ms))
            study_db += f" through a relay ({args.delay_ms:g} ms each way; SELECT 1: {rtt:.2f} ms)"
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["TORNADOSTUDY_DATA_CACHE"] = str(Path(tmp) / "cache")
            for workers in sizes:
                scale = args.time_scale or _time_scale(Path(tmp), args.quick, workers, args.trial_rate)
                results = []
                for side, run in (("base", run_baseline), ("ts", run_tornadostudy)):
                    tracking = _Tracking(Path(tmp), f"{side}-{workers}", args.tracking, made)
                    try:
                        results.append(run(Path(tmp), workers, args.quick, scale, tracking, made, args.delay_ms))
                    finally:
                        tracking.stop()
                rows.append((workers, scale, *results))
    finally:
        _admin_sql(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in made))
    load = f"time scale {args.time_scale}" if args.time_scale else f"{args.trial_rate} trials/s between the workers"
    where = "an mlflow server on PostgreSQL" if args.tracking == "server" else "PostgreSQL straight"
    print(f"machine: {os.cpu_count()} CPUs; {study_db} for studies; MLflow: {where}; {load}")
    print(
        f"{'W':>4} {'scale':>6} {'side':14}{'failed':>7}{'dup':>5}{'holes':>7}{'overhead ms':>13}"
        f"{'in trial ms':>13}{'later trials':>14}{'makespan/bound':>16}{'/ideal':>8}{'start spread s':>16}"
        f"{'CPU ms':>8}{'server ms':>11}"
    )
    for workers, scale, base, ours in rows:
        for side, r in (("optuna+mlflow", base), ("tornadostudy", ours)):
            print(
                f"{workers:>4} {scale:>6.2f} {side:14}{r['failed']:>7}{r['duplicates']:>5}{r['holes']:>7}"
                f"{r['overhead_ms']:>13.0f}{r['in_trial_ms']:>13.0f}{r['later_ms']:>14.0f}"
                f"{r['makespan_ratio']:>16.2f}{r['ideal_ratio']:>8.2f}{r['start_spread_s']:>16.1f}"
                f"{r['cpu_ms']:>8.0f}{r['server_ms']:>11.0f}"
            )
    _, _, base, ours = rows[-1]
    print("targets: 0 duplicates and holes; overhead <= 100 ms/trial at 64 workers; makespan <= 1.1x the bound")
    print(
        "'later trials': in-trial ms of each worker's trials after its first (the first runs while the other "
        "workers start); 'failed': workers that exited with an error; '/ideal': makespan over that of a perfect "
        "longest-first schedule of the same cells with no overhead, from the same worker start times"
    )
    print(f"ratio={base['overhead_ms'] / max(ours['overhead_ms'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
