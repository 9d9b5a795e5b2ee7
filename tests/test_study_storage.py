"""Database URLs, engines and connection pooling."""

import socket

import pytest

from tornadostudy.errors import UserInputError
from tornadostudy.study.storage import _engine_kwargs, db_pool_size, resolve_storage_url


def test_postgres_keeps_one_pooled_connection_per_process_unless_told_not_to(monkeypatch):
    monkeypatch.delenv("TORNADOSTUDY_DB_POOL", raising=False)
    pooled = _engine_kwargs("postgresql+psycopg2://u@h/db")
    assert (pooled["pool_size"], pooled["max_overflow"]) == (1, 2)
    assert "pool_pre_ping" not in pooled, "an idle connection is pinged by _ping_when_idle, not at every use"
    monkeypatch.setenv("TORNADOSTUDY_DB_POOL", "0")
    from sqlalchemy.pool import NullPool

    assert _engine_kwargs("postgresql+psycopg2://u@h/db")["poolclass"] is NullPool
    assert "pool_size" not in _engine_kwargs("sqlite:///x.db")


@pytest.mark.parametrize("value, needle", [("many", "is not a whole number"), ("-1", "is negative")])
def test_a_bad_pool_setting_is_named(monkeypatch, value, needle):
    monkeypatch.setenv("TORNADOSTUDY_DB_POOL", value)
    with pytest.raises(UserInputError, match=f"TORNADOSTUDY_DB_POOL.*{needle}"):
        db_pool_size()


def test_storage_url_precedence_and_bad_urls(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORNADOSTUDY_STORAGE", "sqlite:///env.db")
    # Relative SQLite paths are made absolute, so workers started elsewhere find the same file.
    assert resolve_storage_url("sqlite:///cli.db") == f"sqlite:///{tmp_path}/cli.db"
    assert resolve_storage_url() == f"sqlite:///{tmp_path}/env.db"
    with pytest.raises(UserInputError, match="uses mongodb, which tornadostudy does not support: use sqlite"):
        resolve_storage_url("mongodb://x")
    with pytest.raises(UserInputError, match="uses mysql, which tornadostudy does not support"):
        resolve_storage_url("mysql://u@h/db")
    with pytest.raises(UserInputError, match="is not a database URL"):
        resolve_storage_url("study.db")
    with pytest.raises(UserInputError, match=f"folder {tmp_path}/missing does not exist"):
        resolve_storage_url("sqlite:///missing/study.db")


def test_a_worker_waits_for_a_database_that_refuses_connections_a_command_does_not(monkeypatch, caplog):
    from tornadostudy.errors import StorageError
    from tornadostudy.study.storage import make_engine

    with socket.socket() as s:  # a port nothing listens on: connections are refused, as during a restart
        s.bind(("127.0.0.1", 0))
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{s.getsockname()[1]}/db"
    # A command: the user named a server that is not there; the message says where and what to check (exit 2).
    with pytest.raises(UserInputError, match=r"cannot reach the study database server at 127.0.0.1:\d+ .*check"):
        make_engine(url)
    assert "retrying" not in caplog.text
    monkeypatch.setenv("TORNADOSTUDY_DB_RETRY_S", "1.2")
    with pytest.raises(StorageError, match="database unavailable while trying to connect to the study database"):
        make_engine(url, wait=True)
    assert "retrying in" in caplog.text


def test_opening_an_existing_study_checks_its_optuna_schema_and_names_the_fix(tmp_path, monkeypatch):
    import optuna

    from tornadostudy.errors import StorageError
    from tornadostudy.study.storage import optuna_storage

    url = f"sqlite:///{tmp_path}/study.db"
    optuna.create_study(study_name="s", storage=url)
    storage = optuna_storage(url, tables_exist=True)
    assert [s.study_name for s in storage.get_all_studies()] == ["s"]
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_head_version", lambda self: "v99.0.0.a")
    with pytest.raises(StorageError, match=r"has Optuna schema v.*expects v99\.0\.0\.a.*optuna storage upgrade"):
        optuna_storage(url, tables_exist=True)


def test_opening_a_study_checks_its_schema_with_optunas_public_versions(tmp_path, monkeypatch):
    import optuna

    from tornadostudy.errors import StorageError
    from tornadostudy.study.cells import CellTable
    from tornadostudy.study.handle import StudyHandle
    from tornadostudy.study.storage import make_engine

    url = f"sqlite:///{tmp_path}/study.db"
    optuna.create_study(study_name="s", storage=url)
    CellTable(make_engine(url)).create_schema()
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_current_version", lambda self: "v3.0.0.d")
    with pytest.raises(StorageError, match=r"has Optuna schema v3\.0\.0\.d, .* expects v.*optuna storage upgrade"):
        StudyHandle.open("s", url)


def test_retrying_rides_out_database_errors_and_optunas_wrapper_of_them_but_not_others():
    import optuna
    import sqlalchemy as sa

    from tornadostudy.study.storage import retrying

    errors = [
        sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        optuna.exceptions.StorageInternalError("An exception is raised during the commit"),
    ]

    def flaky():
        if errors:
            raise errors.pop(0)
        return "done"

    assert retrying(flaky, what="test", first_delay=0.01) == "done" and not errors

    def broken():
        raise ValueError("not a database error")

    with pytest.raises(ValueError):
        retrying(broken, what="test", first_delay=0.01)
