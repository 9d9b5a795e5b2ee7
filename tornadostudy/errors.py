"""The one exception hierarchy of tornadostudy.

Library code raises these; only :func:`tornadostudy.cli.main` turns them into a one-line message
and an exit code. Messages name the thing (file, key, option), the problem and the fix.
"""

__all__ = [
    "DataError",
    "EnvironmentFault",
    "SpecError",
    "StorageError",
    "TornadoStudyError",
    "TrackingError",
    "TrainingError",
    "UserInputError",
]


class TornadoStudyError(Exception):
    """Root of every error tornadostudy raises on purpose."""

    exit_code = 1


class UserInputError(TornadoStudyError):
    """Bad input from the user: options, files, specs. Exit code 2, nothing written."""

    exit_code = 2


class SpecError(UserInputError):
    """A study spec is malformed or inconsistent."""


class DataError(UserInputError):
    """A data folder or file is missing, malformed or corrupt."""


class EnvironmentFault(TornadoStudyError):
    """The machine a worker runs on lacks what the study needs: a GPU it was told to bind, a prepared data
    file. Never charged to a cell: the cell goes back as it was and the worker stops (exit code 3), so one bad
    node cannot fail a study."""

    exit_code = 3


class StorageError(TornadoStudyError):
    """The study database cannot be reached or is inconsistent."""


class TrackingError(TornadoStudyError):
    """The MLflow tracking backend cannot be reached or refused a write. ``permanent``: MLflow refused
    the write itself (no such run, an invalid value), so sending it again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class TrainingError(TornadoStudyError):
    """A trial failed while training. ``kind`` names why; ``retryable`` says whether a retry can help."""

    def __init__(self, message: str, *, kind: str = "exception", retryable: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
