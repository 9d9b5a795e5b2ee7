"""Write a whole output folder or nothing: build it beside its destination, rename at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tornadostudy.errors import UserInputError

__all__ = ["atomic_output_dir"]


@contextlib.contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out``; on success it replaces ``out``, on error it is removed.

    An existing non-empty ``out`` is refused unless ``overwrite``: a prepared data set is an input of
    recorded trials, so replacing it silently would break their provenance.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"output {out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserInputError(f"output folder {out} is not empty: choose another --out or pass --overwrite")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create {parent} ({exc.strerror}): choose a writable --out") from exc
    tmp = parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
