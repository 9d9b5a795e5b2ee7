import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli
from tornadostudy.cli import main

HEAVY = ("tensorflow", "keras", "mlflow", "optuna", "sqlalchemy")


def test_help_lists_commands_without_heavy_imports():
    code = (
        "import sys, contextlib, io\n"
        "from tornadostudy.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(buf.getvalue())\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "data" in out and "usage: tornadostudy" in out
    assert "HEAVY []" in out


def test_console_script_help_and_version():
    result = run_cli("--help")
    assert result.returncode == 0 and "data" in result.stdout
    assert run_cli("--version").stdout.startswith("tornadostudy ")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["data", "prepare", "--source", "x"], "--out"),
        (["data", "prepare", "--source", "x", "--out", "y", "--multipliers", "0,2"], "--multipliers"),
        (["data", "prepare", "--source", "x", "--out", "y", "--label-statistic", "median"], "--label-statistic"),
        (["data", "prepare", "--source", "x", "--out", "y", "--split-date", "2015-13-01"], "--split-date"),
        (["data", "synth", "--out", "y", "--storms", "-3"], "--storms"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tornadostudy: error:")
    assert needle in err


def test_library_errors_are_one_line_and_debug_shows_traceback(tmp_path):
    result = run_cli("data", "info", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr
    debug = run_cli("--debug", "data", "info", str(tmp_path / "missing"))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.slow
def test_end_to_end_3000_storms(tmp_path):
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    synth = run_cli("data", "synth", "--out", str(raw), "--storms", "3000", "--seed", "1")
    assert synth.returncode == 0, synth.stderr
    assert len(list(raw.glob("NCARSTORM_*.nc"))) == 100
    prep = run_cli("data", "prepare", "--source", str(raw), "--out", str(prepared), "--multipliers", "1,2,4")
    assert prep.returncode == 0, prep.stderr
    info = run_cli("data", "info", str(prepared), "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["train"] + data["test"] == 3000
    assert 0.03 <= (data["train_positives"] + data["test_positives"]) / 3000 <= 0.08
    assert data["channels"] == ["REFL_COM_curr", "U10_curr", "V10_curr"]
    assert data["multipliers"] == [1, 2, 4]
    raw_info = json.loads(run_cli("data", "info", str(raw), "--json").stdout)
    assert (raw_info["train"], raw_info["test"]) == (data["train"], data["test"])
    assert raw_info["train_positives"] == data["train_positives"]


def _commands():
    """(name, parser) for every command and subcommand, e.g. ('data prepare', parser)."""
    import argparse

    from tornadostudy.cli.main import build_parser

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    inner = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
                    yield from walk(sub, f"{prefix} {name}".strip()) if inner else [(f"{prefix} {name}".strip(), sub)]

    return list(walk(build_parser(), ""))


COMMON = {"-h", "--help", "--debug", "-v", "--verbose"}


def test_every_option_of_every_command_has_help_text():
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in _commands()
        for action in parser._actions
        if not set(action.option_strings) & COMMON and not (action.help or "").strip()
    ]
    assert missing == []


def test_the_readme_synopsis_names_every_option_and_no_other():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## Commands", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    synopsis: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("tornadostudy "):
            words = line.split()
            current = " ".join(words[1:3]) if words[1] in ("data", "tracking") else words[1]
            synopsis[current] = set()
        if current:
            synopsis[current] |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    for name, parser in _commands():
        options = {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - COMMON
        assert synopsis.get(name) == options, f"README synopsis of '{name}' differs from its --help"
