"""tracking/mlflow-server.sh: the server it starts runs no MLflow job runner, and `stop` leaves no process behind."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


def _processes_of(port: str) -> dict[int, str]:
    """Every process whose command line names the server's port (the server, gunicorn and its workers), or
    whose parent is one of those (MLflow's job runner and its consumers name no port)."""
    table = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        table[int(proc.name)] = (ppid, cmdline)
    ours = {pid for pid, (_, cmdline) in table.items() if "mlflow" in cmdline and port in cmdline}
    while more := {pid for pid, (ppid, _) in table.items() if ppid in ours and pid not in ours}:
        ours |= more
    return {pid: table[pid][1] for pid in ours}


def test_the_server_runs_no_job_runner_and_stops_whole(mlflow_control):
    port = mlflow_control.env["MLFLOW_PORT"]
    running = _processes_of(port)
    assert any("gunicorn" in cmdline for cmdline in running.values()), running
    assert not [c for c in running.values() if "mlflow.server.jobs" in c or "huey" in c], running
    mlflow_control.stop()
    assert _processes_of(port) == {}
