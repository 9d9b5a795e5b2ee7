"""The SLURM jobs submitted for a study, kept in the study database so any machine's ``status`` sees them."""

from __future__ import annotations

import time

__all__ = ["JobTable"]

TABLE = "tornadostudy_jobs"


class JobTable:
    def __init__(self, engine) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.engine = engine
        self.metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            self.metadata,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("gpus", sa.Integer, nullable=False),
            sa.Column("tasks", sa.Integer, nullable=False),
            sa.Column("submitted_at", sa.Float, nullable=False),
        )

    def create_schema(self) -> None:
        self.metadata.create_all(self.engine, checkfirst=True)

    def add(self, study: str, job_id: str, gpus: int, tasks: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(study=study, job_id=job_id, gpus=gpus, tasks=tasks, submitted_at=time.time())
            )

    def jobs(self, study: str) -> list[dict]:
        if not self.sa.inspect(self.engine).has_table(TABLE):
            return []
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(self.sa.select(t).where(t.c.study == study).order_by(t.c.submitted_at)).all()
        return [dict(r._mapping) for r in rows]
