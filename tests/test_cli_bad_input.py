"""Every bad input a user can give, in every command: exit 2, one line naming the problem and the fix, no
traceback, and nothing written (no file made or changed in the working folder, no study or run made).

A study ("sim", simulated trainer) exists in the folder, so commands that need one get past opening it."""

from pathlib import Path

import pytest

from tests.conftest import write_sim_spec
from tornadostudy.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    env = {
        "TORNADOSTUDY_STORAGE": f"sqlite:///{root}/study.db",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        "TORNADOSTUDY_DATA_CACHE": str(root / "cache"),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for key, value in env.items():
            mp.setenv(key, value)
        spec = write_sim_spec(root, "sim")
        assert main(["create", str(spec)]) == 0
        assert main(["create", str(write_sim_spec(root, "gpu", search="num_gpus = [1, 2]"))]) == 0
        write_sim_spec(root, "fresh")  # never created: a bad option must not create it either
        (root / "a-file").write_text("not a folder\n")
        (root / "unknown-key.toml").write_text(spec.read_text().replace("[study]", "[study]\ncolour = 'red'"))
        (root / "broken.toml").write_text("[study\nname = 'x'\n")
        (root / "bad-value.toml").write_text(spec.read_text().replace("batch_size = [128, 256]", "batch_size = [-1]"))
        (root / "unknown-table.toml").write_text(spec.read_text() + "\n[extras]\nx = 1\n")
        (root / "bad-data-key.toml").write_text(spec.read_text().replace("[data]", "[data]\nstorm = 5"))
        yield root, env


# (argv, a phrase the message must hold); {root} is the study's folder.
BAD_INPUTS = [
    # run
    (["run", "{root}/missing.toml"], "missing.toml"),
    (["run", "{root}/unknown-key.toml"], "colour"),
    (["run", "{root}/broken.toml"], "broken.toml"),
    (["run", "{root}/bad-value.toml"], "batch_size"),
    (["run", "{root}/sim.toml", "--workers", "0"], "--workers"),
    (["run", "{root}/sim.toml", "--workers", "two"], "--workers"),
    (["run", "{root}/sim.toml", "--max-trials", "0"], "--max-trials"),
    (["run", "{root}/sim.toml", "--storage", "mysql://u@h/db"], "postgresql"),
    # create
    (["create", "{root}/missing.toml"], "missing.toml"),
    (["create", "{root}/unknown-table.toml"], "extras"),
    (["create", "{root}/bad-data-key.toml"], "storm"),
    (["create", "{root}/sim.toml", "--storage", "ftp://host/db"], "sqlite:///"),
    (["create", "{root}/sim.toml", "--storage", "mysql://u@h/db"], "postgresql"),
    (["create", "{root}/sim.toml", "--storage", "sqlite:////nonexistent-dir/x/study.db"], "nonexistent-dir"),
    (["create", "{root}/fresh.toml", "--tracking-uri", "gopher://x"], "gopher"),
    (["create", "{root}/fresh.toml", "--tracking-uri", "mlflow.db"], "mlflow.db"),
    # worker
    (["worker", "nosuchstudy"], "nosuchstudy"),
    (["worker", "sim", "--gpus", "-1"], "--gpus"),
    (["worker", "sim", "--max-trials", "0"], "--max-trials"),
    (["worker", "gpu", "--gpus", "0"], "no cell for a worker with 0 GPU"),
    (["worker"], "study"),
    # status
    (["status", "nosuchstudy"], "nosuchstudy"),
    (["status", "sim", "--storage", "sqlite:///{root}/other.db"], "other.db"),
    (["status"], "study"),
    # report
    (["report", "nosuchstudy"], "nosuchstudy"),
    (["report", "sim", "--out", "{root}/a-file/report"], "a-file"),
    (["report", "sim", "--out", "/proc/tornadostudy-report"], "/proc/tornadostudy-report"),  # unwritable, even by root
    (["report", "sim", "--format", "pdf"], "--format"),
    (["report", "sim", "--target", "high"], "--target"),
    (["report", "sim", "--rows", "colour", "--cols", "batch_size", "--value", "wall_time_s"], "colour"),
    # submit
    (["submit", "sim"], "--array"),
    (["submit", "sim", "--array", "0"], "--array"),
    (["submit", "sim", "--array", "2", "--gpus", "1,x"], "--gpus"),
    (["submit", "sim", "--array", "2", "--extra", '"--mem=4G'], "--extra"),
    (["submit", "nosuchstudy", "--array", "2", "--dry-run"], "nosuchstudy"),
    # export
    (["export", "nosuchstudy"], "nosuchstudy"),
    (["export", "sim", "--out", "{root}/a-file/trials"], "a-file"),
    # plan
    (["plan", "{root}/missing.toml"], "missing.toml"),
    (["plan", "{root}/sim.toml", "--array", "0"], "--array"),
    # retry
    (["retry", "nosuchstudy"], "nosuchstudy"),
    (["retry", "sim", "--where", "colour=red"], "colour"),
    (["retry", "sim", "--where", "batch_size"], "NAME=VALUE"),
    (["retry", "sim", "--cells", "9999"], "9999"),
    (["retry", "sim", "--cells", "a,b"], "--cells"),
    # data
    (["data", "prepare", "--source", "{root}/no-such-source", "--out", "{root}/p"], "no-such-source"),
    (["data", "prepare", "--source", "{root}", "--out", "{root}/p", "--multipliers", "0"], "--multipliers"),
    (["data", "prepare", "--source", "{root}", "--out", "{root}/p", "--label-threshold", "high"], "--label-threshold"),
    (["data", "synth", "--out", "{root}/a-file"], "a-file"),
    (["data", "synth", "--out", "{root}/s", "--storms", "0"], "--storms"),
    (["data", "info", "{root}/no-such-folder"], "no-such-folder"),
    # tracking
    (["tracking", "sync", "--spool", "{root}/a-file"], "a-file"),
    (["tracking", "bogus"], "bogus"),
    # anything
    (["bogus"], "bogus"),
    (["--no-such-option", "status", "sim"], "--no-such-option"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file with its size and time; SQLite's lock and log files (-wal, -shm) come and go with readers."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm", "-journal"))
    }


def test_the_table_is_long_enough_and_covers_every_command():
    from tornadostudy.cli.main import build_parser

    assert len(BAD_INPUTS) >= 40
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands <= {argv[0] for argv, _ in BAD_INPUTS}


@pytest.mark.parametrize("argv, needle", BAD_INPUTS, ids=[" ".join(a)[:60] for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(folder, argv, needle, capsys, monkeypatch):
    root, env = folder
    monkeypatch.chdir(root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = _snapshot(root)
    code = main([part.format(root=root) for part in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tornadostudy: error:"), err
    assert "Traceback" not in err and "internal error" not in err
    assert needle in lines[0], lines[0]
    assert _snapshot(root) == before, "a bad input wrote something"
