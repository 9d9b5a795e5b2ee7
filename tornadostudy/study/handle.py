"""Open an existing study: its Optuna study, its spec, its cells and its MLflow coordinates."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornadostudy.errors import UserInputError
from tornadostudy.spec import StudySpec
from tornadostudy.study.cells import CellTable
from tornadostudy.study.storage import check_optuna_schema, make_engine, optuna_storage, retrying
from tornadostudy.urls import mask_url

__all__ = ["StudyHandle", "make_sampler"]

ATTR_SPEC = "tornadostudy.spec"
ATTR_FINGERPRINT = "tornadostudy.fingerprint"
ATTR_DATA = "tornadostudy.data"
ATTR_EXPERIMENT = "tornadostudy.mlflow_experiment_id"
ATTR_PARENT_RUN = "tornadostudy.mlflow_parent_run_id"
ATTR_TRACKING = "tornadostudy.tracking_uri"
ATTR_CHECKPOINTS = "tornadostudy.checkpoints"


def make_sampler(spec: StudySpec, slot: int = 0):
    """The Optuna sampler of a spec. TPE/random get a per-slot seed so parallel workers diverge."""
    import optuna

    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid, seed=spec.seed)
    seed = spec.seed * 100_003 + slot
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


@dataclass
class StudyHandle:
    """An open study. Its Optuna ``study`` and ``storage`` are opened on first use: a grid worker writes its
    trials in plain SQL (``records``) and never needs them, and opening Optuna's storage costs a process
    ~0.5 s of CPU (Alembic, the ORM's sessions, the study's reads) — 64 array tasks starting on shared
    CPUs pay that while the first trials run."""

    name: str
    url: str
    spec: StudySpec
    study_id: int
    cells: CellTable
    attrs: dict[str, Any]
    wait: bool = False  # wait out a database outage (workers) instead of failing at once
    _storage: Any = field(default=None, repr=False)  # optuna.storages.RDBStorage, once opened
    _study: Any = field(default=None, repr=False)  # optuna.Study, once opened
    _trial_ids: dict[int, int] = field(default_factory=dict, repr=False)  # number → id never changes

    @classmethod
    def open(cls, name: str, url: str, wait: bool = False) -> StudyHandle:
        """``wait``: wait out a database that refuses connections (workers) instead of failing at once."""
        import sqlalchemy as sa

        engine = make_engine(url, must_exist=True, wait=wait)
        tables = set(sa.inspect(engine).get_table_names())
        if not {"tornadostudy_cells", "studies", "alembic_version"} <= tables:
            raise UserInputError(
                f"study {name!r} does not exist: {mask_url(url)} holds no tornadostudy studies; "
                "create one with 'tornadostudy create SPEC' or pass the right --storage"
            )

        def load():
            check_optuna_schema(engine, url)
            with engine.connect() as conn:  # the study's id and attributes, without opening Optuna's storage
                return conn.execute(sa.text(
                    "SELECT s.study_id, a.key, a.value_json FROM studies s LEFT JOIN study_user_attributes a "
                    "ON a.study_id = s.study_id WHERE s.study_name = :name"), {"name": name}).all()  # fmt: skip

        rows = retrying(load, what=f"load study {name}") if wait else load()
        if not rows:
            with engine.connect() as conn:
                query = sa.text("SELECT study_name FROM studies ORDER BY study_id LIMIT 10")
                names = conn.execute(query).scalars().all()
            hint = f"studies there: {', '.join(names)}" if names else "it holds no studies"
            raise UserInputError(
                f"study {name!r} does not exist in {mask_url(url)} ({hint}): create it with 'tornadostudy create SPEC'"
            )
        attrs = {key: json.loads(value) for _, key, value in rows if key is not None}
        if ATTR_SPEC not in attrs:
            raise UserInputError(
                f"study {name!r} in {mask_url(url)} was not created by tornadostudy: "
                "create one with 'tornadostudy create'"
            )
        spec = StudySpec.from_json(attrs[ATTR_SPEC])
        return cls(name, url, spec, rows[0][0], CellTable(engine), attrs, wait)

    @property
    def storage(self):
        """Optuna's storage of the study, opened on first use (retrying a database outage)."""
        if self._storage is None:
            if not self.cells.postgres:
                self._storage = optuna_storage(self.url, tables_exist=True, wait=self.wait, schema_checked=True)
                return self._storage
            # One engine (one pooled connection) per process for Optuna and the cell table alike, so an array
            # of workers stays under max_connections: the cell table's idle connection is closed before
            # Optuna opens its own, and the cell table moves to Optuna's engine. A connection in use by
            # another thread meanwhile finishes its statement first (dispose leaves it alone).
            lean = self.cells.engine
            lean.dispose()
            self._storage = optuna_storage(self.url, tables_exist=True, wait=self.wait, schema_checked=True)
            self.cells.engine = self._storage.engine
            lean.dispose()
        return self._storage

    @property
    def study(self):
        """The Optuna study, with the spec's sampler, opened on first use."""
        if self._study is None:
            import optuna

            def load():
                return optuna.load_study(study_name=self.name, storage=self.storage)

            study = retrying(load, what=f"load study {self.name}") if self.wait else load()
            study.sampler = make_sampler(self.spec)
            self._study = study
        return self._study

    def trial_id(self, number: int) -> int:
        if number not in self._trial_ids:
            import sqlalchemy as sa

            with self.cells.engine.connect() as conn:
                found = conn.execute(sa.text("SELECT trial_id FROM trials WHERE study_id = :s AND number = :n"),
                                     {"s": self.study_id, "n": number}).scalar()  # fmt: skip
            if found is None:
                raise KeyError(f"study {self.name!r} has no trial {number}")
            self._trial_ids[number] = found
        return self._trial_ids[number]

    def remember_trial(self, number: int, trial_id: int) -> None:
        self._trial_ids[number] = trial_id

    @property
    def data_folder(self) -> str:
        return self.attrs[ATTR_DATA]

    @property
    def experiment_id(self) -> str:
        return self.attrs[ATTR_EXPERIMENT]

    @property
    def parent_run_id(self) -> str | None:
        return self.attrs.get(ATTR_PARENT_RUN)

    @property
    def stored_tracking_uri(self) -> str | None:
        return self.attrs.get(ATTR_TRACKING)

    def checkpoint_dir(self, cell: int) -> Path | None:
        root = self.attrs.get(ATTR_CHECKPOINTS)
        return Path(root) / f"cell-{cell}" if root else None
