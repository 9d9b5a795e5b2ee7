"""What a worker runs next: whether it has anything to do, and the Optuna trial of a claimed cell."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tornadostudy.errors import UserInputError
from tornadostudy.spec import Range, StudySpec
from tornadostudy.study import records
from tornadostudy.study.handle import StudyHandle, make_sampler
from tornadostudy.study.storage import retrying

__all__ = ["nothing_to_do", "start_trial", "suggest"]


def nothing_to_do(handle: StudyHandle, gpus: int) -> str:
    """Why this worker has nothing to do ('' when it has): every cell for its GPU count is done, or the
    study has no cell for its GPU count at all (a user error: exit 2)."""
    name, cells = handle.name, handle.cells
    if cells.claimable(name, gpus) or cells.running_for(name, gpus):
        return ""
    rows = cells.rows(name)
    waiting = Counter(r["num_gpus"] for r in rows if r["state"] == "waiting")
    mine = [r for r in rows if r["num_gpus"] in (None, gpus)]
    if waiting and not mine:  # none ever matched: an array task whose cells are all done is no error
        needs = ", ".join(f"{n} cell(s) {g} GPU(s)" for g, n in sorted(waiting.items()))
        raise UserInputError(
            f"study {name} has no cell for a worker with {gpus} GPU(s): its waiting cells need {needs}; "
            "start workers with --gpus N ('tornadostudy submit' starts one array per GPU count)"
        )
    states = Counter(r["state"] for r in mine)
    note = (
        f"nothing to do: study {name} has {states['complete']} complete and {states['failed']} failed cells "
        f"for {gpus} GPU(s)"
    )
    if states["failed"]:
        note += f" (put them back with 'tornadostudy retry {name} --failed')"
    return note


def start_trial(
    handle: StudyHandle, worker: str, claim, attrs: dict[str, Any]
) -> tuple[int, int, dict[str, Any]] | int | None:
    """Create the Optuna trial for a claimed cell (grid) or slot (TPE/random) and record it on the cell:
    (trial_id, number, params); None when the cell was handed on before the trial was made; the trial's number
    when a TPE/random trial was made but the cell was handed on before it was recorded (the caller closes it).
    ``attrs`` name the worker before the cell: a trial that names its cell always names its owner (the reaper
    relies on it)."""
    cells, storage, spec = handle.cells, handle.storage, handle.spec
    if spec.sampler == "grid":
        params = claim.params
        searched = {k: params[k] for k in spec.grid}
        # The system attributes are what GridSampler itself records, so it sees this grid point as taken.
        started = records.start_trial(
            storage,
            cells,
            handle.study_id,
            searched,
            spec.grid,
            attrs,
            {"grid_id": claim.cell, "search_space": spec.grid},
            hold=(spec.name, claim.cell, worker),
        )
        if started is None:
            return None
        handle.remember_trial(started[1], started[0])
        return *started, params
    study = handle.study  # TPE and random: Optuna's sampler decides, through Optuna's storage
    study.sampler = make_sampler(spec, slot=claim.cell * 1000 + claim.attempt)
    trial = retrying(study.ask, what="ask for a trial")
    trial_id = retrying(lambda: handle.trial_id(trial.number), what="look up the trial")
    for key, value in attrs.items():
        retrying(lambda k=key, v=value: trial.set_user_attr(k, v), what="label the trial")
    params = retrying(lambda: suggest(trial, spec), what="sample the trial's parameters")
    if not retrying(
        lambda: records.record_trial(storage, cells, spec.name, claim.cell, worker, trial_id, trial.number),
        what="record the trial",
    ):
        return trial.number
    return trial_id, trial.number, params


def suggest(trial, spec: StudySpec) -> dict[str, Any]:
    params = dict(spec.constants)
    for name, space in sorted(spec.search.items()):
        if isinstance(space, Range):
            if space.is_int:
                params[name] = trial.suggest_int(name, space.low, space.high, log=space.log, step=space.step or 1)
            else:
                params[name] = trial.suggest_float(name, space.low, space.high, log=space.log, step=space.step)
        else:
            params[name] = trial.suggest_categorical(name, list(space))
    return params
