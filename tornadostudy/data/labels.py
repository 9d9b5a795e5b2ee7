"""The tornado label rule: which storms count as tornadic.

The paper's text says "mean of at least 0.008"; the code that produced its data labelled a storm
tornadic when the *maximum* future 1 km vorticity over the storm mask exceeded 0.005. That is the
default here; every part of the rule is configurable and recorded in the prepared manifest.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tornadostudy.errors import UserInputError
from tornadostudy.spec import LABEL_COMPARISONS, LABEL_REGIONS, LABEL_STATISTICS

__all__ = ["COMPARISONS", "REGIONS", "STATISTICS", "LabelRule"]

STATISTICS, REGIONS, COMPARISONS = LABEL_STATISTICS, LABEL_REGIONS, LABEL_COMPARISONS
_COMPARE = {">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class LabelRule:
    variable: str = "RVORT1_MAX_future"
    statistic: str = "max"
    region: str = "mask"
    threshold: float = 0.005
    comparison: str = ">"

    def __post_init__(self) -> None:
        for field, value, valid in (
            ("statistic", self.statistic, STATISTICS),
            ("region", self.region, REGIONS),
            ("comparison", self.comparison, COMPARISONS),
        ):
            if value not in valid:
                raise UserInputError(f"label {field} {value!r} is not valid: use one of {', '.join(valid)}")
        if not isinstance(self.threshold, int | float) or not np.isfinite(self.threshold):
            raise UserInputError(f"label threshold {self.threshold!r} is not a finite number: give e.g. 0.005")
        if not self.variable:
            raise UserInputError("label variable is empty: give a per-pixel variable such as RVORT1_MAX_future")

    def statistic_of(self, field: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The per-patch statistic (shape ``(p,)``) of ``field`` (shape ``(p, row, col)``).

        A patch whose storm mask is empty has no storm pixels: its statistic is -inf, so it is
        never tornadic.
        """
        field = np.asarray(field, dtype=np.float64)
        if self.region == "patch":
            flat = field.reshape(len(field), -1)
            return flat.max(axis=1) if self.statistic == "max" else flat.mean(axis=1)
        if masks is None:
            raise UserInputError("label region 'mask' needs the 'masks' variable: use region 'patch'")
        inside = np.asarray(masks).reshape(len(field), -1) > 0
        flat = field.reshape(len(field), -1)
        count = inside.sum(axis=1)
        if self.statistic == "max":
            stat = np.where(inside, flat, -np.inf).max(axis=1)
        else:
            stat = np.where(inside, flat, 0.0).sum(axis=1) / np.maximum(count, 1)
        return np.where(count > 0, stat, -np.inf)

    def apply(self, field: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """Labels (uint8, 1 = tornadic) for each patch."""
        stat = self.statistic_of(field, masks)
        return _COMPARE[self.comparison](stat, self.threshold).astype(np.uint8)

    def describe(self) -> str:
        return f"{self.statistic}({self.variable} over {self.region}) {self.comparison} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelRule:
        return cls(**data)
