"""Open an existing study: its Optuna study, its spec, its cells and its MLflow coordinates."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornadostudy.errors import UserInputError
from tornadostudy.spec import StudySpec
from tornadostudy.study.cells import CellTable
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
    name: str
    url: str
    spec: StudySpec
    study: Any  # optuna.Study
    storage: Any  # optuna.storages.RDBStorage
    study_id: int
    cells: CellTable
    attrs: dict[str, Any]
    _trial_ids: dict[int, int] = field(default_factory=dict, repr=False)  # number → id never changes

    @classmethod
    def open(cls, name: str, url: str, wait: bool = False) -> StudyHandle:
        """``wait``: wait out a database that refuses connections (workers) instead of failing at once."""
        import optuna

        engine = make_engine(url, must_exist=True, wait=wait)
        import sqlalchemy as sa

        tables = set(sa.inspect(engine).get_table_names())
        if "tornadostudy_cells" not in tables:
            raise UserInputError(
                f"study {name!r} does not exist: {mask_url(url)} holds no tornadostudy studies; "
                "create one with 'tornadostudy create SPEC' or pass the right --storage"
            )
        postgresql = engine.dialect.name == "postgresql"
        if postgresql:
            # Close the checking connection before Optuna opens its own: a worker holds one connection
            # while it starts, so an array of workers starting at once stays under max_connections.
            engine.dispose()
        storage = optuna_storage(url, tables_exist="studies" in tables, wait=wait)

        def load():
            study = optuna.load_study(study_name=name, storage=storage)
            return study, study.user_attrs, storage.get_study_id_from_name(name)

        try:
            study, attrs, study_id = retrying(load, what=f"load study {name}") if wait else load()
        except KeyError:
            names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
            hint = f"studies there: {', '.join(names[:10])}" if names else "it holds no studies"
            raise UserInputError(
                f"study {name!r} does not exist in {mask_url(url)} ({hint}): create it with 'tornadostudy create SPEC'"
            ) from None
        if ATTR_SPEC not in attrs:
            raise UserInputError(
                f"study {name!r} in {mask_url(url)} was not created by tornadostudy: "
                "create one with 'tornadostudy create'"
            )
        spec = StudySpec.from_json(attrs[ATTR_SPEC])
        study.sampler = make_sampler(spec)
        if postgresql:  # one engine (one pooled connection) per process for Optuna and the cell table alike
            engine = storage.engine
        return cls(name, url, spec, study, storage, study_id, CellTable(engine), attrs)

    def trial_id(self, number: int) -> int:
        if number not in self._trial_ids:
            self._trial_ids[number] = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
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
