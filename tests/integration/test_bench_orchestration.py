"""The orchestration benchmark's --quick mode keeps running (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_orchestration_benchmark_runs(postgres_url):  # the fixture proves PostgreSQL is reachable
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_orchestration.py"
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any("tornadostudy" in line for line in lines) and lines[-1].startswith("ratio=")
    assert "CPU ms" in result.stdout and "server ms" in result.stdout
    ours = next(line for line in lines if " tornadostudy " in line).split()
    assert ours[3:6] == ["0", "0", "0"], f"tornadostudy: failed workers, duplicates, holes: {ours}"
