"""Benchmarks are not tests (no timing is asserted), but their --quick modes must keep running."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.slow


def _run(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / name), "--quick", *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio=") and float(last.split("=")[1]) > 0
    return result.stdout


@pytest.mark.tf
def test_training_benchmark_runs():
    out = _run("bench_training.py")
    assert "baseline" in out and "tornadostudy" in out


@pytest.mark.tf
def test_gpu_benchmark_runs():  # on a CPU here: the paper's cells, small
    out = _run("bench_gpu.py")
    assert "paper T3/T5" in out and "paper T7" in out and "backend warm-up" in out and "vs baseline" in out


@pytest.mark.tf
def test_gpu_sharing_benchmark_runs():  # on a CPU here: 1 and 2 workers sharing the device
    out = _run("bench_gpu_sharing.py")
    assert "workers/GPU" in out and "trials/h" in out


def test_gpu_sharing_claims_each_cell_once(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    from bench_gpu_sharing import claim, throughput

    counter = tmp_path / "counter"
    counter.write_text("0")
    assert [claim(counter, 3) for _ in range(5)] == [0, 1, 2, None, None]
    span, per_hour, trial_s = throughput([{"start": 0, "end": 2, "wall_s": 2}, {"start": 1, "end": 4, "wall_s": 3}])
    assert (span, per_hour, trial_s) == (4, 1800, 2.5)


def test_data_benchmark_runs():
    out = _run("bench_data.py")
    assert "tornadostudy prepare" in out and "baseline (in memory)" in out


@pytest.mark.parametrize(
    "ready, total, longest, expected",
    [
        ([0, 0, 0, 0], 100, 5, 25),  # all ready at once: total / W
        ([0, 2], 10, 1, 6),  # the late worker adds M − 2 seconds: M + (M − 2) = 10
        ([0, 10], 10, 2, 10),  # the first worker alone finishes before the second is ready
        ([0, 0], 1, 5, 5),  # the longest cell bounds it
    ],
)
def test_orchestration_bound_counts_only_the_time_each_worker_was_ready(ready, total, longest, expected):
    sys.path.insert(0, str(BENCH))
    try:
        from bench_orchestration import _bound
    finally:
        sys.path.remove(str(BENCH))
    assert _bound(ready, total, longest) == pytest.approx(expected)


def test_the_ideal_schedule_puts_the_longest_cell_first_on_the_worker_free_soonest():
    sys.path.insert(0, str(BENCH))
    try:
        from bench_orchestration import _bound, _ideal
    finally:
        sys.path.remove(str(BENCH))
    assert _ideal([0, 0], [3, 3, 2, 2, 2]) == 7  # 3+2+2 | 3+2: the bound (6) is out of reach
    assert _bound([0, 0], 12, 3) == 6
    assert _ideal([0, 5], [4, 1]) == 5  # the late worker gets nothing: 4 then 1 on the first
    assert _ideal([0, 1], [4, 4]) == 5
