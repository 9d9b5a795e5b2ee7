"""The orchestration benchmark's --quick mode keeps running (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_orchestration_benchmark_runs(postgres_url):  # the fixture proves PostgreSQL is reachable
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_orchestration.py"
    # Through the relay (a study database a network away): the same run, and the relay kept from rotting.
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--delay-ms", "0.2"], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "PostgreSQL through a relay (0.2 ms each way; SELECT 1: " in result.stdout, lines[:3]
    assert any("tornadostudy" in line for line in lines) and lines[-1].startswith("ratio=")
    assert "CPU ms" in result.stdout and "server ms" in result.stdout
    ours = next(line for line in lines if " tornadostudy " in line).split()
    assert ours[3:6] == ["0", "0", "0"], f"tornadostudy: failed workers, duplicates, holes: {ours}"
