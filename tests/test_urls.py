from pathlib import Path

from tornadostudy.urls import mask_url, normalize_db_url, url_has_password


def test_postgres_urls_get_the_psycopg2_driver():
    assert normalize_db_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_db_url("postgres://u:p@h:5432/db") == "postgresql+psycopg2://u:p@h:5432/db"
    assert normalize_db_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_relative_sqlite_paths_become_absolute():
    assert normalize_db_url("sqlite:///study.db", Path("/work/x")) == "sqlite:////work/x/study.db"
    assert normalize_db_url("sqlite:////abs/study.db") == "sqlite:////abs/study.db"


def test_passwords_are_masked():
    url = "postgresql+psycopg2://alice:s3cr%40t@db.example:5432/studies"
    assert url_has_password(url)
    assert mask_url(url) == "postgresql+psycopg2://alice:***@db.example:5432/studies"
    assert "s3cr" not in mask_url(url)
    assert mask_url("postgresql://alice@host/db") == "postgresql://alice@host/db"
    assert not url_has_password("sqlite:////tmp/x.db")
    assert mask_url("http://mlflow:5000") == "http://mlflow:5000"
