"""The claim table on a real SQLite database (PostgreSQL: tests/integration)."""

import threading

import pytest

from tornadostudy.study.cells import CellTable
from tornadostudy.study.storage import make_engine


@pytest.fixture
def cells(tmp_path):
    table = CellTable(make_engine(f"sqlite:///{tmp_path}/cells.db"))
    table.create_schema()
    return table


def test_claims_the_most_expensive_matching_cell_first(cells):
    cells.insert("s", [(0, {"a": 0}, 1, 1.0), (1, {"a": 1}, 2, 9.0), (2, {"a": 2}, 1, 5.0), (3, {"a": 3}, None, 3.0)])
    order = []
    while (claim := cells.claim("s", 1, "w1")) is not None:
        order.append(claim.cell)
        assert claim.attempt == 1
    assert order == [2, 3, 0], "cost order, GPU count 1 or unconstrained only"
    assert cells.claim("s", 2, "w2").cell == 1
    assert cells.counts("s") == {"waiting": 0, "running": 4, "complete": 0, "failed": 0}


def test_concurrent_claims_never_share_a_cell(cells):
    cells.insert("s", [(i, {"i": i}, None, float(i % 7)) for i in range(120)])
    taken: list[int] = []
    lock = threading.Lock()

    def grab(worker):
        while (claim := cells.claim("s", 0, worker)) is not None:
            with lock:
                taken.append(claim.cell)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(120))


def test_failures_retry_until_attempts_are_spent(cells):
    cells.insert("s", [(0, {}, None, 1.0)])
    for attempt in (1, 2):
        claim = cells.claim("s", 0, "w")
        assert claim.attempt == attempt
        assert cells.fail("s", 0, "w", "boom", retry=True, max_attempts=3) == "waiting"
    assert cells.claim("s", 0, "w").attempt == 3
    assert cells.fail("s", 0, "w", "boom", retry=True, max_attempts=3) == "failed"
    assert cells.claim("s", 0, "w") is None
    assert cells.rows("s")[0]["last_error"] == "boom"


def test_a_deterministic_failure_is_not_retried(cells):
    cells.insert("s", [(0, {}, None, 1.0)])
    cells.claim("s", 0, "w")
    assert cells.fail("s", 0, "w", "nan loss", retry=False, max_attempts=5) == "failed"


def test_studies_are_separate(cells):
    cells.insert("a", [(0, {}, None, 1.0)])
    cells.insert("b", [(0, {}, None, 1.0)])
    assert cells.claim("a", 0, "w").cell == 0
    assert cells.counts("b")["waiting"] == 1
    cells.delete_study("a")
    assert sum(cells.counts("a").values()) == 0


def test_a_cells_table_made_before_the_results_column_gets_it(tmp_path):
    import sqlalchemy as sa

    from tornadostudy.study.cells import TABLE, CellTable
    from tornadostudy.study.storage import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    with engine.begin() as conn:  # the table as an earlier version made it
        conn.execute(
            sa.text(
                f"CREATE TABLE {TABLE} (study VARCHAR(512), cell INTEGER, params TEXT, "
                "num_gpus INTEGER, cost FLOAT, state VARCHAR(16), attempts INTEGER, trial_number INTEGER, "
                "run_id VARCHAR(64), worker VARCHAR(256), claimed_at FLOAT, heartbeat_at FLOAT, "
                "finished_at FLOAT, last_error TEXT, PRIMARY KEY (study, cell))"
            )
        )
    cells = CellTable(engine)
    cells.upgrade_schema()
    cells.upgrade_schema()  # a second worker finds it there
    cells.insert("s", [(0, {"epochs": 1}, None, 1.0)])
    claim = cells.claim("s", 0, "w")
    assert cells.record_trial("s", claim.cell, "w", 0)
    assert cells.complete("s", claim.cell, "w", 0, {"values": [1.0]}) and cells.results("s", 0) == {"values": [1.0]}


def test_rows_say_how_long_ago_a_cell_finished_on_the_databases_clock(cells):
    check_rows_say_how_long_ago_a_cell_finished(cells)


def check_rows_say_how_long_ago_a_cell_finished(cells: CellTable) -> None:
    """Shared with the PostgreSQL tests (tests/integration/test_postgres_study.py)."""
    cells.insert("s", [(0, {}, None, 1.0), (1, {}, None, 1.0)])
    claim = cells.claim("s", 0, "w")
    assert cells.record_trial("s", claim.cell, "w", 7)
    assert cells.complete("s", claim.cell, "w", 7, {"values": [0.5]})
    rows = {r["cell"]: r for r in cells.rows("s", since_finished=True)}
    assert 0.0 <= rows[claim.cell]["since_finished_s"] < 60.0
    assert rows[1 - claim.cell]["since_finished_s"] is None, "a cell that has not finished"
    assert "since_finished_s" not in cells.rows("s")[0], "only when asked"
