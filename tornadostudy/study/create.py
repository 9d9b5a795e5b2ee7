"""``tornadostudy create``: storage schema, Optuna study, cells and MLflow experiment — once.

Everything a study needs is created here, by one process, before any worker starts: Optuna's and
MLflow's schema creation and MLflow's experiment creation all race when many processes do them at
once. Data is resolved (and prepared if needed) first, so bad data writes nothing to the database or
MLflow; if a later step fails, what was written is removed again.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tornadostudy.errors import UserInputError
from tornadostudy.spec import Range, StudySpec
from tornadostudy.study.cells import CellTable
from tornadostudy.study.costs import cell_cost
from tornadostudy.study.handle import (
    ATTR_CHECKPOINTS,
    ATTR_DATA,
    ATTR_EXPERIMENT,
    ATTR_FINGERPRINT,
    ATTR_PARENT_RUN,
    ATTR_SPEC,
    ATTR_TRACKING,
    make_sampler,
)
from tornadostudy.study.storage import make_engine, optuna_storage
from tornadostudy.urls import mask_url, url_has_password

__all__ = ["CreateResult", "create_study", "needed_multipliers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreateResult:
    name: str
    n_cells: int
    created: bool
    data_folder: str
    experiment_id: str


def needed_multipliers(spec: StudySpec) -> set[int]:
    value = spec.search.get("data_multiplier", (spec.constants.get("data_multiplier", 1),))
    if isinstance(value, Range):
        return set(range(int(value.low), int(value.high) + 1))
    return {int(v) for v in value}


def _grid_cells(spec: StudySpec) -> list[tuple[int, dict, int | None, float]]:
    # Cell ids are GridSampler's grid ids (StudySpec.grid_cells), so Optuna's view of the grid agrees with ours.
    cells = []
    for grid_id, params in spec.grid_cells():
        gpus = params["num_gpus"] if "num_gpus" in spec.search else None
        cells.append((grid_id, params, gpus, cell_cost(params)))
    return cells


def checkpoint_root(spec: StudySpec, base: Path | None = None) -> Path:
    """Where the study's trials checkpoint: ``$TORNADOSTUDY_CHECKPOINT_DIR`` (put it on a shared file
    system on a cluster) or ``./.tornadostudy/checkpoints``, one folder per study."""
    root = Path(
        os.environ.get("TORNADOSTUDY_CHECKPOINT_DIR") or Path(base or os.getcwd()) / ".tornadostudy" / "checkpoints"
    )
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.name).strip("-")[:60] or "study"
    return (root / f"{slug}-{spec.fingerprint}").resolve()


def create_study(
    spec: StudySpec, storage_url: str, tracking_uri: str, exists_ok: bool = False, base: Path | None = None
) -> CreateResult:
    from tornadostudy.data.resolve import resolve_data

    data_folder = str(resolve_data(spec.data, needed_multipliers(spec), base))
    engine = make_engine(storage_url)
    storage = optuna_storage(storage_url)
    try:
        return _create_or_reuse(
            spec, storage_url, tracking_uri, exists_ok, base, data_folder, storage, CellTable(engine)
        )
    finally:  # a library caller (a notebook, a test, a benchmark) keeps no idle connections to the database
        engine.dispose()
        storage.engine.dispose()


def _create_or_reuse(
    spec: StudySpec,
    storage_url: str,
    tracking_uri: str,
    exists_ok: bool,
    base: Path | None,
    data_folder: str,
    storage,
    cells: CellTable,
) -> CreateResult:
    import optuna

    from tornadostudy.tracking import Tracker

    cells.create_schema()

    try:
        existing = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get(ATTR_FINGERPRINT)
        if not exists_ok:
            raise UserInputError(
                f"study {spec.name!r} already exists in {mask_url(storage_url)}: pass --exists-ok to reuse it "
                "(the spec must be identical) or rename the study"
            )
        if stored != spec.fingerprint:
            raise UserInputError(
                f"study {spec.name!r} exists with a different spec (fingerprint {stored} ≠ {spec.fingerprint}): "
                "a study's spec cannot change after create; rename the study in the spec to start a new one"
            )
        return CreateResult(
            spec.name, spec.n_cells, False, existing.user_attrs[ATTR_DATA], existing.user_attrs[ATTR_EXPERIMENT]
        )

    tracker = Tracker(tracking_uri)
    experiment_id, created_experiment = tracker.ensure_experiment(spec.name)
    parent_run_id = tracker.create_parent_run(
        experiment_id,
        spec.name,
        {"sampler": spec.sampler, "n_cells": str(spec.n_cells), "fingerprint": spec.fingerprint},
    )
    study_created = False
    try:
        study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            directions=[o.direction for o in spec.objectives],
            sampler=make_sampler(spec),
        )
        study_created = True
        study.set_user_attr(ATTR_SPEC, spec.to_json())
        study.set_user_attr(ATTR_FINGERPRINT, spec.fingerprint)
        study.set_user_attr(ATTR_DATA, data_folder)
        study.set_user_attr(ATTR_EXPERIMENT, experiment_id)
        study.set_user_attr(ATTR_PARENT_RUN, parent_run_id)
        study.set_user_attr(ATTR_CHECKPOINTS, str(checkpoint_root(spec, base)))
        study.set_user_attr("tornadostudy.objectives", [f"{o.direction} {o.metric}" for o in spec.objectives])
        if not url_has_password(tracking_uri):  # never store a secret; such workers need MLFLOW_TRACKING_URI
            study.set_user_attr(ATTR_TRACKING, tracking_uri)
        if spec.sampler == "grid":
            rows = _grid_cells(spec)
        else:
            gpus = spec.constants.get("num_gpus")
            rows = [(slot, None, gpus, 1.0) for slot in range(spec.n_cells)]
        cells.insert(spec.name, rows)
    except BaseException:
        log.warning("create failed; removing what it wrote")
        if study_created:
            optuna.delete_study(study_name=spec.name, storage=storage)
            cells.delete_study(spec.name)
        tracker.delete_run(parent_run_id)
        if created_experiment:
            tracker.delete_experiment(experiment_id)
        raise
    return CreateResult(spec.name, spec.n_cells, True, data_folder, experiment_id)
