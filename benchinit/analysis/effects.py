"""What mattered most: the main metric's variance split over the grid's factors.

A least-squares ANOVA on dummy-coded factors: every factor (grid column with two or more
levels) and every two-way interaction is a term; the seeds within a configuration, and
any three-way or higher interaction, are the residual. Per term: sums of squares, F and
p, **eta-squared** (its share of the total sum of squares) and **omega-squared** (the same
share corrected for what noise alone would give, Hays 1963: ``(SS - df MS_error) /
(SS_total + MS_error)``; near 0, or below, for a factor that does nothing), with
percentile bootstrap intervals, ranked by omega-squared.

Choices, and why:

- **Type II sums of squares** (Langsrud 2003): a term's SS is what it adds to a model of
  every term that does not contain it (a factor: the other factors and their
  interactions; an interaction: everything else). Results lose a cell now and then
  (diverged, failed), so designs are often unbalanced: then sequential (type I) SS depend
  on the order of the factors, and type III tests main effects in the presence of their
  own interactions, which is rarely the question. In a balanced design all three agree.
- Models are compared through the **column spaces** of their dummy matrices (an SVD
  basis), so coding and empty configurations (all seeds lost) need no special case, and
  everything is computed on configuration means weighted by their seed counts: exact, and
  as cheap for 10,000 runs as for 100.
- **Bootstrap over seeds**: each resample draws, within every configuration, as many of
  its runs as it has, with replacement (``resamples`` times, from ``seed``); the design is
  unchanged, so each resample costs a few matrix products. The percentile interval of
  eta-squared cannot cover 0 (it is a share of a sum of squares); read omega-squared's to
  see whether a factor's effect may be nothing.

numpy and scipy are enough (validated in tests/test_effects.py against a textbook
two-way ANOVA and scipy.stats.f_oneway): statsmodels or pingouin would add a heavy
dependency for some twenty lines of linear algebra.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchinit.lazy import lazy

stats = lazy("scipy.stats")

Array = npt.NDArray[np.float64]
RESAMPLES = 1000
COLUMNS = (
    "term",
    "kind",  # "main", "interaction" or "residual"
    "df",
    "ss",
    "f",
    "p",
    "eta_sq",
    "eta_sq_low",
    "eta_sq_high",
    "omega_sq",
    "omega_sq_low",
    "omega_sq_high",
    "rank",  # 1: the term that mattered most (by omega-squared); none for the residual
)


@dataclass(frozen=True)
class _Design:
    """The configurations (unique factor combinations) of a result set and its terms."""

    config: npt.NDArray[np.int64]  # per row: its configuration's index
    counts: Array  # per configuration: its number of runs
    terms: list[tuple[str, ...]]  # each term's factors: ("a",) or ("a", "b")
    blocks: list[Array]  # per term: its indicator columns, one row per configuration


def _design(frame: pd.DataFrame, factors: Sequence[str], interactions: bool) -> _Design:
    codes = np.column_stack([pd.factorize(frame[f], sort=True)[0] for f in factors])
    combos, config = np.unique(codes, axis=0, return_inverse=True)
    terms: list[tuple[str, ...]] = [(f,) for f in factors]
    if interactions:
        terms += list(itertools.combinations(factors, 2))
    blocks = []
    for term in terms:
        columns = [factors.index(f) for f in term]
        _, level = np.unique(combos[:, columns], axis=0, return_inverse=True)
        blocks.append(np.eye(int(level.max()) + 1)[level.ravel()])
    counts = np.bincount(config.ravel(), minlength=len(combos)).astype(float)
    return _Design(config.ravel(), counts, terms, blocks)


def _basis(design: _Design, members: Sequence[int]) -> Array:
    """An orthonormal basis of the weighted column space of intercept + these terms."""
    weight = np.sqrt(design.counts)[:, None]
    columns = np.hstack([np.ones((len(design.counts), 1))] + [design.blocks[i] for i in members])
    u, s, _ = np.linalg.svd(weight * columns, full_matrices=False)
    rank = int((s > s[0] * len(s) * np.finfo(float).eps).sum())
    return u[:, :rank]


def _explained(basis: Array, z: Array) -> Array:
    """Per column of ``z`` (weighted configuration means): the SS the basis explains."""
    return np.asarray(((basis.T @ z) ** 2).sum(axis=0))


def _table(design: _Design, means: Array, within: Array) -> dict[str, Array]:
    """SS, df, F, p, eta- and omega-squared per term (rows) and resample (columns).

    ``means``: configuration means ``[configurations, resamples]``; ``within``: the
    within-configuration sum of squares per resample.
    """
    z = np.sqrt(design.counts)[:, None] * means
    every = range(len(design.terms))
    full = _basis(design, every)
    intercept = _basis(design, [])
    total = within + (z**2).sum(axis=0) - _explained(intercept, z)
    error = within + (z**2).sum(axis=0) - _explained(full, z)
    df_error = design.counts.sum() - full.shape[1]
    ms_error = error / df_error if df_error > 0 else np.full_like(error, np.nan)
    ss, df = [], []
    for i, term in enumerate(design.terms):
        without = [j for j in every if j != i and not set(term) < set(design.terms[j])]
        smaller, larger = _basis(design, without), _basis(design, [*without, i])
        ss.append(np.maximum(_explained(larger, z) - _explained(smaller, z), 0.0))
        df.append(larger.shape[1] - smaller.shape[1])
    ss_, df_ = np.array(ss), np.array(df, dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss_ / df_) / ms_error
        return {
            "ss": ss_,
            "df": df_[:, 0],
            "f": f,
            "p": stats.f.sf(f, df_, df_error),
            "eta_sq": ss_ / total,
            "omega_sq": (ss_ - df_ * ms_error) / (total + ms_error),
            "error": error,
            "df_error": np.array(df_error),
            "total": total,
        }


def _resample(values: Array, design: _Design, resamples: int, seed: int) -> tuple[Array, Array]:
    """Bootstrap configuration means ``[configurations, resamples]`` and within-SS."""
    rng = np.random.default_rng(seed)
    means = np.empty((len(design.counts), resamples))
    within = np.zeros(resamples)
    for c in range(len(design.counts)):
        own = values[design.config == c]
        draws = own[rng.integers(0, len(own), size=(resamples, len(own)))]
        means[c] = draws.mean(axis=1)
        within += ((draws - means[c][:, None]) ** 2).sum(axis=1)
    return means, within


def effects(
    frame: pd.DataFrame,
    factors: Sequence[str],
    metric: str,
    *,
    interactions: bool = True,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per term (:data:`COLUMNS`), best-ranked first, then the residual.

    ``frame``: runs rows with the ``factors`` columns (any values, taken as categories)
    and ``metric``; rows whose ``status`` (when present) is not ``ok`` or whose metric is
    not finite are left out. Factors with fewer than two levels left are dropped; with
    none left the table is empty. ``resamples`` = 0 skips the intervals (NaN).
    """
    rows = frame
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    values = rows[metric].to_numpy(dtype=float)
    rows, values = rows[np.isfinite(values)], values[np.isfinite(values)]
    used = [f for f in factors if rows[f].nunique(dropna=False) >= 2]
    if not used:
        return pd.DataFrame(columns=list(COLUMNS))
    design = _design(rows, used, interactions)
    sums = np.bincount(design.config, weights=values, minlength=len(design.counts))
    means = sums / design.counts
    within = ((values - means[design.config]) ** 2).sum()
    point = _table(design, means[:, None], np.array([within]))
    table = pd.DataFrame(
        {
            "term": [" × ".join(t) for t in design.terms],
            "kind": ["main" if len(t) == 1 else "interaction" for t in design.terms],
            "df": point["df"],
            **{k: point[k][:, 0] for k in ("ss", "f", "p", "eta_sq", "omega_sq")},
        }
    )
    tail = (1 - level) / 2
    for name in ("eta_sq", "omega_sq"):
        table[f"{name}_low"] = table[f"{name}_high"] = np.nan
    if resamples > 0:
        boot = _table(design, *_resample(values, design, resamples, seed))
        for name in ("eta_sq", "omega_sq"):
            with warnings.catch_warnings():  # a term undefined in every resample: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                low, high = np.nanquantile(boot[name], [tail, 1 - tail], axis=1)
            table[f"{name}_low"], table[f"{name}_high"] = low, high
    key = table["omega_sq"].where(table["omega_sq"].notna(), table["eta_sq"])
    table["rank"] = key.rank(ascending=False, method="first").astype("Int64")
    table = table.sort_values("rank", kind="stable")
    residual = {
        "term": "residual",
        "kind": "residual",
        "df": float(point["df_error"]),
        "ss": float(point["error"][0]),
        "eta_sq": float(point["error"][0] / point["total"][0]),
    }
    table = pd.concat([table, pd.DataFrame([residual])], ignore_index=True)
    table["rank"] = table["rank"].astype("Int64")
    return table[list(COLUMNS)]
