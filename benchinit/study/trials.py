"""The trials of a tuned study: the points a range is sampled at (an unscrambled Halton
sequence, scipy's, without its first point), their count, and the resolved [tune] table.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from benchinit.study.tuning import TuneSpec, Value, draw


def trial_count(spec: TuneSpec) -> int:
    """How many trials :func:`trials` makes, without making them: the lists' product
    (from their lengths alone) times the distinct range points (at most ``MAX_TRIALS``,
    drawn and checked when the study loaded)."""
    lists = math.prod(len(p.values) for p in spec.params if not p.is_range)
    return lists * len(draw([p for p in spec.params if p.is_range]))


def trials(spec: TuneSpec) -> list[dict[str, Value]]:
    """Every trial as ``{"<axis>.<param>": value}``: the lists' product x the range points."""
    lists = [p for p in spec.params if not p.is_range]
    ranges = [p for p in spec.params if p.is_range]
    order = [p.key for p in spec.params]
    out = []
    for chosen in itertools.product(*(p.values for p in lists)):
        for point in draw(ranges):
            values = {
                **dict(zip((p.key for p in lists), chosen, strict=True)),
                **dict(zip((p.key for p in ranges), point, strict=True)),
            }
            out.append({k: values[k] for k in order})
    return out


def resolved_table(spec: TuneSpec) -> dict[str, Any]:
    """The ``[tune]`` table with defaults filled in, as the resolved study.toml holds it."""
    table: dict[str, Any] = {}
    for p in spec.params:
        if p.is_range:
            table[p.key] = {"log_range" if p.log else "range": [p.low, p.high], "trials": p.trials}
        else:
            table[p.key] = list(p.values)
    transfer = {"transfer": dict([spec.transfer])} if spec.transfer else {}
    return {**table, "select": spec.select, "seeds": len(spec.seeds), **transfer}
