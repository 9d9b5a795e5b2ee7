"""``tornadostudy plan SPEC``: what a study will cost on the paper's hardware, before anything is submitted.

Every cell's wall time comes from the paper-fitted cost model (tornadostudy/paper/profile.py). A cell with g
GPUs holds one node's g GPUs (0: a whole CPU node, as the paper's CPU runs) for its wall time, so the study
costs node-hours and GPU-hours per GPU count. ``submit`` starts one array of N tasks per GPU count, and
workers claim the costliest waiting cell first, so each array's makespan is the longest-processing-time
schedule of its cells on N workers; the arrays run side by side.

The training-set size is the spec's ``trainer.train_samples`` when set, else the NCAR data's training set
for the spec's balance (the data need not be on the machine that plans).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from tornadostudy.errors import UserInputError
from tornadostudy.paper import PAPER_TRAIN_SAMPLES
from tornadostudy.paper.profile import paper_seconds
from tornadostudy.spec import Range, StudySpec

__all__ = ["NCAR_TRAIN_SAMPLES", "GpuPlan", "Plan", "plan_study"]

# The NCAR data's 1× training set (76,377 storms, 3,477 tornadic) after each balance mode.
NCAR_STORMS = 121_137
NCAR_TRAIN_SAMPLES = {"none": 76_377, "oversample": 76_377 + 20 * 3_477, "paper": PAPER_TRAIN_SAMPLES}


@dataclass(frozen=True)
class GpuPlan:
    num_gpus: int
    cells: int
    node_hours: float
    gpu_hours: float
    makespan_h: float  # on the plan's array size


@dataclass(frozen=True)
class Plan:
    study: str
    train_samples: int
    samples_from: str
    array: int
    per_gpu: tuple[GpuPlan, ...]

    @property
    def makespan_h(self) -> float:
        return max((g.makespan_h for g in self.per_gpu), default=0.0)

    def text(self) -> str:
        lines = [
            f"plan for study {self.study}: {sum(g.cells for g in self.per_gpu)} cells, 1x training set "
            f"{self.train_samples:,} samples ({self.samples_from}); wall times modelled on the paper's hardware "
            "(2018 CPU node, V100 GPUs)",
            f"{'GPUs':>5}{'cells':>8}{'node-hours':>13}{'GPU-hours':>12}{f'makespan, {self.array} tasks':>22}",
        ]
        for g in self.per_gpu:
            lines.append(
                f"{g.num_gpus:>5}{g.cells:>8}{g.node_hours:>13.2f}{g.gpu_hours:>12.2f}{_hours(g.makespan_h):>22}"
            )
        total_node = sum(g.node_hours for g in self.per_gpu)
        total_gpu = sum(g.gpu_hours for g in self.per_gpu)
        lines.append(
            f"{'all':>5}{sum(g.cells for g in self.per_gpu):>8}{total_node:>13.2f}{total_gpu:>12.2f}"
            f"{_hours(self.makespan_h):>22}"
        )
        lines.append(
            f"(one array of {self.array} tasks per GPU count, side by side: "
            f"tornadostudy submit {self.study} --array {self.array})"
        )
        return "\n".join(lines)


def _hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.2f} h"


def _tpe_cells(spec: StudySpec) -> list[dict]:
    """A TPE/random study's trials are chosen as it runs: plan with configurations drawn uniformly from its space."""
    rng = random.Random(spec.seed)
    cells = []
    for _ in range(spec.n_cells):
        params = dict(spec.constants)
        for name, space in spec.search.items():
            if isinstance(space, Range):
                value = rng.uniform(space.low, space.high)
                params[name] = round(value) if space.is_int else value
            else:
                params[name] = rng.choice(space)
        cells.append(params)
    return cells


def _makespan(seconds: list[float], workers: int) -> float:
    """Costliest first onto the worker that is free soonest."""
    free = [0.0] * min(workers, len(seconds))
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free, default=0.0)


def plan_study(spec: StudySpec, array: int = 1, train_samples: int | None = None) -> Plan:
    if array < 1:
        raise UserInputError(f"--array {array}: give the number of array tasks per GPU count, ≥ 1")
    if train_samples is not None:
        samples, source = train_samples, "--train-samples"
    elif spec.trainer.train_samples is not None:
        samples, source = spec.trainer.train_samples, "trainer.train_samples"
    elif spec.data.source == "synthetic":
        # Synthetic storms split by date as the NCAR data does: scale its training set to the storm count.
        samples = round(NCAR_TRAIN_SAMPLES[spec.data.balance] * spec.data.storms / NCAR_STORMS)
        source = f'about, for {spec.data.storms:,} synthetic storms with balance = "{spec.data.balance}"'
    else:
        samples = NCAR_TRAIN_SAMPLES[spec.data.balance]
        source = f'the NCAR data with balance = "{spec.data.balance}"'
    if samples < 1:
        raise UserInputError(f"--train-samples {samples}: give the 1x training set's size, ≥ 1 (the paper's: 138963)")
    cells = spec.cells() if spec.sampler == "grid" else _tpe_cells(spec)
    by_gpus: dict[int, list[float]] = {}
    for c in cells:
        seconds = paper_seconds(
            epochs=c["epochs"],
            batch_size=c["batch_size"],
            data_multiplier=c["data_multiplier"],
            num_gpus=c["num_gpus"],
            augmentation=c["augmentation"],
            n_train=samples,
        )
        by_gpus.setdefault(int(c["num_gpus"]), []).append(seconds)
    per_gpu = tuple(
        GpuPlan(g, len(s), sum(s) / 3600, sum(s) * max(g, 0) / 3600, _makespan(s, array) / 3600)
        for g, s in sorted(by_gpus.items())
    )
    return Plan(spec.name, samples, source, array, per_gpu)
