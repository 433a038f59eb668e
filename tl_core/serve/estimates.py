"""How long a run will take: each experiment's declared cost, scaled by this machine's history.

Every experiment declares `cost(record) -> units` (`contract.Experiment.cost`, usually built with `units`); the
estimate is units × a rate in seconds per unit: the median of this history's last finished runs of the kind
(else of the experiment it borrows a rate from, `rate_of`), else the reference laptop's (`reference`).
"""
from __future__ import annotations

import json
import math
import statistics
from functools import lru_cache
from pathlib import Path

from tl_core import store
from tl_core.i18n import tr


def _count(value, default: float) -> float:
    """A count from a recorded setting: a number, the sum of a list of them (a sweep's shots), or `default` (for
    "all", None, a bool or an empty list)."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return sum(_count(v, default) for v in value) or default
    return default


def units(seeds=1, epochs=1, conditions=1, images=None, image_size=None, cells=1) -> float:
    """A run's cost in arbitrary units: seeds × epochs × conditions × images per class (20 when "all") ×
    (image size / 64)² × the cells of a grid. Only ratios matter: seconds = units × a rate."""
    size = (_count(image_size, 64) / 64) ** 2
    return max(_count(seeds, 1) * _count(epochs, 1) * _count(conditions, 1) * _count(images, 20) * size
               * _count(cells, 1), 1e-9)


REFERENCES = Path(__file__).with_name("references.json")


@lru_cache(maxsize=1)
def _references() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(REFERENCES.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def references() -> dict[str, float]:
    """Seconds per cost unit of each experiment's default run on the reference laptop (an idle 2-core machine),
    measured by bench/references.py: what a first run of a kind is estimated from."""
    return dict(_references())


def reference(kind: str) -> float | None:
    """The reference rate of `kind`: its own (`Experiment.reference`, e.g. the lab's per-backbone model), else the
    measured table's, else its lender's."""
    exp = _experiment(kind)
    if exp is None:
        return None
    if exp.reference is not None:
        return exp.reference
    if kind in _references():
        return _references()[kind]
    return reference(exp.rate_of) if exp.rate_of else None


def _experiment(kind: str):
    from tl_core import experiments

    try:
        return experiments.command(kind)
    except (ValueError, StopIteration, ImportError):
        return None


def cost(kind: str, config: dict) -> float:
    """The cost of a run of experiment `kind` with this recorded config (1 unit when it declares none)."""
    exp = _experiment(kind)
    return exp.cost(config) if exp is not None and exp.cost is not None else 1.0


def estimate(kind: str, config: dict, db: store.Store | None = None) -> tuple[float | None, int]:
    """(seconds, runs it is based on): the median rate (seconds per cost unit) of the last 20 finished runs of
    this kind (else of the experiment whose rate it borrows) in this history, times the run's cost; with no such
    run, the reference laptop's rate, else (None, 0)."""
    exp = _experiment(kind)
    if exp is None or exp.cost is None:
        return None, 0
    runs = []
    if db is not None:
        try:
            for k in (kind, exp.rate_of):
                if k and not runs:
                    runs = [r for r in db.runs(kind=k) if r.status == "finished" and r.seconds][:20]
        except OSError:
            runs = []
    if runs:
        rate = statistics.median(r.seconds / cost(r.kind, r.config) for r in runs)
        return rate * exp.cost(config), len(runs)
    ref = reference(kind)
    return (ref * exp.cost(config), 0) if ref else (None, 0)


def about(seconds: float | None) -> str:
    """'about 40 s', 'about 3 min', or 'no estimate yet'."""
    if seconds is None or not math.isfinite(seconds):
        return tr("no estimate yet")
    if seconds < 1:
        return tr("under a second")
    if seconds < 90:
        return tr("about {n} s", n=max(5, round(seconds / 5) * 5) if seconds >= 10 else round(seconds))
    return tr("about {n} min", n=round(seconds / 60))
