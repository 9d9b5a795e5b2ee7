"""tornadostudy: parallel hyperparameter studies of a tornado-prediction CNN.

Heavy libraries (TensorFlow, MLflow, SQLAlchemy, Optuna) are imported lazily by the modules that
need them, so ``import tornadostudy`` and ``tornadostudy --help`` stay fast.
"""

from tornadostudy.errors import (
    DataError,
    SpecError,
    StorageError,
    TornadoStudyError,
    TrackingError,
    TrainingError,
    UserInputError,
)

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "SpecError",
    "StorageError",
    "TornadoStudyError",
    "TrackingError",
    "TrainingError",
    "UserInputError",
    "__version__",
]
