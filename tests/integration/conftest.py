"""Real services for integration tests. Missing service: skip with the reason (a failure under CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

POSTGRES = os.environ.get("TORNADOSTUDY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SLURM_CONF = os.environ.get("SLURM_CONF", "/tmp/tornadostudy-slurm/etc/slurm.conf")
ROOT = Path(__file__).resolve().parents[2]


def _admin_connection():
    import psycopg2

    conn = psycopg2.connect(POSTGRES.replace("postgresql+psycopg2://", "postgresql://"), connect_timeout=5)
    conn.autocommit = True
    return conn


@pytest.fixture
def postgres_factory():
    """Make fresh, empty PostgreSQL databases for one test; all dropped afterwards."""
    try:
        admin = _admin_connection()
    except Exception as exc:
        pytest.skip(
            f"PostgreSQL not reachable at {POSTGRES} ({str(exc).strip().splitlines()[0]}); "
            "start it or set TORNADOSTUDY_TEST_POSTGRES"
        )
    made = []

    def make() -> str:
        name = f"tornadostudy_test_{uuid.uuid4().hex[:12]}"
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{POSTGRES.rsplit('/', 1)[0]}/{name}"

    yield make
    admin.close()
    admin = _admin_connection()  # a fresh one: a test may have restarted the server
    with admin.cursor() as cur:
        for name in made:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def postgres_url(postgres_factory):
    return postgres_factory()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server`, driven by tracking/mlflow-server.sh."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.script = str(ROOT / "tracking" / "mlflow-server.sh")
        self.url = f"http://127.0.0.1:{env['MLFLOW_PORT']}"

    def start(self) -> None:
        started = subprocess.run([self.script, "start"], env=self.env, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().splitlines()[-1] == self.url

    def stop(self) -> None:
        subprocess.run([self.script, "stop"], env=self.env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def mlflow_control(postgres_factory, tmp_path):
    """A real `mlflow server` on PostgreSQL that the test may stop and start again."""
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": postgres_factory(),
        "MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(_free_port()),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_STATE_DIR": str(tmp_path / "mlflow-state"),
        "MLFLOW_PYTHON": sys.executable,
    }
    server = MlflowServer(env)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_server(mlflow_control):
    return mlflow_control.url


@pytest.fixture(scope="session")
def slurm_cluster():
    """The dev cluster of slurm/dev-cluster.sh (started by .ci/run); its SLURM_CONF is exported for the test."""
    if not shutil.which("sbatch") or not Path(SLURM_CONF).exists():
        pytest.skip(f"no SLURM cluster (sbatch or {SLURM_CONF} missing): run 'slurm/dev-cluster.sh start' as root")
    os.environ["SLURM_CONF"] = SLURM_CONF
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30).stdout.strip()
    if not state or not any(s in state for s in ("idle", "mixed", "allocated")):
        pytest.skip(f"the SLURM node is not up (state {state!r}): run 'slurm/dev-cluster.sh start'")
    return SLURM_CONF
