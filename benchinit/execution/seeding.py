"""Seeds until decided: after each round, which configurations' intervals are still wider
than the target, and how many seeds each runs next (``[study] seeds = "auto"`` or
``{half_width = 0.005, min = 3, max = 20}``: benchinit.study.settings.SeedRule; the rounds are
run by benchinit.execution.runner).

Per configuration, after each round:

- its interval is the one the report, the terminal summary and compare use: a 95%
  Student-t interval of the study's main metric over its seeds that finished ``ok``
  (benchinit.analysis.stats.t_half_widths; not clipped to the metric's range);
- **narrow**: the interval's half-width is at most the target (``half_width``, or
  ``relative_half_width`` x |mean|): it stops;
- **growing**: wider than the target and fewer than ``max`` seeds: its next round runs
  seeds n..2n-1 (doubling, capped at ``max``);
- **max**: still wider at ``max`` seeds: it stops there;
- **unfinished**: fewer than 2 of its seeds finished ``ok``, so it has no interval: it stops.
  Diverged and failed seeds never narrow an interval (they have no value), and more seeds
  of a configuration that fails or diverges on nearly every seed buy failures, not
  precision; a configuration whose every seed fails stops after its first round. One with
  2 or more finished seeds grows as any other, its failures counted beside it.

Why the width, never the verdict or the mean: the width depends on the seeds' spread only,
which for normal noise is independent of their mean, so where a configuration stops says
little about where its mean lies. Stopping when a test turns significant ("optional
stopping") picks the seeds whose mean happened to stray: in ``tests/test_seeding.py``,
configurations with no true effect, looked at after 3, 6, 12 and 20 seeds and stopped at
the first significant t-test, are called significant in about 15% of draws instead of 5%,
while the width rule's final 95% intervals cover the true mean in about 92%. The width
rule is not exact either: a configuration whose first 3 seeds happen to agree stops with an
interval that is too narrow (such intervals cover about 76%), the known small-sample
shortfall of fixed-width sequential intervals (Chow and Robbins 1965); it shrinks as ``min``
grows (93.5% at ``min = 5``).

Why doubling: a configuration reaches ``max`` in ceil(log2(max/min)) rounds (3, 6, 12, 20:
three rounds after the first), and runs at most twice the seeds the target needed (or
``max``). Each round ends by waiting for its slowest stack, and a configuration's new
seeds train together as stacked members, so few large rounds beat many small ones (``+1``
would take 17 rounds from 3 to 20 seeds). A count predicted from the spread,
``n (half / target)^2``, would save seeds when the estimate is right, but at 3 seeds the
spread is known only to within a factor of about 3.

Resumable: each decision reads only the stored records of the configuration's seeds
0..n-1 (never other seeds a folder may hold), so a rerun, or a killed run run again,
replays the same decisions and reaches the same seed counts, computing only what is
missing. A failed seed is computed again on a rerun like any failed cell, so a transient
failure that is fixed may change the decision that followed it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchinit.analysis.stats import t_half_widths
from benchinit.study.seed_record import AT_MAX, GROWING, NARROW, UNFINISHED
from benchinit.study.settings import SeedRule

LEVEL = 0.95  # the intervals the report and compare show


class Decision(NamedTuple):
    """One round's decision, one entry per configuration."""

    counts: npt.NDArray[np.int64]  # the seeds each configuration has after the next round
    half: npt.NDArray[np.float64]  # its interval's half-width now (NaN: no interval)
    target: npt.NDArray[np.float64]  # the half-width it must reach
    state: npt.NDArray[np.str_]  # growing | narrow | max | unfinished


def decide(
    counts: npt.ArrayLike,
    finished: npt.ArrayLike,
    mean: npt.ArrayLike,
    std: npt.ArrayLike,
    rule: SeedRule,
) -> Decision:
    """Per configuration: ``counts`` seeds run, ``finished`` of them ok with ``mean`` and
    ``std`` (ddof 1) of the main metric -> the next seed counts (vectorized)."""
    n = np.asarray(counts, dtype=np.int64)
    ok = np.asarray(finished, dtype=float)
    spread = np.nan_to_num(np.asarray(std, dtype=float))
    with np.errstate(invalid="ignore"):
        half = np.where(ok >= 2, t_half_widths(ok, spread, LEVEL), np.nan)
    if rule.half_width is not None:
        target = np.full(n.shape, rule.half_width)
    else:
        target = (rule.relative_half_width or 0.0) * np.abs(np.asarray(mean, dtype=float))
    wide = (ok >= 2) & ~(half <= target)
    grow = wide & (n < rule.max)
    state = np.where(ok < 2, UNFINISHED, np.where(~wide, NARROW, np.where(grow, GROWING, AT_MAX)))
    following = np.where(grow, np.minimum(2 * n, rule.max), n)
    return Decision(following, half, target, state)


def spread(
    runs: pd.DataFrame, metric: str, members: Sequence[Sequence[str]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(finished, mean, std) of ``metric`` per configuration, from the stored ``runs`` rows
    of its cells (``members[i]``: configuration i's cell ids); a seed counts when its
    status is ``ok`` and its value finite."""
    where = {cid: i for i, ids in enumerate(members) for cid in ids}
    rows = runs[runs["cell"].isin(list(where))] if "cell" in runs else runs.iloc[0:0]
    values = (
        pd.to_numeric(rows[metric], errors="coerce").where(rows["status"] == "ok")
        if metric in rows and len(rows)
        else pd.Series(np.nan, index=rows.index, dtype=float)
    )
    frame = pd.DataFrame({"config": rows["cell"].map(where) if len(rows) else [], "value": values})
    frame = frame[np.isfinite(frame["value"].astype(float))]
    table = frame.groupby("config")["value"].agg(["count", "mean", "std"])
    table = table.reindex(range(len(members)))
    return (
        table["count"].fillna(0).to_numpy(dtype=np.int64),
        table["mean"].to_numpy(dtype=float),
        table["std"].to_numpy(dtype=float),
    )


def record(
    rule: SeedRule,
    metric: str,
    rounds: int,
    labels: Sequence[Mapping[str, Any]],
    finished: npt.ArrayLike,
    decision: Decision,
) -> dict[str, Any]:
    """What ``meta.json`` keeps (``study.seeding``): the rule, the rounds run, and per
    configuration its labels, seeds, finished seeds, half-width, target and state."""

    def number(value: float) -> float | None:  # JSON has no NaN
        return float(value) if np.isfinite(value) else None

    ok = np.asarray(finished)
    configurations = [
        {
            "labels": dict(labels[i]),
            "seeds": int(decision.counts[i]),
            "finished": int(ok[i]),
            "half_width": number(decision.half[i]),
            "target": number(decision.target[i]),
            "state": str(decision.state[i]),
        }
        for i in range(len(labels))
    ]
    return {
        "rule": rule.table(),
        "metric": metric,
        "level": LEVEL,
        "rounds": rounds,
        "configurations": configurations,
    }
