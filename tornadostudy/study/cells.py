"""Atomic claiming of grid cells (and trial-budget slots) in the study database.

Plain ``GridSampler`` lets parallel workers run a cell twice and never re-runs a failed cell. Here
every cell is a row; a worker claims one with a single ``UPDATE … RETURNING`` that only succeeds on a
``waiting`` row (PostgreSQL adds ``FOR UPDATE SKIP LOCKED`` so workers never queue on one row; SQLite
serialises writers), so two workers can never hold the same cell. A failed cell goes back to
``waiting`` until its attempts are spent. Expensive cells are claimed first (cost-aware order, refitted
to the wall times of finished cells by ``costs``), which shortens the makespan of a grid on many workers.

States: waiting → running → complete | waiting (retry) | failed (attempts spent / not retryable).
The cell is the commit point of a trial: it completes by one compare-and-set (running, held by the worker →
complete, with the trial's results on the row), and the Optuna trial follows (tornadostudy/study/records.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tornadostudy.study.storage import retrying

__all__ = ["STATES", "CellTable", "Claim"]

STATES = ("waiting", "running", "complete", "failed")
TABLE = "tornadostudy_cells"


@dataclass(frozen=True)
class Claim:
    cell: int
    params: dict[str, Any] | None
    attempt: int
    previous_run_id: str | None = None  # the last attempt's MLflow run, once its worker recorded it
    previous_trial: int | None = None  # the last attempt's Optuna trial number


def _table(metadata):
    import sqlalchemy as sa

    return sa.Table(
        TABLE,
        metadata,
        sa.Column("study", sa.String(512), primary_key=True),
        sa.Column("cell", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("params", sa.Text, nullable=True),
        sa.Column("num_gpus", sa.Integer, nullable=True),
        sa.Column("cost", sa.Float, nullable=False, default=1.0),
        sa.Column("state", sa.String(16), nullable=False, default="waiting"),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("trial_number", sa.Integer, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("claimed_at", sa.Float, nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        # The completed trial's results as JSON: objective values, metrics, info (what its Optuna trial follows).
        sa.Column("results", sa.Text, nullable=True),
        sa.Index(f"ix_{TABLE}_claim", "study", "state", "cost"),
    )


# The database server's clock in seconds since the epoch (clock_timestamp: the time of the statement, not of the
# transaction's start).
POSTGRES_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


class CellTable:
    def __init__(self, engine) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.engine = engine
        self.metadata = sa.MetaData()
        self.table = _table(self.metadata)
        self.postgres = engine.dialect.name == "postgresql"
        # Every time stamp of a cell (claimed, heartbeat, finished) is the database server's clock, in seconds
        # since the epoch, and staleness is judged on the same clock: workers' clocks may disagree by minutes.
        self.now_sql = POSTGRES_NOW if self.postgres else SQLITE_NOW
        self.now = sa.literal_column(self.now_sql, sa.Float)

    def create_schema(self) -> None:
        self.metadata.create_all(self.engine, checkfirst=True)
        self.upgrade_schema()

    def upgrade_schema(self) -> None:
        """A study database made before the results column gets it (the table is ours). Several workers of
        an array may try at once: one adds it, the others find it there."""

        def has_results() -> bool:
            return "results" in {c["name"] for c in self.sa.inspect(self.engine).get_columns(TABLE)}

        if has_results():
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(self.sa.text(f"ALTER TABLE {TABLE} ADD COLUMN results TEXT"))
        except self.sa.exc.DBAPIError:
            if not has_results():
                raise

    def execute_alone(self, statement, binds: dict[str, Any] | None = None, *, consume):
        """Run ``statement`` as a transaction of its own and return ``consume(result)``.

        On PostgreSQL in one round trip: the driver otherwise sends BEGIN and COMMIT as round trips of their own,
        and a lock the statement takes stays held until the COMMIT arrives, while the client (on a busy node,
        one of 64 processes waiting for a CPU) reads the answer. In autocommit the server runs one message as
        one transaction (several ``;``-separated statements included: all or nothing, each with a snapshot
        taken when it starts) and commits it before it answers. So whatever is to be refused must make the
        statements write nothing, rather than be rolled back afterwards. On SQLite: a transaction."""
        with self.engine.connect() as conn:
            if not self.postgres:
                with conn.begin():
                    return consume(conn.execute(statement, binds or {}))
            raw = conn.connection.dbapi_connection
            raw.autocommit = True  # client-side only: the driver sends nothing for it
            try:
                return consume(conn.execute(statement, binds or {}))
            finally:
                if not raw.closed:
                    raw.autocommit = False  # the pool's other users expect transactions

    # --- writing -----------------------------------------------------------------------------------
    def insert(self, study: str, cells: list[tuple[int, dict[str, Any] | None, int | None, float]]) -> None:
        rows = [
            {
                "study": study,
                "cell": cell,
                "params": None if params is None else json.dumps(params, sort_keys=True),
                "num_gpus": gpus,
                "cost": cost,
                "state": "waiting",
                "attempts": 0,
            }
            for cell, params, gpus, cost in cells
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(self.table.insert(), rows[start : start + 1000])

    def delete_study(self, study: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.study == study))

    def claim(self, study: str, num_gpus: int, worker: str) -> Claim | None:
        """Atomically take the most expensive waiting cell this worker may run, or None."""
        gpu_filter = "(num_gpus IS NULL OR num_gpus = :gpus)"
        lock = "FOR UPDATE SKIP LOCKED" if self.postgres else ""
        sql = self.sa.text(
            f"UPDATE {TABLE} SET state = 'running', attempts = attempts + 1, worker = :worker, "
            f"claimed_at = {self.now_sql}, heartbeat_at = {self.now_sql} "
            f"WHERE study = :study AND state = 'waiting' AND cell = ("
            f"  SELECT cell FROM {TABLE} WHERE study = :study AND state = 'waiting' AND {gpu_filter} "
            f"  ORDER BY cost DESC, cell LIMIT 1 {lock}) "
            "RETURNING cell, params, attempts, run_id, trial_number"
        )

        def attempt():
            binds = {"study": study, "gpus": num_gpus, "worker": worker}
            return self.execute_alone(sql, binds, consume=lambda result: result.first())

        for _ in range(100):
            row = retrying(attempt, what="claim a cell")
            if row is not None:
                params = None if row.params is None else json.loads(row.params)
                return Claim(row.cell, params, row.attempts, row.run_id, row.trial_number)
            # Nothing updated: either nothing is claimable, or (PostgreSQL, READ COMMITTED) another
            # worker took the row between our sub-select and update. Only the first means stop.
            if not self.claimable(study, num_gpus):
                return None
        return None

    def held(self, study: str, cell: int, worker: str | None):
        """An UPDATE of the cell that only matches while it runs (and, given a worker, is that worker's)."""
        t = self.table
        cond = (t.c.study == study) & (t.c.cell == cell) & (t.c.state == "running")
        if worker is not None:
            cond = cond & (t.c.worker == worker)
        return t.update().where(cond)

    def _update(self, study: str, cell: int, worker: str | None, values: dict[str, Any], what: str) -> bool:
        statement = self.held(study, cell, worker).values(**values)

        def attempt():
            return self.execute_alone(statement, consume=lambda result: result.rowcount)

        return retrying(attempt, what=what) == 1

    def record_trial(self, study: str, cell: int, worker: str, number: int) -> bool:
        """Put the worker's new trial on its cell (and forget the last attempt's run) while the worker holds it."""
        return self._update(study, cell, worker, {"trial_number": number, "run_id": None}, "record the trial")

    def record_run(self, study: str, cell: int, number: int, run_id: str) -> None:
        """The MLflow run of the cell's trial ``number``, while the cell is that trial's."""
        t = self.table
        statement = (
            t.update()
            .where((t.c.study == study) & (t.c.cell == cell) & (t.c.trial_number == number))
            .values(run_id=run_id)
        )
        retrying(lambda: self.execute_alone(statement, consume=lambda result: None), what="record the run")

    def complete(self, study: str, cell: int, worker: str, number: int, results: dict[str, Any]) -> bool:
        """The commit point: the cell held by ``worker`` with trial ``number`` becomes complete with ``results``.
        False when it is not this worker's any more. A retry of a completion that did commit (its answer was
        lost) finds its own work done and says True."""
        values = {
            "state": "complete",
            "finished_at": self.now,
            "heartbeat_at": self.now,
            "results": json.dumps(results, allow_nan=True),
        }
        t = self.table
        statement = self.held(study, cell, worker).where(t.c.trial_number == number).values(**values)

        def attempt():
            if self.execute_alone(statement, consume=lambda result: result.rowcount) == 1:
                return True
            return self.completed_by(study, cell, worker, number)

        return retrying(attempt, what="complete the cell")

    def heartbeat(self, study: str, cell: int, worker: str) -> bool:
        return self._update(study, cell, worker, {"heartbeat_at": self.now}, "send a heartbeat")

    def fail(self, study: str, cell: int, worker: str, error: str, retry: bool, max_attempts: int) -> str:
        """Give a failed cell back (``waiting``) while attempts remain and a retry can help; else ``failed``."""
        t = self.table
        cond = (t.c.study == study) & (t.c.cell == cell) & (t.c.state == "running") & (t.c.worker == worker)
        state = self.sa.case(
            (self.sa.and_(self.sa.literal(retry), t.c.attempts < max_attempts), "waiting"), else_="failed"
        )

        def attempt():
            with self.engine.begin() as conn:
                conn.execute(
                    t.update()
                    .where(cond)
                    .values(state=state, last_error=error[:2000], finished_at=self.now, worker=None)
                )
                return conn.execute(
                    self.sa.select(t.c.state).where((t.c.study == study) & (t.c.cell == cell))
                ).scalar_one()

        return retrying(attempt, what="give back a failed cell")

    def release(self, study: str, cell: int, worker: str, reason: str) -> bool:
        """Give a cell back untouched by failure (its worker was stopped): the attempt does not count."""
        values = {
            "state": "waiting",
            "attempts": self.table.c.attempts - 1,
            "worker": None,
            "last_error": reason[:2000],
        }
        return self._update(study, cell, worker, values, "give back a cell")

    def reap_stale(self, study: str, stale_after_s: float, max_attempts: int) -> list[dict[str, Any]]:
        """Cells whose worker stopped sending heartbeats: back to ``waiting`` (or ``failed`` when their
        attempts are spent). Returns the reaped rows (cell, trial_number, run_id, state) for clean-up."""
        t = self.table
        stale = (t.c.study == study) & (t.c.state == "running") & (t.c.heartbeat_at < self.now - stale_after_s)

        def attempt():
            with self.engine.begin() as conn:
                rows = conn.execute(
                    self.sa.select(t.c.cell, t.c.trial_number, t.c.run_id, t.c.attempts, t.c.worker).where(stale)
                ).all()
                reaped = []
                for row in rows:
                    state = "waiting" if row.attempts < max_attempts else "failed"
                    # Re-check staleness in the update: the worker may have come back meanwhile.
                    done = conn.execute(
                        t.update()
                        .where(stale & (t.c.cell == row.cell))
                        .values(state=state, worker=None, last_error=f"worker {row.worker} lost: no heartbeat")
                    ).rowcount
                    if done:
                        reaped.append({**row._mapping, "state": state})
                return reaped

        return retrying(attempt, what="reap lost workers' cells")

    def set_costs(self, study: str, costs: dict[int, float]) -> None:
        """New costs for cells still waiting (one statement, many rows)."""
        t = self.table
        stmt = (
            t.update()
            .where((t.c.study == study) & (t.c.cell == self.sa.bindparam("c")) & (t.c.state == "waiting"))
            .values(cost=self.sa.bindparam("v"))
        )
        rows = [{"c": cell, "v": float(cost)} for cell, cost in sorted(costs.items())]  # one order: no deadlock

        def attempt():
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)

        if rows:
            retrying(attempt, what="update cell costs")

    # --- reading -----------------------------------------------------------------------------------
    def _fetch_all(self, query, what: str) -> list:
        """Every row of ``query``, retrying transient database errors."""

        def attempt():
            with self.engine.connect() as conn:
                return conn.execute(query).all()

        return retrying(attempt, what=what)

    def durations(self, study: str) -> list[tuple[dict[str, Any] | None, float]]:
        """(params, seconds from the last claim to completion) of every complete cell."""
        t = self.table
        query = self.sa.select(t.c.params, t.c.claimed_at, t.c.finished_at).where(
            (t.c.study == study) & (t.c.state == "complete")
        )

        rows = self._fetch_all(query, "read finished cells")
        return [
            (None if r.params is None else json.loads(r.params), (r.finished_at or 0) - (r.claimed_at or 0))
            for r in rows
        ]

    def waiting_params(self, study: str) -> list[tuple[int, dict[str, Any] | None, float]]:
        """(cell, params, cost) of every waiting cell."""
        t = self.table
        query = self.sa.select(t.c.cell, t.c.params, t.c.cost).where((t.c.study == study) & (t.c.state == "waiting"))

        return [
            (r.cell, None if r.params is None else json.loads(r.params), float(r.cost))
            for r in self._fetch_all(query, "read waiting cells")
        ]

    def run_id(self, study: str, cell: int, number: int) -> str | None:
        """The MLflow run recorded on the cell for its trial ``number``, if it was made by now."""
        t = self.table
        query = self.sa.select(t.c.run_id).where(
            (t.c.study == study) & (t.c.cell == cell) & (t.c.trial_number == number)
        )
        rows = self._fetch_all(query, "read the cell's run")
        return rows[0].run_id if rows else None

    def results(self, study: str, cell: int) -> dict[str, Any] | None:
        """The stored results of a complete cell (None before it completes)."""
        t = self.table
        rows = self._fetch_all(
            self.sa.select(t.c.results).where((t.c.study == study) & (t.c.cell == cell)), "read the cell's results"
        )
        return json.loads(rows[0].results) if rows and rows[0].results else None

    def completed_by(self, study: str, cell: int, worker: str, trial_number: int) -> bool:
        """Whether the cell is complete with this worker's trial."""
        t = self.table
        query = self.sa.select(t.c.cell).where(
            (t.c.study == study)
            & (t.c.cell == cell)
            & (t.c.state == "complete")
            & (t.c.worker == worker)
            & (t.c.trial_number == trial_number)
        )
        return bool(self._fetch_all(query, "read the cell"))

    def claimable(self, study: str, num_gpus: int) -> bool:
        return self._any(study, num_gpus, "waiting")

    def running_for(self, study: str, num_gpus: int) -> bool:
        """Whether a cell a worker with ``num_gpus`` could take over (if its worker died) is running."""
        return self._any(study, num_gpus, "running")

    def _any(self, study: str, num_gpus: int, state: str) -> bool:
        t = self.table
        query = (
            self.sa.select(t.c.cell)
            .where((t.c.study == study) & (t.c.state == state))
            .where(t.c.num_gpus.is_(None) | (t.c.num_gpus == num_gpus))
            .limit(1)
        )

        def attempt():
            with self.engine.connect() as conn:
                return conn.execute(query).first() is not None

        return retrying(attempt, what=f"look for {state} cells")

    def counts(self, study: str) -> dict[str, int]:
        t = self.table
        query = self.sa.select(t.c.state, self.sa.func.count()).where(t.c.study == study).group_by(t.c.state)
        with self.engine.connect() as conn:
            found = dict(conn.execute(query).all())
        return {state: int(found.get(state, 0)) for state in STATES}

    def rows(self, study: str, cells: set[int] | None = None, since_finished: bool = False) -> list[dict[str, Any]]:
        """Every row of the study, or only the given cells. With ``since_finished``, each row also holds
        ``since_finished_s``: the seconds since the cell finished, on the database's clock (None if it has not)."""
        t = self.table
        columns = [t, (self.now - t.c.finished_at).label("since_finished_s")] if since_finished else [t]
        query = self.sa.select(*columns).where(t.c.study == study)
        if cells is not None:
            query = query.where(t.c.cell.in_(sorted(cells)))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
