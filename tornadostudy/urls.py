"""Database and tracking URLs: defaults, normalisation and masking (no heavy imports)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["mask_url", "normalize_db_url", "strip_password", "url_has_password"]

_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][\w+.-]*://[^:/@]*:)(?P<password>[^@]*)(?P<tail>@.*)$")


def normalize_db_url(url: str, base: Path | None = None) -> str:
    """Make a database URL usable by every process of a study.

    ``postgresql://`` and ``postgres://`` get the psycopg2 driver (SQLAlchemy 2.1 would otherwise pick
    psycopg 3, which is not installed); a relative SQLite path becomes absolute, so workers started
    from another folder open the same file.
    """
    url = url.strip()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///") :])
        return "sqlite:///" + str((base or Path(os.getcwd())) / path)
    return url


def url_has_password(url: str) -> bool:
    match = _PASSWORD.match(url)
    return bool(match and match.group("password"))


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``: safe for output and logs."""
    match = _PASSWORD.match(url)
    if not match or not match.group("password"):
        return url
    return f"{match.group('head')}***{match.group('tail')}"


def strip_password(url: str) -> str:
    """The URL without its password (``user@host``): what may be written into scripts. libpq then takes
    the password from ``PGPASSWORD`` or ``~/.pgpass`` at run time."""
    match = _PASSWORD.match(url)
    if not match or not match.group("password"):
        return url
    return f"{match.group('head')[:-1]}{match.group('tail')}"
