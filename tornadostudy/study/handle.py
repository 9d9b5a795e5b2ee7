"""Open an existing study: its Optuna study, its spec, its cells and its MLflow coordinates."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornadostudy.errors import UserInputError
from tornadostudy.spec import StudySpec
from tornadostudy.study.cells import TABLE, CellTable
from tornadostudy.study.storage import make_engine, optuna_storage, retrying
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
    """An open study: its spec, its cells, its MLflow coordinates, and Optuna's storage and study (the study
    opened on first use). Optuna's records are read and written through Optuna's public storage API only."""

    name: str
    url: str
    spec: StudySpec
    study_id: int
    cells: CellTable
    attrs: dict[str, Any]
    storage: Any = field(repr=False)  # optuna.storages.RDBStorage
    wait: bool = False  # wait out a database outage (workers) instead of failing at once
    _study: Any = field(default=None, repr=False)  # optuna.Study, once opened
    _trial_ids: dict[int, int] = field(default_factory=dict, repr=False)  # number → id never changes

    @classmethod
    def open(cls, name: str, url: str, wait: bool = False) -> StudyHandle:
        """``wait``: wait out a database that refuses connections (workers) instead of failing at once."""
        import sqlalchemy as sa

        engine = make_engine(url, must_exist=True, wait=wait)
        if TABLE not in set(sa.inspect(engine).get_table_names()):
            engine.dispose()
            raise UserInputError(
                f"study {name!r} does not exist: {mask_url(url)} holds no tornadostudy studies; "
                "create one with 'tornadostudy create SPEC' or pass the right --storage"
            )
        engine.dispose()
        storage = optuna_storage(url, tables_exist=True, wait=wait)

        def load():
            study_id = storage.get_study_id_from_name(name)
            return study_id, storage.get_study_user_attrs(study_id)

        try:
            study_id, attrs = retrying(load, what=f"load study {name}") if wait else load()
        except KeyError:
            names = [s.study_name for s in storage.get_all_studies()][:10]
            hint = f"studies there: {', '.join(names)}" if names else "it holds no studies"
            raise UserInputError(
                f"study {name!r} does not exist in {mask_url(url)} ({hint}): create it with 'tornadostudy create SPEC'"
            ) from None
        if ATTR_SPEC not in attrs:
            raise UserInputError(
                f"study {name!r} in {mask_url(url)} was not created by tornadostudy: "
                "create one with 'tornadostudy create'"
            )
        spec = StudySpec.from_json(attrs[ATTR_SPEC])
        # One engine (one pooled connection) per process for Optuna and the cell table alike, so an array of
        # workers stays under the database's connection limit.
        cells = CellTable(storage.engine)
        cells.upgrade_schema()
        return cls(name, url, spec, study_id, cells, attrs, storage, wait)

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
            try:
                self._trial_ids[number] = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
            except KeyError:
                raise KeyError(f"study {self.name!r} has no trial {number}") from None
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
