"""Argument types shared by the command groups: each turns bad text into a one-line usage error."""

from __future__ import annotations

import argparse
import datetime as dt

__all__ = ["date", "int_list", "name_list", "positive_int"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be ≥ 1")
    return value


def int_list(minimum: int, example: str = "1,2,4"):
    """An argparse type: a comma-separated list of whole numbers, each ≥ ``minimum``."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of whole numbers, e.g. {example}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"empty list: give e.g. {example}")
        bad = [v for v in values if v < minimum]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]} is < {minimum}: give values ≥ {minimum}, e.g. {example}")
        return values

    return parse


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (parameters or metrics), e.g. ``test_auc,test_csi``."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing: give e.g. test_auc,test_csi")
    return names


def date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2015-01-01") from None
