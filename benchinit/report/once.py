"""Each panel drawn once: what the report leaves out because another panel already shows it.

A train study measures its layers twice, at initialization and after training. The
initialization does not depend on the optimizer (or on any other training setting): the
init panels of a figure faceted by optimizer and phase are the same panel once per
optimizer. :func:`collapse_init` finds such axes in the numbers themselves (init values equal
to rounding across the axis's values, everything else fixed) and folds the phase and those
axes into one facet, ``stage``: ``init`` once, then ``adam · final``, ``sgd · final``.
:func:`distinct_groups` does the same for whole figures (one per combination of some axes):
a figure whose numbers another figure already shows is left out, and the one kept says
which combinations it stands for. Nothing is assumed about which axes act at init: a plugin
optimizer that changes the initialization keeps its own panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchinit.figures.layout import SEPARATOR

STAGE = "stage"
VALUES = ("mean", "low", "high")


def _same(a: pd.DataFrame, b: pd.DataFrame, on: list[str], columns: Sequence[str]) -> bool:
    """The rows of ``a`` and ``b`` pair one to one on ``on`` with equal ``columns``."""
    if len(a) != len(b):
        return False
    # keys as numpy strings (values of mixed types sort; pandas' astype(str) cost 20x more)
    left = [a[c].to_numpy().astype(str) for c in on]
    right = [b[c].to_numpy().astype(str) for c in on]
    first = np.lexsort(left[::-1]) if on else np.arange(len(a))  # the last key is primary
    second = np.lexsort(right[::-1]) if on else np.arange(len(b))
    if not all((x[first] == y[second]).all() for x, y in zip(left, right, strict=True)):
        return False
    for column in columns:
        x = pd.to_numeric(a[column], errors="coerce").to_numpy(float)[first]
        y = pd.to_numeric(b[column], errors="coerce").to_numpy(float)[second]
        if not np.allclose(x, y, rtol=1e-9, atol=0.0, equal_nan=True):
            return False
    return True


def invariant(frame: pd.DataFrame, axis: str, keys: Sequence[str], columns: Sequence[str]) -> bool:
    """Whether ``frame``'s ``columns`` are the same for every value of ``axis`` (the other
    ``keys`` fixed); False for an axis with one value."""
    others = [k for k in keys if k != axis and k in frame]
    groups = [g for _, g in frame.groupby(axis, sort=False, dropna=False)]
    return len(groups) > 1 and all(_same(groups[0], g, others, columns) for g in groups[1:])


def collapse_init(
    table: pd.DataFrame, facets: list[str], keys: Sequence[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(table, facets, collapsed axes): the init panels once where they do not vary.

    ``table`` is aggregated (``mean``, ``low``, ``high`` per ``keys``) and faceted by
    ``facets``, which end in ``phase``. Returned unchanged when no facet axis is invariant
    at init; else as :func:`staged` makes it, faceted by the other axes and ``stage``."""
    if "phase" not in facets or table.empty:
        return table, facets, []
    init = table[table["phase"] == "init"]
    candidates = [a for a in facets if a != "phase"]
    collapsed = [a for a in candidates if invariant(init, a, keys, VALUES)]
    if not collapsed:
        return table, facets, []
    rest = [a for a in candidates if a not in collapsed]
    return staged(table, collapsed, rest), [*rest, STAGE], collapsed


def staged(frame: pd.DataFrame, collapsed: list[str], rest: list[str]) -> pd.DataFrame:
    """``frame`` with init rows for one value of each ``collapsed`` axis (shown as "any"), a
    ``stage`` column (``init``, ``adam · final``), and rows in panel order: ``rest`` axes
    first, then the stage (init first)."""
    if frame.empty or not collapsed:
        return frame
    is_init = frame["phase"] == "init"
    first = {a: frame.loc[is_init, a].iloc[0] for a in collapsed} if is_init.any() else {}
    keep = ~is_init.to_numpy()
    if first:
        keep |= np.logical_and.reduce([(frame[a] == v).to_numpy() for a, v in first.items()])
    kept = frame[keep].copy()
    final = kept["phase"] != "init"
    stage = kept["phase"].map(str)
    for axis in reversed(collapsed):  # "adam · final": column-wise, not a join per row
        stage = kept[axis].map(str) + SEPARATOR + stage  # map(str): NaN reads "nan"
    kept[STAGE] = stage.where(final, "init")
    order = list(dict.fromkeys(kept.loc[final, STAGE]))
    rank = kept[STAGE].map({s: i + 1 for i, s in enumerate(order)}).fillna(0)
    positions = [kept[a].map({v: i for i, v in enumerate(dict.fromkeys(kept[a]))}) for a in rest]
    columns = [p.to_numpy() for p in [*positions, rank]]
    kept = kept.iloc[np.lexsort(columns[::-1])]  # lexsort: the last key is the primary one
    for axis in collapsed:
        kept[axis] = kept[axis].astype(object).where(kept["phase"] != "init", "any")
    return kept.reset_index(drop=True)


def init_note(collapsed: list[str], grouped: bool = False) -> str:
    """The caption's sentence for :func:`collapse_init`'s result; ``grouped``: the stages
    are groups along a dot plot's x axis, not panels (benchinit.figures.facets.along_x)."""
    if not collapsed:
        return ""
    drawn = "its group is drawn once in each panel" if grouped else "its panel is drawn once"
    return f" The initialization does not depend on {' or '.join(collapsed)}: {drawn} (stage init)."


def distinct_groups(
    groups: list[tuple[Any, pd.DataFrame]], split: Sequence[str], columns: Sequence[str]
) -> list[tuple[tuple[Any, ...], pd.DataFrame, list[tuple[Any, ...]]]]:
    """Figures, one per ``split`` combination, less those whose ``columns`` (and every other
    column but ``split``) repeat an earlier one: (key, frame, the keys it stands for)."""
    kept: list[tuple[tuple[Any, ...], pd.DataFrame, list[tuple[Any, ...]]]] = []
    for key, frame in groups:
        key = key if isinstance(key, tuple) else (key,)
        on = [c for c in frame.columns if c not in split and c not in columns]
        for _, other, keys in kept:
            if _same(other, frame, on, columns):
                keys.append(key)
                break
        else:
            kept.append((key, frame, [key]))
    return kept
