"""Workers against real SQLite + a real MLflow store, with the simulate trainer."""

import re
from collections import Counter

import pytest

from tests.conftest import run_cli, start_workers, wait_all, write_sim_spec
from tornadostudy.errors import UserInputError
from tornadostudy.spec import load_spec
from tornadostudy.study.create import create_study
from tornadostudy.study.handle import StudyHandle
from tornadostudy.study.status import study_status
from tornadostudy.tracking import Tracker

GRID_40 = (
    'epochs = [1, 2]\nbatch_size = [64, 128, 256, 512, 1024]\ndata_multiplier = [1, 2]\naugmentation = ["pre", "live"]'
)


def _create(folder, env, **kw):
    spec = load_spec(write_sim_spec(folder, **kw))
    result = create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    return spec, result


def _trials(env, name):
    import optuna

    handle = StudyHandle.open(name, env["TORNADOSTUDY_STORAGE"])
    return handle, handle.study.get_trials(deepcopy=False), optuna.trial.TrialState


def _runs(env, name):
    tracker = Tracker(env["MLFLOW_TRACKING_URI"])
    experiment = tracker.client.get_experiment_by_name(name)
    return tracker, tracker.trial_runs(experiment.experiment_id)


@pytest.mark.slow
def test_eight_concurrent_workers_complete_every_cell_exactly_once(study_env):
    folder, env = study_env
    spec, _ = _create(folder, env, search=GRID_40, time_scale=0.02, fail_probability=0.2, max_attempts=6)
    results = wait_all(start_workers(spec.name, 8, env))
    assert [r[0] for r in results] == [0] * 8, [r[2][-500:] for r in results if r[0]]

    handle, trials, State = _trials(env, spec.name)
    status = study_status(handle)
    assert (status["complete"], status["failed"], status["waiting"], status["running"]) == (40, 0, 0, 0)
    assert status["duplicates"] == 0
    complete = [t for t in trials if t.state == State.COMPLETE]
    assert sorted(t.user_attrs["cell"] for t in complete) == list(range(40)), "no hole, no duplicate"
    failed = [t for t in trials if t.state == State.FAIL]
    assert failed, "the injected failures happened"
    assert status["retried_cells"] == len({t.user_attrs["cell"] for t in failed})
    assert all(t.state in (State.COMPLETE, State.FAIL) for t in trials)
    workers = Counter(t.user_attrs["worker"] for t in complete)
    assert len(workers) > 1, "the work was shared"

    _, runs = _runs(env, spec.name)
    by_status = Counter(r.info.status for r in runs)
    assert by_status == {"FINISHED": 40, "FAILED": len(failed)}
    retries = [r for r in runs if "retry_of_trial" in r.data.tags]
    assert len(retries) == len(failed)
    cell_of = {t.number: t.user_attrs["cell"] for t in trials}
    assert all(cell_of[int(r.data.tags["retry_of_trial"])] == int(r.data.tags["cell"]) for r in retries)
    # Trials this short fail before their run is made (it is made after the trial started, off its path), so
    # the failed run's id is often not yet recorded when the retry starts; when it is, it names that run.
    status_of = {r.info.run_id: r.info.status for r in runs}
    assert all(status_of[r.data.tags["retry_of_run"]] == "FAILED" for r in retries if "retry_of_run" in r.data.tags)


@pytest.mark.slow
def test_workers_only_claim_cells_with_their_gpu_count(study_env):
    folder, env = study_env
    spec, _ = _create(folder, env, search="num_gpus = [0, 1, 2]\nbatch_size = [128, 256]")
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env, gpus=1))
    assert code == 0, err
    handle, trials, _ = _trials(env, spec.name)
    assert sorted(t.params["num_gpus"] for t in trials) == [1, 1]
    assert study_status(handle)["waiting"] == 4
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, {**env, "CUDA_VISIBLE_DEVICES": "2,3"}))
    assert code == 0, err
    _, runs = _runs(env, spec.name)
    for run in runs:
        gpus = int(run.data.params["num_gpus"])
        assert run.data.tags["gpu_ids"] == {0: "none", 1: "0", 2: "2,3"}[gpus]
    assert sorted(int(r.data.params["num_gpus"]) for r in runs) == [1, 1, 2, 2]


@pytest.mark.slow
def test_a_cell_out_of_attempts_is_failed_with_its_reason(study_env):
    folder, env = study_env
    spec, _ = _create(
        folder, env, search="batch_size = [32, 64, 128, 256, 512, 1024]", fail_probability=0.6, max_attempts=1
    )
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err
    handle, trials, State = _trials(env, spec.name)
    status = study_status(handle)
    assert status["failed"] > 0 and status["complete"] + status["failed"] == 6
    failed = [t for t in trials if t.state == State.FAIL]
    assert all("simulated failure" in t.user_attrs["fail_reason"] for t in failed)
    _, runs = _runs(env, spec.name)
    failed_runs = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed_runs) == len(failed)
    assert all("simulated failure" in r.data.tags["fail_reason"] for r in failed_runs)


@pytest.mark.slow
def test_mlflow_logging_contract(study_env):
    folder, env = study_env
    spec, created = _create(folder, env, search='epochs = [3]\nbatch_size = [128, 256]\naugmentation = ["pre"]')
    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err
    handle, trials, _ = _trials(env, spec.name)
    tracker, runs = _runs(env, spec.name)
    assert tracker.client.get_experiment(created.experiment_id).name == spec.name
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    parent = tracker.client.get_run(handle.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["tornadostudy.role"] == "study"
    by_number = {int(r.data.tags["trial_number"]): r for r in runs}
    on_cells = {row["trial_number"]: row["run_id"] for row in handle.cells.rows(spec.name)}
    for trial in trials:
        run = by_number[trial.number]
        # The run id is on the cell; on the trial too when the run was made before the trial finished.
        assert on_cells[trial.number] == run.info.run_id
        assert trial.user_attrs.get("mlflow_run_id", run.info.run_id) == run.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == handle.parent_run_id
        for key in (
            "study",
            "cell",
            "sampler",
            "host",
            "gpu_ids",
            "version.tornadostudy",
            "version.optuna",
            "info.trainer",
            "info.per_replica_batch",
        ):
            assert key in run.data.tags, key
        params = run.data.params
        for name in ("batch_size", "epochs", "learning_rate", "data_multiplier", "num_gpus", "augmentation"):
            assert params[name] == str(trial.params.get(name, spec.constants.get(name))), name
        assert run.info.run_name == f"bs={params['batch_size']} ep=3 k=1 gpu=0 pre lr=0.001 #{trial.number}"
        for metric in ("loss", "accuracy", "epoch_time_s"):
            history = tracker.metric_history(run.info.run_id, metric)
            assert sorted(m.step for m in history) == [1, 2, 3], metric
        final = run.data.metrics
        for metric in (
            "wall_time_s",
            "time_data_s",
            "time_first_epoch_s",
            "time_steady_epochs_s",
            "time_test_s",
            "test_accuracy",
            "test_auc",
            "test_pod",
            "test_far",
            "test_csi",
            "test_brier",
        ):
            assert metric in final, metric
        assert trial.values[0] == pytest.approx(final["test_auc"])


def test_create_is_once_and_refuses_a_changed_spec(study_env):
    folder, env = study_env
    spec, first = _create(folder, env)
    assert first.created and first.n_cells == 2
    with pytest.raises(UserInputError, match="already exists"):
        create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    again = create_study(spec, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"], exists_ok=True)
    assert not again.created and again.experiment_id == first.experiment_id
    changed = load_spec(write_sim_spec(folder, search="batch_size = [128, 512]"))
    with pytest.raises(UserInputError, match="different spec"):
        create_study(changed, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"], exists_ok=True)


def test_bad_data_writes_nothing(study_env):
    folder, env = study_env
    path = write_sim_spec(folder)
    path.write_text(path.read_text().replace("storms = 200", f'source = "{folder / "nowhere"}"'))
    with pytest.raises(UserInputError, match="does not exist"):
        create_study(load_spec(path), env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"])
    assert not (folder / "study.db").exists() and not (folder / "mlflow.db").exists()


@pytest.mark.slow
def test_tpe_study_spends_exactly_its_budget(study_env):
    folder, env = study_env
    spec, _ = _create(
        folder,
        env,
        sampler="tpe",
        extra_study="n_trials = 7",
        search="learning_rate = { low = 1e-4, high = 1e-2, log = true }\nbatch_size = [128, 256, 512]",
    )
    results = wait_all(start_workers(spec.name, 3, env))
    assert [r[0] for r in results] == [0, 0, 0], [r[2][-300:] for r in results]
    handle, trials, State = _trials(env, spec.name)
    complete = [t for t in trials if t.state == State.COMPLETE]
    assert len(complete) == 7 and study_status(handle)["complete"] == 7
    assert all(1e-4 <= t.params["learning_rate"] <= 1e-2 for t in complete)
    assert len({t.params["learning_rate"] for t in complete}) == 7, "parallel workers explore different points"

    # Its report: the best trials and the search's own figures, no paper grid tables, nothing averaged.
    done = run_cli("report", spec.name, "--out", str(folder / "r"), "--no-log", env=env, cwd=folder)
    assert done.returncode == 0, done.stderr[-1500:]
    text = (folder / "r" / "report.md").read_text()
    assert "Best 7 of 7 trials by test_auc" in text and "(paper " not in text and "(n=" not in text
    figures = {p.name for p in (folder / "r" / "figures").glob("*.png")}
    assert {"optimisation_history.png", "param_importances.png", "slice.png"} <= figures


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_stopped_worker_checkpoints_and_the_retry_resumes_at_that_epoch(study_env, stop):
    import signal
    import time

    folder, env = study_env
    spec, _ = _create(folder, env, search="epochs = [40]\nbatch_size = [128]", time_scale=1.0)
    (proc,) = start_workers(spec.name, 1, env)
    handle = StudyHandle.open(spec.name, env["TORNADOSTUDY_STORAGE"])
    tracker = Tracker(env["MLFLOW_TRACKING_URI"])
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until a few epochs are logged
        runs = tracker.trial_runs(handle.experiment_id)
        if runs and len(tracker.metric_history(runs[0].info.run_id, "loss")) >= 5:
            break
        time.sleep(0.3)
    proc.send_signal(getattr(signal, stop))  # SIGINT: Ctrl-C on a worker started by hand
    ((code, _, err),) = wait_all([proc])
    assert code == 143, err[-600:]
    last = [line for line in err.splitlines() if line.startswith("tornadostudy:")]
    assert len(last) == 1 and "given back after epoch" in last[0] and ", checkpointed;" in last[0], err[-600:]
    handle, trials, State = _trials(env, spec.name)
    assert [t.state for t in trials] == [State.FAIL]
    reason = trials[0].user_attrs["fail_reason"]
    assert re.fullmatch(rf"worker stopped \({stop}\) after epoch \d+, checkpointed", reason), reason
    row = handle.cells.rows(spec.name)[0]
    assert (row["state"], row["attempts"]) == ("waiting", 0), "a stopped attempt does not count"
    (first,) = tracker.trial_runs(handle.experiment_id)
    assert first.info.status == "KILLED"
    stopped_at = len(tracker.metric_history(first.info.run_id, "loss"))
    assert 5 <= stopped_at < 40

    ((code, _, err),) = wait_all(start_workers(spec.name, 1, env))
    assert code == 0, err[-600:]
    handle, trials, State = _trials(env, spec.name)
    done = next(t for t in trials if t.state == State.COMPLETE)
    assert done.user_attrs["info"]["resumed_from_epoch"] == stopped_at
    assert done.user_attrs["info"]["attempts_run"] == 2
    run = tracker.client.get_run(done.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_epoch"] == str(stopped_at)
    steps = sorted(m.step for m in tracker.metric_history(run.info.run_id, "loss"))
    assert steps == list(range(1, 41)), "one continuous curve: every epoch exactly once"
    metrics = done.user_attrs["metrics"]
    parts = ("time_data_s", "time_first_epoch_s", "time_steady_epochs_s", "time_test_s")
    assert metrics["wall_time_s"] == pytest.approx(sum(metrics[p] for p in parts))
    assert not handle.checkpoint_dir(0).exists(), "the checkpoint is removed once the cell is complete"
    status = study_status(handle)
    reasons = {f"worker stopped ({stop}) after epoch N, checkpointed": 1}
    assert (status["retried_cells"], status["rerun_reasons"]) == (1, reasons)


@pytest.mark.slow
def test_a_worker_looks_for_lost_cells_once_per_interval_not_before_every_claim(study_env, monkeypatch):
    import tornadostudy.study.worker as worker_module
    from tornadostudy.study.worker import Worker, WorkerOptions

    folder, env = study_env
    spec, _ = _create(folder, env, search="batch_size = [64, 128, 256, 512]")
    calls = []
    monkeypatch.setattr(worker_module, "reap_lost_workers", lambda handle, tracker, sweep: calls.append(sweep) or 0)
    monkeypatch.setenv("TORNADOSTUDY_REAP_EVERY_S", "3600")
    monkeypatch.setenv("TORNADOSTUDY_SWEEP_EVERY_S", "3600")
    opts = WorkerOptions(spec.name, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"], 0, (), None)
    summary = Worker(opts).run()
    assert len(summary.completed) == 4
    assert len(calls) == 2, "once before the first claim and once before leaving, not once per claim"
    # The first look reads the cells only (its sweep falls within the hour, almost surely later); the last sweeps.
    assert calls[-1] is True


@pytest.mark.slow
def test_a_grid_workers_trials_read_back_through_optuna_as_its_own_records(study_env):
    """Completed and failed trials, written through Optuna's public API, with their reasons."""
    from tornadostudy.study.worker import Worker, WorkerOptions

    folder, env = study_env
    spec, _ = _create(
        folder, env, search="batch_size = [32, 64, 128, 256, 512, 1024]", fail_probability=0.6, max_attempts=1
    )
    worker = Worker(WorkerOptions(spec.name, env["TORNADOSTUDY_STORAGE"], env["MLFLOW_TRACKING_URI"], 0, (), None))
    summary = worker.run()
    assert summary.failed and summary.completed and len(summary.failed) + len(summary.completed) == 6
    _, trials, State = _trials(env, spec.name)
    assert sorted(t.number for t in trials if t.state == State.FAIL) == sorted(summary.failed)
    assert sorted(t.number for t in trials if t.state == State.COMPLETE) == sorted(summary.completed)
    for trial in trials:
        assert trial.system_attrs["grid_id"] == trial.user_attrs["cell"], "GridSampler sees its grid point taken"
        if trial.state == State.FAIL:
            assert "simulated failure" in trial.user_attrs["fail_reason"] and trial.user_attrs["fail_kind"]
            assert trial.datetime_complete is not None
