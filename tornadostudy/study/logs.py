"""Quieter third-party logs for the command line (Optuna, MLflow and TensorFlow are chatty at INFO/WARNING)."""

from __future__ import annotations

import logging
import os

__all__ = ["quiet_libraries"]


def quiet_libraries() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by mlflow when it is imported
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Keras retraces predict() for every new model; TensorFlow warns about it on every trial.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
