"""A CPU grid (num_gpus = 0) of real Keras trials on the paper's balance, with all three augmentation
mechanisms: every mode trains on the same rows, and the report makes the paper's CPU tables (2 and 4)."""

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SPEC = """
[study]
name = "cpu-grid"
sampler = "grid"

[data]
storms = 400
balance = "paper"

[trainer]
kind = "keras"
jit_compile = false
augment_workers = 1

[training]
epochs = 1
num_gpus = 0

[search]
batch_size = [256]
data_multiplier = [1, 2]
augmentation = ["pre", "live", "live_cpu"]
"""


def test_a_cpu_grid_with_every_augmentation_mode_runs_and_reports_tables_2_and_4(study_env):
    folder, env = study_env
    (folder / "cpu.toml").write_text(SPEC)
    done = run_cli("run", "cpu.toml", "--workers", "1", env=env, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6/6" in done.stdout
    noise = ("Could not find cuda drivers", "cuInit", "absl::InitializeLog")
    assert not any(n in done.stderr + done.stdout for n in noise), "no CUDA noise on a machine without GPUs"

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("cpu-grid")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "cell" in r.data.tags]
    assert len(runs) == 6
    by_k: dict[str, set] = {}
    for run in runs:
        p = run.data.params
        by_k.setdefault(p["data_multiplier"], set()).add((p["train_samples"], p["train_positive_fraction"]))
    # pre, live and live_cpu see the same samples per epoch at the same positive fraction, about half
    assert all(len(seen) == 1 for seen in by_k.values()), by_k
    (k1,), (k2,) = by_k["1"], by_k["2"]
    assert int(k2[0]) == 2 * int(k1[0]) and 0.35 < float(k1[1]) < 0.65

    report = run_cli("report", "cpu-grid", "--paper", "--no-plots", env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    text = report.stdout
    assert "(paper Tables 2–5) — augmentation=pre, num_gpus=0, epochs=1" in text
    assert "(paper Tables 2–5) — augmentation=live_cpu, num_gpus=0, epochs=1" in text
    assert "Wall time, live augmentation ÷ pre-augmented" in text and "live_cpu ÷ pre" in text
