"""What Optuna itself can tell about a finished study, for its report: parameter importances."""

from __future__ import annotations

import logging

from tornadostudy.study.handle import StudyHandle

__all__ = ["param_importances"]

log = logging.getLogger(__name__)


def param_importances(handle: StudyHandle) -> dict[str, float] | None:
    """Importances of the searched parameters for the first objective (Optuna's default evaluator, fANOVA,
    through ``optuna.importance``), or None when they cannot be told (fewer than two completed trials, or
    nothing varies)."""
    import optuna

    study = handle.study
    if not handle.spec.objectives:
        return None
    try:
        return dict(
            optuna.importance.get_param_importances(
                study,
                target=(lambda t: t.values[0]) if len(study.directions) > 1 else None,
                params=[p for p in handle.spec.search if p != "repeat"],
            )
        )
    except (RuntimeError, ValueError) as exc:
        log.info("no parameter importances: %s", exc)
        return None
