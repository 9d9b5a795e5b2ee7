"""The ``tornadostudy`` command line: parse, call the library, turn errors into one line.

Kept thin and light: every command imports what it needs when it runs, so ``--help`` never pulls in
TensorFlow, MLflow, Optuna or SQLAlchemy.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tornadostudy.cli.data import add_data_commands
from tornadostudy.cli.results import add_result_commands
from tornadostudy.cli.study import add_study_commands
from tornadostudy.errors import TornadoStudyError, UserInputError

__all__ = ["build_parser", "main"]

PROG = "tornadostudy"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line naming the option and the fix, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserInputError(f"{message} (see '{self.prog} --help')")


# --- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress")

    from tornadostudy import __version__

    parser = _Parser(prog=PROG, description="Parallel hyperparameter studies of a tornado-prediction CNN.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    add_study_commands(sub, common)
    add_result_commands(sub, common)
    add_data_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.INFO if args.verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return int(args.handler(args) or 0)
    except TornadoStudyError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected system error: still one line, details on --debug
        if debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
