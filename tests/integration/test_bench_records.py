"""The trial-records benchmark's --quick mode keeps running on PostgreSQL, its default (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


def test_records_benchmark_runs_on_postgresql(postgres_url):  # the fixture proves PostgreSQL is reachable
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_records.py"
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("database: postgresql; 10 trials per side")
    assert [line.split()[0] for line in lines[2:4]] == ["optuna", "tornadostudy"]
    assert lines[-1].startswith("ratio=") and float(lines[-1].split("=")[1]) > 0
