"""Small statistics: Student-t intervals and tests over seeds, and a bootstrap.

Written here rather than pulling in scipy for three functions; ``tests/test_stats.py`` checks
them against scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Numerical Recipes, modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.cache
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (bisection on the CDF, cached: few distinct df occur)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): a Student-t confidence interval of the mean; NaNs are dropped.

    With one value the interval is that value's point (no spread is known).
    """
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, mean, mean
    half = t_quantile(0.5 + level / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def t_half_widths(counts: np.ndarray, stds: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Half-widths of Student-t intervals for many groups at once (NaN where n < 2)."""
    counts = np.asarray(counts, dtype=float)
    quantiles = np.array(
        [t_quantile(0.5 + level / 2, n - 1) if n >= 2 else math.nan for n in counts]
    )
    return quantiles * np.asarray(stds, dtype=float) / np.sqrt(np.maximum(counts, 1))


def paired_t(
    differences: Sequence[float], level: float = 0.95
) -> tuple[float, float, float, float]:
    """(mean, ci low, ci high, two-sided p) of paired differences (Student's paired t-test)."""
    d = np.asarray(differences, dtype=float)
    mean, low, high = mean_ci(d.tolist(), level)
    if len(d) < 2:
        return mean, low, high, math.nan
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return mean, mean, mean, (1.0 if mean == 0.0 else 0.0)
    t = mean / (sd / math.sqrt(len(d)))
    p = 2.0 * (1.0 - t_cdf(abs(t), len(d) - 1))
    return mean, low, high, p


def bootstrap_diff(
    base: Sequence[float],
    new: Sequence[float],
    level: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """(mean diff, ci low, ci high, two-sided p) of mean(new) - mean(base), unpaired.

    A percentile bootstrap; p is twice the share of resampled differences on the other
    side of zero.
    """
    a, b = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    diff = float(b.mean() - a.mean())
    rng = np.random.default_rng(seed)
    boots = rng.choice(b, (resamples, len(b))).mean(1) - rng.choice(a, (resamples, len(a))).mean(1)
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    if diff == 0.0:
        p = 1.0
    else:
        p = min(1.0, 2.0 * float(np.mean(boots <= 0) if diff > 0 else np.mean(boots >= 0)))
    return diff, float(low), float(high), p
