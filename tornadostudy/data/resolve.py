"""Turn a spec's ``[data]`` table into a prepared folder, preparing and caching it when needed.

Called once, by ``create``, before anything is written to the study database or MLflow; workers only
open the folder it returns (which must be on a file system they all see).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from tornadostudy.data.labels import LabelRule
from tornadostudy.data.prepared import PreparedData, is_prepared
from tornadostudy.errors import DataError

__all__ = ["DEFAULT_CACHE", "cache_root", "resolve_data"]

log = logging.getLogger(__name__)

DEFAULT_CACHE = ".tornadostudy/data"


def cache_root(configured: str | None, base: Path) -> Path:
    """spec ``data.cache`` > ``TORNADOSTUDY_DATA_CACHE`` > ``./.tornadostudy/data`` (relative to ``base``)."""
    root = Path(configured or os.environ.get("TORNADOSTUDY_DATA_CACHE") or DEFAULT_CACHE)
    return root if root.is_absolute() else (base / root)


def _prepare_into(source: Path, out: Path, multipliers: tuple[int, ...], data_spec) -> None:
    from tornadostudy.data.prepare import PrepareOptions, prepare

    log.info("preparing %s → %s (multipliers %s)", source, out, multipliers)
    rule = LabelRule(**data_spec.label_fields())
    prepare(
        PrepareOptions(
            source=source,
            out=out,
            multipliers=multipliers,
            seed=data_spec.seed,
            balance=data_spec.balance,
            label_rule=rule,
            overwrite=True,
        )
    )


def _variant(data_spec, needed: tuple[int, ...]) -> str:
    """The part of a cached folder's name that says how it was prepared (the default label rule adds nothing,
    so folders prepared before the rule could be set keep their names)."""
    rule = LabelRule(**data_spec.label_fields())
    tag = "" if rule == LabelRule() else "-label" + hashlib.sha256(json.dumps(rule.to_dict()).encode()).hexdigest()[:8]
    return f"{data_spec.balance}{tag}-k{'-'.join(map(str, needed))}"


def _check_prepared(source: Path, data_spec, needed: tuple[int, ...]) -> None:
    """A prepared folder named as the study's source must be prepared as the spec says."""
    prepared = PreparedData.open(source)
    manifest = prepared.manifest
    missing = sorted(set(needed) - set(prepared.multipliers))
    if missing:
        raise DataError(
            f"data.source {source}: prepared for multipliers {sorted(prepared.multipliers)} but the study needs "
            f"{missing}: prepare again with --multipliers {','.join(map(str, needed))}"
        )
    if manifest.get("balance") != data_spec.balance:
        raise DataError(
            f"data.balance {data_spec.balance!r}: {source} was prepared with --balance {manifest.get('balance')}: "
            f"set balance = {manifest.get('balance')!r} in the spec or prepare again with --balance {data_spec.balance}"
        )
    if LabelRule.from_dict(manifest["label_rule"]) != LabelRule(**data_spec.label_fields()):
        raise DataError(
            f"data.label_*: {source} was labelled by {manifest.get('label_rule_text')!r}, the spec asks for "
            f"{LabelRule(**data_spec.label_fields()).describe()!r}: make them agree or prepare the folder again"
        )


def resolve_data(data_spec, multipliers: set[int], base: Path | None = None) -> Path:
    """The absolute prepared folder for ``data_spec`` holding every multiplier in ``multipliers``."""
    base = Path(base or os.getcwd())
    needed = tuple(sorted(multipliers | {1}))
    if data_spec.source == "synthetic":
        from tornadostudy.data.synth import synthesize

        root = cache_root(data_spec.cache, base)
        raw = root / f"synthetic-{data_spec.storms}-seed{data_spec.seed}"
        if not any(raw.glob("NCARSTORM_*.nc")):
            log.info("writing %d synthetic storms to %s", data_spec.storms, raw)
            synthesize(raw, storms=data_spec.storms, seed=data_spec.seed, overwrite=True)
        source = raw
        prepared = root / f"{raw.name}-{_variant(data_spec, needed)}"
    else:
        source = Path(data_spec.source)
        source = (source if source.is_absolute() else base / source).resolve()
        if not source.exists():
            raise DataError(
                f"data.source {data_spec.source!r}: {source} does not exist: download the NCAR files "
                '(docs/data.md) or use source = "synthetic"'
            )
        if is_prepared(source):
            _check_prepared(source, data_spec, needed)
            return source
        tag = hashlib.sha256(str(source).encode()).hexdigest()[:8]
        prepared = cache_root(data_spec.cache, base) / (
            f"{source.name}-{tag}-seed{data_spec.seed}-{_variant(data_spec, needed)}"
        )
    if not is_prepared(prepared):
        _prepare_into(source, prepared, needed, data_spec)
    return prepared.resolve()
