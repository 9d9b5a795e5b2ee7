"""The study database: URL resolution, engines, the Optuna storage, friendly connection errors."""

from __future__ import annotations

import logging
import os
import sys
import time

from tornadostudy.errors import StorageError, UserInputError
from tornadostudy.urls import mask_url, normalize_db_url

__all__ = [
    "DEFAULT_STORAGE",
    "db_pool_size",
    "make_engine",
    "optuna_storage",
    "resolve_storage_url",
    "retrying",
]

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///tornadostudy.db"


def resolve_storage_url(cli: str | None = None) -> str:
    """``--storage`` > ``TORNADOSTUDY_STORAGE`` > ``sqlite:///tornadostudy.db`` (in the current folder)."""
    url = cli or os.environ.get("TORNADOSTUDY_STORAGE") or DEFAULT_STORAGE
    if not url.startswith(("sqlite:", "postgresql", "postgres:")):
        scheme = url.split(":", 1)[0] if "://" in url else None
        what = f"uses {scheme}, which tornadostudy does not support" if scheme else "is not a database URL"
        raise UserInputError(
            f"storage URL {mask_url(url)!r} {what}: use sqlite:///study.db (one machine) or "
            "postgresql://user@host/db (a cluster)"
        )
    url = normalize_db_url(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = os.path.dirname(url[len("sqlite:///") :].split("?")[0])
        if folder and not os.path.isdir(folder):
            raise UserInputError(
                f"storage URL {mask_url(url)!r}: folder {folder} does not exist: create it or choose another path"
            )
    return url


def db_pool_size() -> int:
    """Idle PostgreSQL connections a process keeps (``TORNADOSTUDY_DB_POOL``, default 1; 0: none)."""
    text = os.environ.get("TORNADOSTUDY_DB_POOL", "1")
    try:
        size = int(text)
    except ValueError:
        raise UserInputError(f"TORNADOSTUDY_DB_POOL={text!r} is not a whole number: use 1 (default) or 0") from None
    if size < 0:
        raise UserInputError(f"TORNADOSTUDY_DB_POOL={size} is negative: use 1 (default) or 0 (no idle connections)")
    return size


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Many local workers share one file: wait for the lock rather than fail.
        return {"connect_args": {"timeout": 120}}
    size = db_pool_size()
    if size == 0:
        from sqlalchemy.pool import NullPool

        # A connection per operation, closed at once: for servers whose connection limit is tight.
        return {"poolclass": NullPool, "connect_args": {"connect_timeout": 10}}
    # One connection kept per worker process (Optuna and the cell table share the engine): a new
    # PostgreSQL connection costs a server process fork and ~5 ms, and a trial makes a handful of round
    # trips. Overflow covers the heartbeat and delivery threads. _ping_when_idle + recycle replace a
    # connection a restarted server dropped before it is used, so outages are survived as with no pool.
    return {"pool_size": size, "max_overflow": 2, "pool_recycle": 300, "connect_args": {"connect_timeout": 10}}


# A pooled connection checked in less than this many seconds ago goes out without a ping.
_FRESH_S = 1.0


def _ping_when_idle(engine) -> None:
    """Ping a pooled PostgreSQL connection before use only if it has been idle for a second or more.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: with a trial's claim, start and completion one
    round trip each, its pings would be almost half of a worker's round trips. A worker uses its connection in
    bursts (claim then start; completion then the next claim) with long idle stretches between (training):
    the first use after a stretch is checked, the rest of a burst is not. Should the server go away within
    that second, the statement fails as a disconnect, SQLAlchemy drops the pool's connections, and the
    operation's :func:`retrying` runs it again on a new one, as in any outage."""
    import sqlalchemy as sa

    def fresh(_dbapi_connection, record) -> None:
        record.info["tornadostudy_idle_since"] = time.monotonic()

    def checkout(dbapi_connection, record, _proxy) -> None:
        since = record.info.get("tornadostudy_idle_since")
        if since is not None and time.monotonic() - since < _FRESH_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise sa.exc.DisconnectionError(str(exc)) from exc  # the pool connects anew and retries
            raise

    sa.event.listen(engine, "connect", fresh)
    sa.event.listen(engine, "checkin", fresh)
    sa.event.listen(engine, "checkout", checkout)


def make_engine(url: str, must_exist: bool = False, wait: bool = False):
    """A SQLAlchemy engine, checked by one round trip. ``must_exist``: refuse to create a new SQLite file
    (read-only commands must not write anything when pointed at the wrong place). ``wait``: a server that
    refuses connections is waited for like any database outage (a worker starting during a restart)."""
    import sqlalchemy as sa

    if must_exist and url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path != ":memory:" and not os.path.exists(path):
            raise UserInputError(
                f"study database {path} does not exist: run 'tornadostudy create SPEC' first or pass --storage"
            )
    kwargs = _engine_kwargs(url)
    try:
        engine = sa.create_engine(url, **kwargs)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise UserInputError(
            f"storage URL {mask_url(url)!r} is malformed ({exc}): use e.g. sqlite:///study.db"
        ) from exc
    except ModuleNotFoundError as exc:
        raise UserInputError(f"storage URL {mask_url(url)!r} needs a driver that is not installed: {exc.name}") from exc
    if "pool_size" in kwargs:
        _ping_when_idle(engine)
    if url.startswith("sqlite"):

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):  # readers do not block the writer
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    def check() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        if wait:
            retrying(check, what=f"connect to the study database {mask_url(url)}")
        else:
            check()
    except sa.exc.OperationalError as exc:
        if wait:
            raise StorageError(f"cannot connect to the study database {mask_url(url)}: {_reason(exc)}") from None
        raise UserInputError(_connect_hint(url, _reason(exc))) from None
    return engine


def _connect_hint(url: str, reason: str) -> str:
    """What a user can do about a database that refused a command's connection."""
    from urllib.parse import urlsplit

    where = mask_url(url)
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    low = reason.lower()
    if "does not exist" in low and "database" in low:
        return (
            f"the study database {name!r} does not exist on {parts.hostname}: create it once with "
            f"'createdb -h {parts.hostname} -p {parts.port or 5432} -U {parts.username or 'postgres'} {name}' "
            f"(or CREATE DATABASE {name}), then run the command again"
        )
    if "password" in low or "authentication" in low:
        return f"the study database {where} refused the login ({reason}): check the user and password in --storage"
    if url.startswith("sqlite"):
        return f"cannot open the study database {where} ({reason}): check the path and its permissions"
    return (
        f"cannot reach the study database server at {parts.hostname}:{parts.port or 5432} ({reason}): check the "
        "host and port in --storage and that PostgreSQL runs there"
    )


def optuna_storage(url: str, *, tables_exist: bool = False, wait: bool = False):
    """Optuna's storage on ``url``, opened on one connection at a time where its tables exist.

    ``tables_exist``: skip Optuna's create-all (a dozen catalogue queries; concurrent first uses race) and
    check the schema here with Optuna's ``get_current_version``/``get_head_version``: Optuna's own check holds
    a session while it opens a second connection, so 64 workers starting at once would need 128. ``wait``:
    retry what a busy or restarting server refuses ("too many clients" while an array of workers starts) as
    any database outage, instead of failing the worker."""
    import optuna

    from tornadostudy.study.logs import apply_optuna_verbosity

    apply_optuna_verbosity()  # every use of Optuna's API goes through a storage opened here
    kwargs = _engine_kwargs(url)

    def open_storage():
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, skip_table_creation=tables_exist, skip_compatibility_check=tables_exist
        )
        if "pool_size" in kwargs:
            _ping_when_idle(storage.engine)
        if tables_exist:
            try:
                current, head = storage.get_current_version(), storage.get_head_version()
                if current != head:
                    raise _schema_mismatch(url, current, head)
            except BaseException:
                storage.engine.dispose()  # a retry opens a new engine: this one keeps no connection
                raise
        return storage

    try:
        return retrying(open_storage, what=f"open the Optuna storage at {mask_url(url)}") if wait else open_storage()
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(f"cannot open the Optuna storage at {mask_url(url)}: {_reason(exc)}") from None


def _schema_mismatch(url: str, current: str | None, head: str) -> StorageError:
    from importlib.metadata import version

    return StorageError(
        f"the study database {mask_url(url)} has Optuna schema {current}, this environment's Optuna "
        f"{version('optuna')} expects {head}: run tornadostudy with the Optuna that created the "
        f"study, or upgrade the database with 'optuna storage upgrade --storage URL'"
    )


def _reason(exc: BaseException) -> str:
    """The first line of the root cause: Optuna wraps the driver's error ("too many clients") in a generic one."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def db_retry_s() -> float:
    """How long to keep retrying a database operation (default 10 minutes: a server restart or failover)."""
    return float(os.environ.get("TORNADOSTUDY_DB_RETRY_S", "600"))


def _transient_errors() -> tuple[type[BaseException], ...]:
    import sqlalchemy as sa

    errors: tuple[type[BaseException], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError)
    # Optuna's own wrapper of them, where Optuna is in use: a grid worker on PostgreSQL never imports it.
    optuna_exceptions = sys.modules.get("optuna.exceptions")
    return (*errors, optuna_exceptions.StorageInternalError) if optuna_exceptions is not None else errors


def retrying(fn, *, what: str, budget_s: float | None = None, first_delay: float = 0.5):
    """Run ``fn``, retrying transient database errors with exponential backoff (capped at 30 s) for up to
    ``budget_s`` seconds (default :func:`db_retry_s`), logging each retry; then a one-line StorageError."""
    deadline = time.monotonic() + (db_retry_s() if budget_s is None else budget_s)
    delay, attempt = first_delay, 0
    while True:
        attempt += 1
        try:
            return fn()
        except _transient_errors() as exc:  # looked up when one is raised: ``fn`` may be what imports Optuna
            reason = _reason(exc)
            if time.monotonic() + delay > deadline:
                raise StorageError(f"database unavailable while trying to {what}: {reason}") from None
            log.warning(
                "database error while trying to %s (attempt %d): %s; retrying in %.1fs", what, attempt, reason, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
