"""A database password given in a URL never reaches output, the study, MLflow or a generated script."""

import json

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.storage import resolve_storage_url
from tornadostudy.tracking import Tracker

pytestmark = pytest.mark.postgres

SECRET = "Hunter2-never-show"


def _with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{SECRET}@{host}"  # the test server trusts 127.0.0.1, so any password works


def test_password_stays_secret_everywhere(postgres_factory, study_env):
    folder, env = study_env
    storage, tracking = _with_password(postgres_factory()), _with_password(postgres_factory())
    env = {**env, "TORNADOSTUDY_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking}
    spec = write_sim_spec(folder, search="num_gpus = [1]\nbatch_size = [128, 256]")
    outputs = [
        run_cli("create", str(spec), env=env),
        run_cli("status", "sim", "--json", env=env),
        run_cli("submit", "sim", "--array", "2", "--gpus", "1", "--dry-run", env=env),
        run_cli("-v", "status", "sim", env=env),
    ]
    assert all(r.returncode == 0 for r in outputs), [r.stderr for r in outputs]
    assert "postgresql+psycopg2://postgres:***@" in outputs[0].stdout
    ((code, out, err),) = wait_all(start_workers("sim", 1, {**env, "CUDA_VISIBLE_DEVICES": "0"}, "-v"))
    assert code == 0, err[-500:]
    everything = "".join(r.stdout + r.stderr for r in outputs) + out + err

    handle = StudyHandle.open("sim", resolve_storage_url(storage))
    everything += json.dumps(handle.attrs) + json.dumps([t.user_attrs for t in handle.study.trials])
    tracker = Tracker(resolve_storage_url(tracking))
    for run in tracker.client.search_runs([handle.experiment_id]):
        everything += json.dumps(run.data.params) + json.dumps(run.data.tags)
    assert "sim" in everything and SECRET not in everything
    assert "tornadostudy.tracking_uri" not in handle.attrs, "a URL with a password is not stored"
