"""Study specs (``studies/*.toml``): validated once, at load, into frozen objects.

A spec names the study and its sampler, the objective(s), the data, the trainer, training constants
and the search space. Unknown keys are refused with the list of valid ones; every error is one line
naming the file and the key.

Layout::

    [study]      name, sampler = "grid"|"tpe"|"random", seed, n_trials (tpe/random), max_attempts, repeats
    [[objective]] metric, direction
    [data]       source = "synthetic"|<raw NCAR folder>|<prepared folder>, storms, seed, balance, cache,
                 label_variable, label_statistic, label_region, label_threshold, label_comparison
    [trainer]    kind = "keras"|"simulate", evaluate_every_epoch, jit_compile, augment_workers,
                 time_scale, fail_probability, profile, train_samples (the last four: simulate only)
    [training]   constants: epochs, batch_size, learning_rate, data_multiplier, num_gpus, augmentation
    [search]     grid: lists; tpe/random: lists (choices) or {low, high, log, step} ranges
    [[search]]   grid only: several tables, each a grid over the same parameters; the study's cells are the
                 union of their cells (how the paper's Section 6.1 ran: Tables 2-5, 6 and 7 are three grids)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tornadostudy.errors import SpecError

__all__ = [
    "HYPERPARAMETERS",
    "METRICS",
    "DataSpec",
    "Objective",
    "Range",
    "StudySpec",
    "TrainerSpec",
    "load_spec",
    "parse_spec",
]

SAMPLERS = ("grid", "tpe", "random")
TRAINERS = ("keras", "simulate")
# pre: stored pre-augmented sets; live: augmented inside the compiled training step (on the GPU when there is
# one); live_cpu: augmented batch by batch in host worker processes, as the paper's Keras ImageDataGenerator did.
AUGMENTATIONS = ("pre", "live", "live_cpu")
BALANCES = ("none", "oversample", "paper")
# The label rule's choices (tornadostudy/data/labels.py applies the rule).
LABEL_STATISTICS = ("max", "mean")
LABEL_REGIONS = ("mask", "patch")
LABEL_COMPARISONS = (">", ">=")
PROFILES = ("quick", "paper")
DIRECTIONS = ("maximize", "minimize")
# Metrics a trial reports that can be optimised.
METRICS = (
    "test_accuracy",
    "test_auc",
    "test_csi",
    "test_pod",
    "test_far",
    "test_brier",
    "test_loss",
    "wall_time_s",
    "train_loss",
    "train_accuracy",
)
# Hyperparameter → (type, default, check, description of the valid values).
HYPERPARAMETERS: dict[str, tuple[type, Any, Any, str]] = {
    "epochs": (int, 5, lambda v: v >= 1, "a whole number ≥ 1"),
    "batch_size": (int, 128, lambda v: v >= 1, "a whole number ≥ 1"),
    "learning_rate": (float, 1e-3, lambda v: 0 < v < 10, "a number in (0, 10)"),
    "data_multiplier": (int, 1, lambda v: v >= 1, "a whole number ≥ 1"),
    "num_gpus": (int, 0, lambda v: v >= 0, "a whole number ≥ 0 (0 = CPU)"),
    "augmentation": (str, "pre", lambda v: v in AUGMENTATIONS, "'pre', 'live' or 'live_cpu'"),
}


def _fail(where: str, key: str, problem: str) -> SpecError:
    return SpecError(f"{where}: {key}: {problem}")


def _check_keys(where: str, section: str, table: Any, valid: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(where, section, f"must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise _fail(
            where, f"{section}.{unknown[0]}" if section else unknown[0], f"unknown key; valid keys: {', '.join(valid)}"
        )
    return table


def _typed(where: str, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise _fail(where, key, f"{value!r} is not {'a ' + kind.__name__ if kind is not int else 'a whole number'}")
    return value


def _hyper(where: str, key: str, value: Any, name: str | None = None) -> Any:
    kind, _, check, valid = HYPERPARAMETERS[name or key.rsplit(".", 1)[-1]]
    value = _typed(where, key, value, kind)
    if (kind is float and not math.isfinite(value)) or not check(value):
        raise _fail(where, key, f"{value!r} is not valid: give {valid}")
    return value


@dataclass(frozen=True)
class Range:
    """A TPE/random range: float or int, optionally log-scaled or stepped."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str


@dataclass(frozen=True)
class DataSpec:
    source: str = "synthetic"
    storms: int = 3000
    seed: int = 0
    balance: str = "none"
    cache: str | None = None
    # The label rule (tornadostudy/data/labels.py); the defaults are the paper's code's rule.
    label_variable: str = "RVORT1_MAX_future"
    label_statistic: str = "max"
    label_region: str = "mask"
    label_threshold: float = 0.005
    label_comparison: str = ">"

    def label_fields(self) -> dict[str, Any]:
        """The label rule as :class:`tornadostudy.data.labels.LabelRule`'s fields."""
        return {key.removeprefix("label_"): getattr(self, key) for key in _LABEL}


@dataclass(frozen=True)
class TrainerSpec:
    kind: str = "keras"
    evaluate_every_epoch: bool = False
    jit_compile: bool = True
    # live_cpu only: host processes augmenting batches (0: one per CPU this worker may use, less one).
    augment_workers: int = 0
    # simulate only: real seconds slept per modelled second, and the chance a trial raises.
    time_scale: float = 0.0
    fail_probability: float = 0.0
    # simulate only: the cost model ("quick": a fast toy; "paper": fitted to the paper's Tables 2-9), and the
    # size of the 1x training set to model (None: the prepared data's; 138963: the paper's).
    profile: str = "quick"
    train_samples: int | None = None


@dataclass(frozen=True)
class StudySpec:
    name: str
    sampler: str
    seed: int
    objectives: tuple[Objective, ...]
    data: DataSpec
    trainer: TrainerSpec
    constants: dict[str, Any]
    search: dict[str, tuple[Any, ...] | Range]
    n_trials: int | None = None
    max_attempts: int = 3
    repeats: int = 1
    description: str = ""
    # A grid made of several [[search]] tables: each part's values; the cells are the union of the parts' cells.
    parts: tuple[dict[str, tuple[Any, ...]], ...] = ()
    source_path: str | None = field(default=None, compare=False)

    # --- derived -----------------------------------------------------------------------------
    @property
    def grid(self) -> dict[str, list[Any]]:
        """The grid search space (grid studies), with ``repeat`` when repeats > 1."""
        space = {k: list(v) for k, v in self.search.items()}
        if self.repeats > 1:
            space["repeat"] = list(range(self.repeats))
        return space

    @property
    def n_cells(self) -> int:
        """Grid cells (grid) or trial budget (tpe/random)."""
        if self.sampler == "grid":
            return len(self.grid_cells()) if self.parts else math.prod(len(v) for v in self.grid.values())
        return int(self.n_trials or 0)

    def grid_cells(self) -> list[tuple[int, dict[str, Any]]]:
        """Every grid cell as (grid id, full parameter dict with the constants).

        The grid id is the cell's index in the product of :attr:`grid` over the sorted parameter names, as
        Optuna's GridSampler numbers its grid, so Optuna's view of the grid agrees with the cells table. A grid
        of several parts keeps the ids of its union's cells in that product (the ids then have gaps).
        """
        names = sorted(self.grid)
        members = None
        if self.parts:
            repeats = {"repeat": tuple(range(self.repeats))} if self.repeats > 1 else {}
            members = {
                values for part in self.parts for values in itertools.product(*({**part, **repeats}[n] for n in names))
            }
        return [
            (grid_id, {**self.constants, **dict(zip(names, values, strict=True))})
            for grid_id, values in enumerate(itertools.product(*(self.grid[n] for n in names)))
            if members is None or values in members
        ]

    def cells(self) -> list[dict[str, Any]]:
        """Every grid cell as a full parameter dict (constants included)."""
        return [params for _, params in self.grid_cells()]

    def to_dict(self) -> dict[str, Any]:
        """A canonical, JSON-able form (what is stored in the study and compared on re-create)."""
        out = asdict(self)
        out.pop("source_path")
        out["search"] = {
            k: (asdict(v) | {"range": True} if isinstance(v, Range) else list(v))
            for k, v in sorted(self.search.items())
        }
        out["parts"] = [{k: list(v) for k, v in sorted(part.items())} for part in self.parts]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str) -> StudySpec:
        raw = json.loads(text)
        search = {
            k: Range(**{f: v[f] for f in ("low", "high", "log", "step")}) if isinstance(v, dict) else tuple(v)
            for k, v in raw["search"].items()
        }
        return cls(
            **{
                **raw,
                "objectives": tuple(Objective(**o) for o in raw["objectives"]),
                "data": DataSpec(**raw["data"]),
                "trainer": TrainerSpec(**raw["trainer"]),
                "search": search,
                "parts": tuple({k: tuple(v) for k, v in part.items()} for part in raw.get("parts", ())),
            }
        )


_TOP = ("study", "objective", "data", "trainer", "training", "search")
_STUDY = ("name", "description", "sampler", "seed", "n_trials", "max_attempts", "repeats")
_LABEL = ("label_variable", "label_statistic", "label_region", "label_threshold", "label_comparison")
_DATA = ("source", "storms", "seed", "balance", "cache", *_LABEL)
_TRAINER = (
    "kind",
    "evaluate_every_epoch",
    "jit_compile",
    "augment_workers",
    "time_scale",
    "fail_probability",
    "profile",
    "train_samples",
)
_SIMULATE_ONLY = ("time_scale", "fail_probability", "profile", "train_samples")
_RANGE = ("low", "high", "log", "step")


def _parse_study(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    study = _check_keys(where, "study", raw.get("study", {}), _STUDY)
    name = study.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "study.name", 'missing or empty: give the study a name, e.g. name = "quickstart"')
    if any(ord(c) < 32 for c in name) or len(name) > 200:
        raise _fail(where, "study.name", f"{name!r} has control characters or is over 200 characters")
    sampler = study.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise _fail(where, "study.sampler", f"{sampler!r} is not valid: use one of {', '.join(SAMPLERS)}")
    out = {
        "name": name,
        "description": _typed(where, "study.description", study.get("description", ""), str),
        "sampler": sampler,
        "seed": _typed(where, "study.seed", study.get("seed", 0), int),
        "max_attempts": _typed(where, "study.max_attempts", study.get("max_attempts", 3), int),
        "repeats": _typed(where, "study.repeats", study.get("repeats", 1), int),
        "n_trials": None,
    }
    if out["max_attempts"] < 1:
        raise _fail(where, "study.max_attempts", f"{out['max_attempts']} must be ≥ 1")
    if out["repeats"] < 1:
        raise _fail(where, "study.repeats", f"{out['repeats']} must be ≥ 1")
    if sampler == "grid":
        if "n_trials" in study:
            raise _fail(where, "study.n_trials", "a grid study runs every cell once: remove n_trials or use tpe/random")
    else:
        if "n_trials" not in study:
            raise _fail(where, "study.n_trials", f"missing: a {sampler} study needs a trial budget, e.g. n_trials = 50")
        out["n_trials"] = _typed(where, "study.n_trials", study["n_trials"], int)
        if out["n_trials"] < 1:
            raise _fail(where, "study.n_trials", f"{out['n_trials']} must be ≥ 1")
        if out["repeats"] != 1:
            raise _fail(where, "study.repeats", "repeats apply to grid studies only")
    return out


def _parse_objectives(where: str, raw: Any) -> tuple[Objective, ...]:
    if raw is None:
        return (Objective("test_auc", "maximize"),)
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "objective", "must be one or more [[objective]] tables with metric and direction")
    out = []
    for i, entry in enumerate(raw):
        key = f"objective[{i}]"
        entry = _check_keys(where, key, entry, ("metric", "direction"))
        metric, direction = entry.get("metric"), entry.get("direction", "maximize")
        if metric not in METRICS:
            raise _fail(where, f"{key}.metric", f"{metric!r} is not valid: use one of {', '.join(METRICS)}")
        if direction not in DIRECTIONS:
            raise _fail(where, f"{key}.direction", f"{direction!r} is not valid: use maximize or minimize")
        out.append(Objective(metric, direction))
    if len({o.metric for o in out}) != len(out):
        raise _fail(where, "objective", "the same metric is listed twice")
    return tuple(out)


def _parse_data(where: str, raw: Any) -> DataSpec:
    data = _check_keys(where, "data", raw if raw is not None else {}, _DATA)
    spec = DataSpec(
        source=_typed(where, "data.source", data.get("source", "synthetic"), str),
        storms=_typed(where, "data.storms", data.get("storms", 3000), int),
        seed=_typed(where, "data.seed", data.get("seed", 0), int),
        balance=_typed(where, "data.balance", data.get("balance", "none"), str),
        cache=_typed(where, "data.cache", data["cache"], str) if "cache" in data else None,
        **{key: _typed(where, f"data.{key}", data[key], type(getattr(DataSpec, key))) for key in _LABEL if key in data},
    )
    if spec.storms < 10:
        raise _fail(where, "data.storms", f"{spec.storms} is too few: give at least 10 (3000 for a quick study)")
    if spec.balance not in BALANCES:
        raise _fail(where, "data.balance", f"{spec.balance!r} is not valid: use one of {', '.join(BALANCES)}")
    for key, valid in (
        ("label_statistic", LABEL_STATISTICS),
        ("label_region", LABEL_REGIONS),
        ("label_comparison", LABEL_COMPARISONS),
    ):
        if getattr(spec, key) not in valid:
            raise _fail(where, f"data.{key}", f"{getattr(spec, key)!r} is not valid: use one of {', '.join(valid)}")
    if not math.isfinite(spec.label_threshold):
        raise _fail(where, "data.label_threshold", f"{spec.label_threshold} is not a finite number: give e.g. 0.005")
    if not spec.label_variable:
        raise _fail(where, "data.label_variable", "empty: give a per-pixel variable such as RVORT1_MAX_future")
    if spec.source != "synthetic" and "storms" in data:
        raise _fail(where, "data.storms", 'only applies to source = "synthetic"')
    return spec


def _parse_trainer(where: str, raw: Any) -> TrainerSpec:
    trainer = _check_keys(where, "trainer", raw if raw is not None else {}, _TRAINER)
    kind = trainer.get("kind", "keras")
    if kind not in TRAINERS:
        raise _fail(where, "trainer.kind", f"{kind!r} is not valid: use one of {', '.join(TRAINERS)}")
    spec = TrainerSpec(
        kind=kind,
        evaluate_every_epoch=_typed(
            where, "trainer.evaluate_every_epoch", trainer.get("evaluate_every_epoch", False), bool
        ),
        jit_compile=_typed(where, "trainer.jit_compile", trainer.get("jit_compile", True), bool),
        time_scale=_typed(where, "trainer.time_scale", trainer.get("time_scale", 0.0), float),
        fail_probability=_typed(where, "trainer.fail_probability", trainer.get("fail_probability", 0.0), float),
        augment_workers=_typed(where, "trainer.augment_workers", trainer.get("augment_workers", 0), int),
        profile=_typed(where, "trainer.profile", trainer.get("profile", "quick"), str),
        train_samples=(
            _typed(where, "trainer.train_samples", trainer["train_samples"], int)
            if "train_samples" in trainer
            else None
        ),
    )
    if kind != "simulate" and any(key in trainer for key in _SIMULATE_ONLY):
        raise _fail(where, "trainer", f'{", ".join(_SIMULATE_ONLY)} only apply to kind = "simulate"')
    if spec.profile not in PROFILES:
        raise _fail(where, "trainer.profile", f"{spec.profile!r} is not valid: use one of {', '.join(PROFILES)}")
    if spec.train_samples is not None and spec.train_samples < 1:
        raise _fail(where, "trainer.train_samples", f"{spec.train_samples} must be ≥ 1 (the paper's: 138963)")
    if not 0 <= spec.augment_workers <= 256:
        raise _fail(where, "trainer.augment_workers", f"{spec.augment_workers} is out of range: use 0 (auto) … 256")
    if not 0 <= spec.time_scale <= 10:
        raise _fail(where, "trainer.time_scale", f"{spec.time_scale} is out of range: use 0 … 10")
    if not 0 <= spec.fail_probability < 1:
        raise _fail(where, "trainer.fail_probability", f"{spec.fail_probability} is out of range: use 0 ≤ p < 1")
    return spec


def _parse_range(where: str, key: str, table: dict[str, Any], sampler: str) -> Range:
    _check_keys(where, key, table, _RANGE)
    if sampler == "grid":
        raise _fail(where, key, "a grid study needs a list of values, not a range: use tpe or random for ranges")
    if "low" not in table or "high" not in table:
        raise _fail(where, key, "a range needs low and high")
    name = key.rsplit(".", 1)[-1]
    if HYPERPARAMETERS[name][0] is str:
        raise _fail(where, key, "a text parameter takes a list of choices, not a range")
    low, high = _hyper(where, f"{key}.low", table["low"], name), _hyper(where, f"{key}.high", table["high"], name)
    if low > high:
        raise _fail(where, key, f"low {low} > high {high}: swap them")
    log = _typed(where, f"{key}.log", table.get("log", False), bool)
    if log and low <= 0:
        raise _fail(where, f"{key}.low", "a log range needs low > 0")
    step = table.get("step")
    if step is not None:
        step = _typed(where, f"{key}.step", step, type(low))
        if step <= 0 or log:
            raise _fail(where, f"{key}.step", "step must be > 0 and cannot be combined with log = true")
    return Range(low, high, log, step)


def _parse_parts(where: str, raw: list, sampler: str, constants: dict[str, Any]) -> tuple[dict, tuple[dict, ...]]:
    """``[[search]]``: several grids over the same parameters; returns (each parameter's values in any part, parts)."""
    if sampler != "grid":
        raise _fail(where, "search", "several [[search]] tables make a union of grids: only a grid study has them")
    if not raw:
        raise _fail(where, "search", "give at least one [[search]] table")
    parts = tuple(_parse_search(where, part, sampler, constants, f"search[{i}]") for i, part in enumerate(raw))
    names = set(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if set(part) != names:
            odd = sorted(set(part) ^ names)[0]
            raise _fail(
                where,
                f"search[{i}].{odd}",
                "every [[search]] table must list the same parameters "
                f"({', '.join(sorted(names))}): give one value where a part fixes it",
            )
    hull = {name: tuple(dict.fromkeys(v for part in parts for v in part[name])) for name in sorted(names)}
    return hull, parts


def _parse_search(where: str, raw: Any, sampler: str, constants: dict[str, Any], section: str = "search") -> dict:
    search = _check_keys(where, section, raw if raw is not None else {}, tuple(HYPERPARAMETERS))
    out: dict[str, Any] = {}
    for name, value in search.items():
        key = f"{section}.{name}"
        if name in constants:
            raise _fail(where, key, "also set in [training]: a parameter is either constant or searched, remove one")
        if isinstance(value, dict):
            out[name] = _parse_range(where, key, value, sampler)
            continue
        if not isinstance(value, list):
            raise _fail(where, key, "must be a list of values (or a {low, high} range for tpe/random)")
        if not value:
            raise _fail(where, key, "empty list: give at least one value")
        values = tuple(_hyper(where, key, v) for v in value)
        if len(set(values)) != len(values):
            raise _fail(where, key, f"{list(values)} lists a value twice")
        out[name] = values
    if (
        sampler != "grid"
        and "num_gpus" in out
        and not (isinstance(out["num_gpus"], tuple) and len(out["num_gpus"]) == 1)
    ):
        raise _fail(where, "search.num_gpus", f"a {sampler} study cannot search GPU counts: set num_gpus in [training]")
    if sampler == "grid" and not out:
        raise _fail(where, section, "a grid study needs at least one searched parameter, e.g. batch_size = [128, 256]")
    return out


def parse_spec(raw: dict[str, Any], where: str = "<spec>") -> StudySpec:
    """Validate a parsed TOML document into a :class:`StudySpec`."""
    _check_keys(where, "", raw, _TOP)
    study = _parse_study(where, raw)
    training = _check_keys(where, "training", raw.get("training", {}), tuple(HYPERPARAMETERS))
    constants = {name: _hyper(where, f"training.{name}", value) for name, value in training.items()}
    raw_search = raw.get("search")
    parts: tuple[dict, ...] = ()
    if isinstance(raw_search, list):
        search, parts = _parse_parts(where, raw_search, study["sampler"], constants)
    else:
        search = _parse_search(where, raw_search, study["sampler"], constants)
    for name, (_, default, _, _) in HYPERPARAMETERS.items():
        if name not in search:
            constants.setdefault(name, default)
    return StudySpec(
        **study,
        objectives=_parse_objectives(where, raw.get("objective")),
        data=_parse_data(where, raw.get("data")),
        trainer=_parse_trainer(where, raw.get("trainer")),
        constants=dict(sorted(constants.items())),
        search=search,
        parts=parts,
        source_path=None,
    )


def load_spec(path: Path | str) -> StudySpec:
    """Read and validate a TOML spec file."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{where}: no such spec file: give the path of a studies/*.toml file") from None
    except OSError as exc:
        raise SpecError(f"{where}: cannot read the spec ({exc.strerror})") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: not valid TOML ({exc}): fix the syntax") from exc
    spec = parse_spec(raw, where)
    return StudySpec(**{**spec.__dict__, "source_path": str(path.resolve())})
