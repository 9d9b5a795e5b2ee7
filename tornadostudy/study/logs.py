"""Quieter third-party logs for the command line (Optuna and MLflow log every study and table at INFO)."""

from __future__ import annotations

import logging
import os

__all__ = ["quiet_libraries"]


def quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by mlflow when it is imported
    logging.getLogger("alembic").setLevel(logging.WARNING)
