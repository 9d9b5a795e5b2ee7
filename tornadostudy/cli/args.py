"""Argument types shared by the command groups: each turns bad text into a one-line usage error."""

from __future__ import annotations

import argparse
import datetime as dt

from tornadostudy.errors import UserInputError

__all__ = [
    "STORAGE_HELP",
    "TRACKING_HELP",
    "check_writable_folder",
    "date",
    "int_list",
    "name_list",
    "positive_int",
    "storage_url",
]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 1")
    return value


def int_list(minimum: int, example: str = "1,2,4"):
    """An argparse type: a comma-separated list of whole numbers, each ≥ ``minimum``."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of whole numbers, e.g. {example}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"empty list: give e.g. {example}")
        bad = [v for v in values if v < minimum]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]} is < {minimum}: give values ≥ {minimum}, e.g. {example}")
        return values

    return parse


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (parameters or metrics), e.g. ``test_auc,test_csi``."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing: give e.g. test_auc,test_csi")
    return names


def date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2015-01-01") from None


def check_writable_folder(path, option: str) -> None:
    """Refuse, before anything is written, a folder that cannot be made or written: one under a regular file,
    in a read-only place, or on a file system that takes no new entries (checked by making and removing a
    probe folder in the nearest existing parent)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{option} {path} is a file, not a folder: choose a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"{option} {path}: {parent} is a file, so no folder can be made under it: choose another")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tornadostudy-probe-", dir=parent))
    except OSError as exc:
        raise UserInputError(
            f"{option} {path}: cannot write in {parent} ({exc.strerror}): choose a folder you can write to"
        ) from None


STORAGE_HELP = "study database URL (default: $TORNADOSTUDY_STORAGE, else sqlite:///tornadostudy.db)"
TRACKING_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the study's, else sqlite:///mlflow.db)"


def storage_url(args: argparse.Namespace) -> str:
    """The study database URL (and, since every study command uses one: quiet library loggers)."""
    from tornadostudy.study.storage import resolve_storage_url

    if not (args.verbose or getattr(args, "debug", False)):
        from tornadostudy.study.logs import quiet_libraries

        quiet_libraries()

    return resolve_storage_url(args.storage)
