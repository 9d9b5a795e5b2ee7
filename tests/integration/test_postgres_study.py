"""Exactly-once claiming on a real PostgreSQL server, with many concurrent worker processes."""

import threading
import time
from collections import Counter

import pytest

from tests.conftest import start_workers, wait_all, write_sim_spec
from tests.test_study_cells import check_rows_say_how_long_ago_a_cell_finished
from tests.test_study_records import (
    Book,
    check_a_completion_wins_over_a_late_reaper,
    check_a_late_run_stays_off_a_cell_that_moved_on,
    check_a_reapers_hand_on_wins_over_a_late_completion,
    check_a_trial_follows_its_completed_cell,
    check_only_the_holder_writes,
    check_record_matches_optuna,
)
from tornadostudy.spec import load_spec
from tornadostudy.study.cells import CellTable
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import study_status
from tornadostudy.study.storage import make_engine, resolve_storage_url

pytestmark = pytest.mark.postgres


def test_plain_postgresql_urls_work_with_psycopg2(postgres_url):
    url = resolve_storage_url(postgres_url)
    assert url.startswith("postgresql+psycopg2://")
    make_engine(url).dispose()


def _with_driver(url: str, driver: str) -> str:
    return url.replace("postgresql+psycopg2://", f"postgresql+{driver}://", 1)


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_threads_claim_distinct_cells_with_skip_locked(postgres_url, driver):
    cells = CellTable(make_engine(_with_driver(resolve_storage_url(postgres_url), driver)))
    cells.create_schema()
    cells.insert("s", [(i, {"i": i}, None, float(i % 5)) for i in range(200)])
    taken, lock = [], threading.Lock()

    def grab(worker):
        while (claim := cells.claim("s", 0, worker)) is not None:
            with lock:
                taken.append(claim.cell)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(200))


def test_a_pooled_connection_is_pinged_after_idling_and_a_dropped_one_is_replaced(postgres_url, monkeypatch):
    import psycopg2
    import sqlalchemy as sa

    from tornadostudy.study import storage

    url = resolve_storage_url(postgres_url)
    engine = make_engine(url)
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or ping(conn))

    def backend() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()

    def drop(pid: int) -> None:  # what a server restart does to an idle connection
        admin = psycopg2.connect(postgres_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        admin.close()

    first = backend()
    assert (backend(), pings) == (first, []), "a connection used within the last second goes out as it is"
    monkeypatch.setattr(storage, "_FRESH_S", 0.2)
    time.sleep(0.3)
    assert (backend(), len(pings)) == (first, 1), "one idle for longer is pinged"
    time.sleep(0.3)
    drop(first)
    second = backend()  # the ping finds the connection dropped: the pool connects anew, nothing fails
    assert second != first and len(pings) == 2, "the new connection itself is not pinged"

    monkeypatch.setattr(storage, "_FRESH_S", 60.0)  # dropped within the window: the statement meets it ...
    drop(second)
    with pytest.raises(sa.exc.OperationalError):
        backend()
    third = storage.retrying(backend, what="read the backend", first_delay=0.01)  # ... and a retry runs again
    assert third not in (first, second)


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_rows_say_how_long_ago_a_cell_finished_on_the_servers_clock(postgres_factory, driver):
    table = CellTable(make_engine(_with_driver(resolve_storage_url(postgres_factory()), driver)))
    table.create_schema()
    check_rows_say_how_long_ago_a_cell_finished(table)


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_trial_records_match_optuna_and_concurrent_creators_get_distinct_numbers(
    postgres_factory, eastern_time, driver
):
    # The same checks as on SQLite, on the database clusters use, with either PostgreSQL driver.
    checks = (
        check_record_matches_optuna,
        check_only_the_holder_writes,
        check_a_reapers_hand_on_wins_over_a_late_completion,
        check_a_completion_wins_over_a_late_reaper,
        check_a_trial_follows_its_completed_cell,
        check_a_late_run_stays_off_a_cell_that_moved_on,
    )
    for check in checks:
        check(Book(_with_driver(resolve_storage_url(postgres_factory()), driver)))
    book = Book(_with_driver(resolve_storage_url(postgres_factory()), driver))
    made, lock = [], threading.Lock()

    def create(worker):
        for _ in range(5):
            _cell, trial_id, number = book.start(worker)
            with lock:
                made.append((trial_id, number))

    threads = [threading.Thread(target=create, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(n for _, n in made) == list(range(40)), "numbers are distinct and dense, as Optuna's"
    stored = {
        book.storage.get_trial_id_from_study_id_trial_number(book.study_id, t.number): t.number
        for t in book.storage.get_all_trials(book.study_id, deepcopy=False)
    }
    assert stored == dict(made)


@pytest.mark.slow
def test_twelve_workers_complete_every_cell_exactly_once(postgres_url, study_env):
    folder, env = study_env
    env = {**env, "TORNADOSTUDY_STORAGE": postgres_url}
    search = "epochs = [1, 2, 3]\nbatch_size = [64, 128, 256, 512]\ndata_multiplier = [1, 2, 4]"
    spec = load_spec(write_sim_spec(folder, search=search, time_scale=0.01, fail_probability=0.15, max_attempts=6))
    create_study(spec, resolve_storage_url(postgres_url), env["MLFLOW_TRACKING_URI"])
    results = wait_all(start_workers(spec.name, 12, env))
    assert [r[0] for r in results] == [0] * 12, [r[2][-400:] for r in results if r[0]]
    handle = StudyHandle.open(spec.name, resolve_storage_url(postgres_url))
    status = study_status(handle)
    assert (status["total_cells"], status["complete"], status["failed"], status["duplicates"]) == (36, 36, 0, 0)
    import optuna

    complete = handle.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["cell"] for t in complete) == list(range(36))
    assert len(Counter(t.user_attrs["worker"] for t in complete)) > 1


@pytest.mark.slow
def test_thirty_two_workers_log_straight_to_postgresql_without_errors(postgres_factory, study_env):
    folder, env = study_env
    storage, tracking = postgres_factory(), postgres_factory()
    env = {**env, "TORNADOSTUDY_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
    search = "epochs = [1, 2]\nbatch_size = [32, 64, 128, 256]\ndata_multiplier = [1, 2]\nlearning_rate = [1e-3, 1e-4]"
    spec = load_spec(write_sim_spec(folder, search=search, time_scale=0.02))
    create_study(spec, resolve_storage_url(storage), resolve_storage_url(tracking))
    results = wait_all(start_workers(spec.name, 32, env))
    assert [r[0] for r in results] == [0] * 32, [r[2][-400:] for r in results if r[0]]
    for _, _, stderr in results:
        assert "OperationalError" not in stderr and "too many clients" not in stderr, stderr[-800:]
    handle = StudyHandle.open(spec.name, resolve_storage_url(storage))
    status = study_status(handle)
    assert (status["total_cells"], status["complete"], status["failed"], status["duplicates"]) == (32, 32, 0, 0)

    from tornadostudy.tracking import Tracker

    runs = Tracker(resolve_storage_url(tracking)).trial_runs(handle.experiment_id)
    assert len(runs) == 32 and {r.info.status for r in runs} == {"FINISHED"}


def test_submit_falls_back_to_no_idle_connections_when_the_server_limit_is_near(postgres_factory, study_env, tmp_path):
    from tornadostudy.cluster.submit import SubmitOptions, connections_fit, plan_jobs

    folder, env = study_env
    url = resolve_storage_url(postgres_factory())
    spec = load_spec(write_sim_spec(folder, search="num_gpus = [1]\nbatch_size = [128, 256]"))
    create_study(spec, url, env["MLFLOW_TRACKING_URI"])
    handle = StudyHandle.open(spec.name, url)
    assert connections_fit(handle, 2) and not connections_fit(handle, 100_000)
    few = plan_jobs(handle, SubmitOptions(gpus=(1,), array=2, log_dir=str(tmp_path)))
    assert "TORNADOSTUDY_DB_POOL" not in few[0].script
    many = plan_jobs(handle, SubmitOptions(gpus=(1,), array=5000, log_dir=str(tmp_path)))
    assert "export TORNADOSTUDY_DB_POOL=0" in many[0].script


@pytest.fixture
def one_connection_database():
    """A database owned by a role allowed one connection at a time (as a server at max_connections is to
    the next worker), as (URL, set_limit). The role has a password so the test runs under any pg_hba auth."""
    import uuid

    from tests.integration.conftest import POSTGRES, _admin_connection

    name = f"tornadostudy_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_connection()
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'limited'")
        cur.execute(f'CREATE DATABASE "{name}" OWNER {name}')

    def set_limit(n: int) -> None:
        with admin.cursor() as cur:
            cur.execute(f"ALTER ROLE {name} CONNECTION LIMIT {n}")

    host = POSTGRES.split("@", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql://{name}:limited@{host}/{name}", set_limit
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f"DROP ROLE IF EXISTS {name}")
    admin.close()


def test_a_worker_opens_its_study_on_one_connection_and_waits_out_a_full_server(
    one_connection_database, study_env, monkeypatch
):
    import psycopg2

    from tornadostudy.errors import StorageError
    from tornadostudy.study.storage import optuna_storage

    folder, env = study_env
    url, set_limit = one_connection_database
    url = resolve_storage_url(url)
    spec = load_spec(write_sim_spec(folder))
    create_study(spec, url, env["MLFLOW_TRACKING_URI"])
    set_limit(1)
    # Opening takes one connection at a time: 64 array tasks starting at once need 64, not 128. (wait: the
    # server counts a closed connection until its backend has exited, a moment later; before, opening held
    # two at once and waited out the retry budget.)
    monkeypatch.setenv("TORNADOSTUDY_DB_RETRY_S", "20")
    handle = StudyHandle.open(spec.name, url, wait=True)
    assert handle.cells.claim(spec.name, 0, "w1") is not None
    # Optuna's storage, opened on first use (TPE workers, status), takes the one connection over: the cell
    # table's is closed first and the cell table moves to Optuna's engine.
    assert [s.study_name for s in handle.storage.get_all_studies()] == [spec.name]
    assert handle.cells.engine is handle.storage.engine
    assert handle.cells.claim(spec.name, 0, "w2") is not None
    handle.cells.engine.dispose()

    occupier = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    with pytest.raises(StorageError, match="too many connections"):
        optuna_storage(url, tables_exist=True)  # without wait: a one-line error at once
    threading.Timer(1.5, occupier.close).start()
    # With wait (a worker), the refusal is retried like an outage until the connection is free.
    storage = optuna_storage(url, tables_exist=True, wait=True)
    assert [s.study_name for s in storage.get_all_studies()] == [spec.name]
    storage.engine.dispose()


def test_a_reaper_closes_a_trial_whose_worker_never_recorded_it_on_its_cell(postgres_url, mlflow_server, study_env):
    """A trial labelled with a cell its worker does not hold (killed between creating and recording it) is an
    orphan: the next worker's reaper closes it, and the grid still completes once per cell."""
    import optuna

    folder, env = study_env
    env = {**env, "TORNADOSTUDY_STORAGE": postgres_url, "MLFLOW_TRACKING_URI": mlflow_server}
    spec = load_spec(write_sim_spec(folder, search="batch_size = [128, 256]\nepochs = [1, 2]"))
    create_study(spec, resolve_storage_url(postgres_url), mlflow_server)
    handle = StudyHandle.open(spec.name, resolve_storage_url(postgres_url))
    template = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        params={"batch_size": 128, "epochs": 1},
        distributions={k: optuna.distributions.CategoricalDistribution(v) for k, v in spec.grid.items()},
        user_attrs={"worker": "lost", "cell": 0},
    )
    orphan = handle.storage.get_trial_number_from_id(handle.storage.create_new_trial(handle.study_id, template))
    [(code, _, stderr)] = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, stderr[-2000:]
    assert study_status(handle)["complete"] == 4
    lost, *trials = handle.study.get_trials(deepcopy=False)
    assert (lost.number, lost.state.name, lost.user_attrs["fail_reason"]) == (
        orphan,
        "FAIL",
        "worker lost before its trial was recorded",
    )
    assert lost.datetime_complete is not None
    assert sorted((t.params["batch_size"], t.params["epochs"]) for t in trials) == [
        (128, 1),
        (128, 2),
        (256, 1),
        (256, 2),
    ]
    assert all(t.state.name == "COMPLETE" for t in trials)
