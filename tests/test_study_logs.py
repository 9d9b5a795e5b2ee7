"""The command line's quieter library logs (study/logs.py): Optuna quieted where it is first used."""

import subprocess
import sys

OPEN_AND_CREATE = """
import sys
{quiet}
from tornadostudy.study.storage import optuna_storage
optuna_storage("sqlite:///" + sys.argv[1])
import optuna
optuna.create_study(study_name="s", storage="sqlite:///" + sys.argv[1])  # logs "A new study created" at INFO
print(optuna.logging.get_verbosity())
"""
QUIET = """
from tornadostudy.study.logs import quiet_libraries
quiet_libraries()
assert "optuna" not in sys.modules, "quieting does not import Optuna"
"""


def _run(tmp_path, quiet: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", OPEN_AND_CREATE.format(quiet=quiet), str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        check=True,
    )


def test_optuna_imported_after_quieting_is_quiet_once_its_storage_opens(tmp_path):
    done = _run(tmp_path, QUIET)
    assert done.stdout.strip() == "30"  # optuna.logging.WARNING
    assert "A new study created" not in done.stderr


def test_without_quieting_optuna_keeps_its_own_verbosity(tmp_path):
    done = _run(tmp_path, "")
    assert done.stdout.strip() == "20"  # optuna.logging.INFO
    assert "A new study created" in done.stderr
