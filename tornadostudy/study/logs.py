"""Quieter third-party logs for the command line (Optuna, MLflow and TensorFlow are chatty at INFO/WARNING)."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["apply_optuna_verbosity", "quiet_libraries"]

# Optuna's verbosity the command line asked for; None: Optuna's default.
_optuna_level: int | None = None


def quiet_libraries() -> None:
    global _optuna_level
    _optuna_level = logging.WARNING
    apply_optuna_verbosity()  # where Optuna is in use already; otherwise when its storage opens
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by mlflow when it is imported
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Keras retraces predict() for every new model; TensorFlow warns about it on every trial.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def apply_optuna_verbosity() -> None:
    """Set Optuna's verbosity to what the command line asked for, if Optuna is imported. Importing Optuna sets
    its loggers to INFO, so this runs where Optuna's storage opens (storage.optuna_storage: every use of its API
    goes through one) rather than importing Optuna up front: a grid worker on PostgreSQL never needs it."""
    optuna_logging = sys.modules.get("optuna.logging")
    if _optuna_level is not None and optuna_logging is not None:
        optuna_logging.set_verbosity(_optuna_level)
