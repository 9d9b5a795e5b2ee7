"""The trial-records benchmark's --quick mode keeps running on PostgreSQL, its default (no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("options, where", [([], "postgresql;"), (["--delay-ms", "0.5"], "postgresql through a relay")])
def test_records_benchmark_runs_on_postgresql(postgres_url, options, where):  # the fixture: PostgreSQL is reachable
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_records.py"
    result = subprocess.run([sys.executable, str(script), "--quick", *options], capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"database: {where}") and "; 10 trials per side" in lines[0], lines[0]
    assert [line.split()[0] for line in lines[2:4]] == ["optuna", "tornadostudy"]
    assert lines[-1].startswith("ratio=") and float(lines[-1].split("=")[1]) > 0
