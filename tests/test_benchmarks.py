"""Benchmarks are not tests (no timing is asserted), but their --quick modes must keep running."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.slow


def _run(name: str) -> str:
    result = subprocess.run([sys.executable, str(BENCH / name), "--quick"], capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio=") and float(last.split("=")[1]) > 0
    return result.stdout


@pytest.mark.tf
def test_training_benchmark_runs():
    out = _run("bench_training.py")
    assert "baseline" in out and "tornadostudy" in out


def test_data_benchmark_runs():
    out = _run("bench_data.py")
    assert "tornadostudy prepare" in out and "baseline (in memory)" in out
