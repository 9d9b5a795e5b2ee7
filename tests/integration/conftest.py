"""Real services for integration tests. Missing service: skip with the reason (a failure under CI=true)."""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES = os.environ.get("TORNADOSTUDY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_connection():
    import psycopg2

    conn = psycopg2.connect(POSTGRES.replace("postgresql+psycopg2://", "postgresql://"), connect_timeout=5)
    conn.autocommit = True
    return conn


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    try:
        admin = _admin_connection()
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES} ({str(exc).strip().splitlines()[0]}); "
                    "start it or set TORNADOSTUDY_TEST_POSTGRES")  # fmt: skip
    name = f"tornadostudy_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
