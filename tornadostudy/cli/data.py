"""``tornadostudy data …``: synth, prepare, info."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from tornadostudy.cli.args import date, int_list, positive_int

__all__ = ["add_data_commands"]


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


def add_data_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from pathlib import Path

    data = sub.add_parser("data", help="make, prepare and inspect storm-patch data", parents=[common])
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="{synth,prepare,info}")

    synth = data_sub.add_parser(
        "synth", parents=[common], help="write synthetic storms in the NCAR patch netCDF schema"
    )
    synth.add_argument("--out", type=Path, required=True, help="folder to create")
    synth.add_argument("--storms", type=positive_int, default=121_137, help="number of storms (default: full size)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: the same seed makes the same storms")
    synth.add_argument("--files", type=positive_int, default=None, help="number of files (default: min(100, storms))")
    synth.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    synth.set_defaults(handler=_cmd_data_synth)

    prep = data_sub.add_parser(
        "prepare", parents=[common], help="label, split, standardise and pre-augment NCAR patch files"
    )
    prep.add_argument("--source", type=Path, required=True, help="folder of NCARSTORM_*.nc files")
    prep.add_argument("--out", type=Path, required=True, help="folder to create")
    prep.add_argument("--multipliers", type=int_list(1), default=(1, 2, 4), help="data multipliers k (default 1,2,4)")
    prep.add_argument("--seed", type=int, default=0, help="random seed of balancing and augmentation (default 0)")
    prep.add_argument(
        "--balance",
        choices=("none", "oversample", "paper"),
        default="none",
        help="none: the storms as they are; oversample: tornadic storms copied to about half of the set; "
        "paper: each tornadic storm 18 more times, as the paper did (138,963 samples from the NCAR data)",
    )
    prep.add_argument("--split-date", type=date, default=dt.date(2015, 1, 1), help="first test run date")
    prep.add_argument(
        "--label-variable",
        default="RVORT1_MAX_future",
        help="per-pixel variable the label is computed from (default RVORT1_MAX_future)",
    )
    prep.add_argument(
        "--label-statistic",
        choices=("max", "mean"),
        default="max",
        help="statistic of the variable over the region (default max, the paper's code)",
    )
    prep.add_argument(
        "--label-region",
        choices=("mask", "patch"),
        default="mask",
        help="mask: the storm's pixels only (default); patch: all 32x32 pixels",
    )
    prep.add_argument(
        "--label-threshold",
        type=float,
        default=0.005,
        help="a storm is tornadic when the statistic passes this (default 0.005)",
    )
    prep.add_argument(
        "--label-comparison",
        choices=(">", ">="),
        default=">",
        help="how the statistic is compared with the threshold (default >)",
    )
    prep.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    prep.set_defaults(handler=_cmd_data_prepare)

    info = data_sub.add_parser("info", parents=[common], help="describe a raw or prepared data folder")
    info.add_argument("folder", type=Path, help="a folder of patch files or a prepared folder")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=_cmd_data_info)
