"""The ``tornadostudy`` command line: parse, call the library, turn errors into one line.

Kept thin and light: every command imports what it needs when it runs, so ``--help`` never pulls in
TensorFlow, MLflow, Optuna or SQLAlchemy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence

from tornadostudy.errors import TornadoStudyError, UserInputError

__all__ = ["build_parser", "main"]

PROG = "tornadostudy"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line naming the option and the fix, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserInputError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 1")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers, e.g. 1,2,4"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("empty list: give e.g. 1,2,4")
    bad = [v for v in values if v < 1]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]} is < 1: every data multiplier must be ≥ 1, e.g. 1,2,4")
    return values


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2015-01-01") from None


# --- data -------------------------------------------------------------------------------------


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from tornadostudy.data.synth import synthesize

    summary = synthesize(args.out, storms=args.storms, seed=args.seed, files=args.files, overwrite=args.overwrite)
    print(
        f"wrote {summary.storms} synthetic storms in {summary.files} files "
        f"({summary.first_date} … {summary.last_date}) to {summary.out}"
    )
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from tornadostudy.data.info import describe, format_text
    from tornadostudy.data.labels import LabelRule
    from tornadostudy.data.prepare import PrepareOptions, prepare

    rule = LabelRule(
        variable=args.label_variable,
        statistic=args.label_statistic,
        region=args.label_region,
        threshold=args.label_threshold,
        comparison=args.label_comparison,
    )
    opts = PrepareOptions(
        source=args.source,
        out=args.out,
        multipliers=args.multipliers,
        seed=args.seed,
        balance=args.balance,
        label_rule=rule,
        split_date=args.split_date,
        overwrite=args.overwrite,
    )
    prepare(opts)
    print(format_text(describe(args.out)))
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from tornadostudy.data.info import describe, format_text

    info = describe(args.folder)
    print(json.dumps(info) if args.json else format_text(info))
    return 0


def _add_data_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from pathlib import Path

    data = sub.add_parser("data", help="make, prepare and inspect storm-patch data", parents=[common])
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="{synth,prepare,info}")

    synth = data_sub.add_parser(
        "synth", parents=[common], help="write synthetic storms in the NCAR patch netCDF schema"
    )
    synth.add_argument("--out", type=Path, required=True, help="folder to create")
    synth.add_argument("--storms", type=_positive_int, default=121_137, help="number of storms (default: full size)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--files", type=_positive_int, default=None, help="number of files (default: min(100, storms))")
    synth.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    synth.set_defaults(handler=_cmd_data_synth)

    prep = data_sub.add_parser(
        "prepare", parents=[common], help="label, split, standardise and pre-augment NCAR patch files"
    )
    prep.add_argument("--source", type=Path, required=True, help="folder of NCARSTORM_*.nc files")
    prep.add_argument("--out", type=Path, required=True, help="folder to create")
    prep.add_argument("--multipliers", type=_int_list, default=(1, 2, 4), help="data multipliers k (default 1,2,4)")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--balance", choices=("none", "oversample"), default="none")
    prep.add_argument("--split-date", type=_date, default=dt.date(2015, 1, 1), help="first test run date")
    prep.add_argument("--label-variable", default="RVORT1_MAX_future")
    prep.add_argument("--label-statistic", choices=("max", "mean"), default="max")
    prep.add_argument("--label-region", choices=("mask", "patch"), default="mask")
    prep.add_argument("--label-threshold", type=float, default=0.005)
    prep.add_argument("--label-comparison", choices=(">", ">="), default=">")
    prep.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    prep.set_defaults(handler=_cmd_data_prepare)

    info = data_sub.add_parser("info", parents=[common], help="describe a raw or prepared data folder")
    info.add_argument("folder", type=Path)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=_cmd_data_info)


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
    _add_data_commands(sub, common)
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
