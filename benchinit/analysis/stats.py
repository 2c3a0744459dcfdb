"""Statistics over seeds: Student-t intervals, paired and Welch t-tests, empirical-Bayes
moderated t-tests (Smyth 2004) with a seed effect shared by many configurations kept apart,
corrections of p-values for many tests (Holm, Benjamini-Hochberg), and the smallest change
a test can detect.

Built on ``scipy.stats``: the t and noncentral t distributions are where hand-written code
goes wrong quietly, and scipy is the well-kept library for them. ``tests/test_stats.py``
checks every function here against scipy's own tests and numpy, and the moderated
variances against the paper's formulas re-derived there and a prior worked by hand.

The tests work along the last axis of their inputs, so a simulation can test thousands of
configurations at once with exactly the code ``compare`` uses for one. The prior of the
moderated tests is fitted along the last axis too, which there holds the tests that share
it (the configurations of one comparison), not seeds.

Moderated variances (Smyth 2004, "Linear models and empirical Bayes methods for assessing
differential expression in microarray experiments", the moderated t of limma). Each test g
has a residual variance s_g^2 on d_g degrees of freedom (:class:`Moments`: n - 1 for paired
differences, the pooled two-sample variance on n1 + n2 - 2 for unpaired values; in
:class:`Split`, each configuration's own variance about the per-seed means). The true
variances are taken to scatter around a common value: 1 / sigma_g^2 ~ chi^2_{d0} / (d0
s0^2). Then

- the prior (s0^2, d0) is fitted by the method of moments on the log variances (the paper's
  section 6, limma's ``fitFDist``): e_g = log s_g^2 - digamma(d_g / 2) + log(d_g / 2) has
  mean log s0^2 - digamma(d0 / 2) + log(d0 / 2) and variance trigamma(d0 / 2) +
  mean(trigamma(d_g / 2)); so d0 = 2 trigamma^-1(var(e) - mean(trigamma(d_g / 2))) and
  s0^2 = exp(mean(e) + digamma(d0 / 2) - log(d0 / 2)). When the variances scatter no more
  than sampling alone explains, d0 is infinite (all variances alike) and s0^2 = exp(mean e);
- each test's variance becomes the posterior s~_g^2 = (d0 s0^2 + d_g s_g^2) / (d0 + d_g) on
  d0 + d_g degrees of freedom (capped, as limma caps it, at the total residual degrees of
  freedom of the family: d0 cannot be known better than from all the tests together), and
  t = difference / sqrt(s~_g^2 * scale) (scale: 1 / n paired, 1 / n1 + 1 / n2 unpaired).

Choices the paper leaves open, made here:

- zero variances (identical values, a constant shift) are left out of the fit (log 0);
  they still get the posterior variance, which is positive once a prior is fitted;
- fewer than ``MIN_PRIOR`` variances to fit from: no prior (d0 = 0, the ordinary t);
- ``PRIOR_MARGIN``: d0 is read from the excess variance of the log variances plus one
  standard error of var(e) where the variances differ by chance alone (from log chi^2's
  cumulants: kappa4 / G + 2 trigamma^2 / (G - 1)), not from the estimate alone. With 2 to
  4 degrees of freedom per variance the log variances scatter mostly by chance, so the
  excess d0 is read from is small and uncertain; the plain estimate often comes out
  infinite, shrinks the noisiest configurations' variances too far, and among 200
  configurations at 3 seeds whose seed sds differ (log-sd 0.25) false regressions under
  Holm reached 7.2% of comparisons where a two-sided family at 5% allows 2.5% (1.6% with
  the margin: ``tests/test_gate.py``). Less shrinkage when unsure: d0 errs low, the
  tests' conservative way. ``fit_prior(..., margin=0)`` is limma's own estimator.

A seed effect shared by every configuration (a seed fixes the data order, and a changed
random stream or other seeds move every configuration at once) breaks the prior's premise
that the configurations' variances are independent: their variances move together and a
prior over them pools one random quantity as if it were many (4.5% false regressions in
``tests/test_gate.py``'s model, against 2.5% allowed). :class:`Split` keeps that part
apart: only each configuration's own noise about the per-seed means of all of them is
moderated, and the shared part enters every configuration's test with the n - 1 degrees
of freedom it has (:func:`split_test`); alone, it is the study-level test
(:func:`study_test`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from benchinit.lazy import lazy

optimize, special, stats = lazy("scipy.optimize"), lazy("scipy.special"), lazy("scipy.stats")

CORRECTIONS = ("holm", "bh", "none")  # see adjust_p
POWER = 0.8  # the power at which detectable_change is quoted


@functools.cache
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (cached: few df occur)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    return float(stats.t.ppf(p, df))


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


def t_half_widths(
    counts: npt.ArrayLike, stds: npt.ArrayLike, level: float = 0.95
) -> npt.NDArray[np.float64]:
    """Half-widths of Student-t intervals for many groups at once (NaN where n < 2)."""
    n = np.asarray(counts, dtype=float)
    df = np.where(n >= 2, n - 1, np.nan)
    quantiles = stats.t.ppf(0.5 + level / 2, df)
    return np.asarray(quantiles * np.asarray(stds, dtype=float) / np.sqrt(np.maximum(n, 1)))


class TTest(NamedTuple):
    """A t-test's result per tested group (arrays shaped like the inputs minus their last
    axis). ``diff`` is the estimated difference, ``low``-``high`` its interval, ``p`` the
    two-sided p-value, ``df`` and ``se`` what the test's power depends on. Groups with too
    few values (fewer than 2 per sample) get NaN everywhere but ``diff``."""

    diff: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]
    df: npt.NDArray[np.float64]
    se: npt.NDArray[np.float64]


def t_test(
    diff: npt.NDArray[np.float64],
    se: npt.NDArray[np.float64],
    df: npt.NDArray[np.float64],
    level: float,
) -> TTest:
    """Interval and p of ``diff / se`` against Student's t. Zero spread makes the difference
    exact: p = 1 when it is 0, else 0, and the interval is the point itself."""
    with np.errstate(divide="ignore", invalid="ignore"):
        half = stats.t.ppf(0.5 + level / 2, df) * se
        p = 2.0 * stats.t.sf(np.abs(diff / se), df)
    exact = se == 0
    p = np.where(exact, np.where(diff == 0, 1.0, 0.0), p)
    half = np.where(exact, 0.0, half)
    return TTest(diff, diff - half, diff + half, p, df, se)


def paired_test(differences: npt.ArrayLike, level: float = 0.95) -> TTest:
    """Student's paired t-test of per-seed differences (along the last axis) against 0."""
    d = np.asarray(differences, dtype=float)
    n = d.shape[-1]
    diff = d.mean(axis=-1) if n else np.full(d.shape[:-1], np.nan)
    if n < 2:
        nan = np.full(d.shape[:-1], np.nan)
        return TTest(diff, nan, nan, nan, nan, nan)
    se = d.std(axis=-1, ddof=1) / math.sqrt(n)
    return t_test(diff, se, np.full(diff.shape, n - 1.0), level)


def welch_test(base: npt.ArrayLike, new: npt.ArrayLike, level: float = 0.95) -> TTest:
    """Welch's unequal-variance t-test of mean(new) - mean(base), along the last axis.

    For seeds that do not pair. Degrees of freedom by Welch-Satterthwaite; its interval
    keeps close to its nominal coverage at 3-5 seeds per side, where a bootstrap's
    intervals are far too narrow (a resample of 4 values rarely shows their full spread).
    """
    a, b = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    n1, n2 = a.shape[-1], b.shape[-1]
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    if n1 < 2 or n2 < 2:
        nan = np.full(shape, np.nan)
        diff = (b.mean(axis=-1) - a.mean(axis=-1)) if n1 and n2 else nan
        return TTest(np.broadcast_to(diff, shape), nan, nan, nan, nan, nan)
    v1 = a.var(axis=-1, ddof=1) / n1
    v2 = b.var(axis=-1, ddof=1) / n2
    se = np.sqrt(v1 + v2)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    df = np.where(se == 0, n1 + n2 - 2.0, df)
    diff = b.mean(axis=-1) - a.mean(axis=-1)
    diff, se, df = np.broadcast_arrays(diff, se, df)
    return t_test(diff, se, df, level)


def paired_t(
    differences: Sequence[float], level: float = 0.95
) -> tuple[float, float, float, float]:
    """(mean, ci low, ci high, two-sided p) of paired differences (Student's paired t-test).

    One difference gives its point as the interval and no p-value.
    """
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        mean, low, high = mean_ci(d.tolist(), level)
        return mean, low, high, math.nan
    test = paired_test(d, level)
    return float(test.diff), float(test.low), float(test.high), float(test.p)


# --- moderated variances (Smyth 2004; the module docstring has the formulas) -------------


# --- a seed effect every configuration shares --------------------------------------------


def _holm(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Holm's step-down adjustment along the last axis: the i-th smallest p times
    (m - i + 1), kept monotone."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * np.take_along_axis(p, order, -1), -1)
    adjusted = np.empty(p.shape)
    np.put_along_axis(adjusted, order, np.minimum(stepped, 1.0), -1)
    return adjusted


def adjust_p(p: npt.ArrayLike, method: str) -> npt.NDArray[np.float64]:
    """p-values adjusted for testing them all together (along the last axis).

    ``holm`` bounds the chance of any false finding in the family (family-wise error,
    valid whatever the dependence between the tests); ``bh`` (Benjamini-Hochberg) bounds
    the expected share of false findings among the findings (valid for independent or
    positively dependent tests); ``none`` returns p unchanged. NaN marks a test that was
    not made: it stays NaN and does not count in the family.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; valid: {', '.join(CORRECTIONS)}")
    values = np.asarray(p, dtype=float)
    if method == "holm" and values.ndim > 1 and np.isfinite(values).all():
        return _holm(values)  # many families at once (simulations)
    if values.ndim > 1:
        return np.apply_along_axis(adjust_p, -1, values, method)
    out = np.full(values.shape, np.nan)
    made = np.isfinite(values)
    if method == "none" or not made.any():
        out[made] = values[made]
    elif method == "holm":
        out[made] = _holm(values[made])
    else:
        out[made] = stats.false_discovery_control(values[made], method="bh")
    return out


def family_level(alpha: float, family: int, method: str) -> float:
    """The per-test significance level a lone real change must reach: alpha / m under Holm
    and Benjamini-Hochberg (the first step of both), alpha without a correction."""
    return alpha if method == "none" else alpha / max(family, 1)


@functools.cache
def _detectable_noncentrality(df: float, level: float, power: float) -> float:
    """The noncentrality at which a two-sided t-test at ``level`` rejects with ``power``.

    Power counts the upper tail only: the lower one is below level/2 and dropping it makes
    the answer conservative (slightly larger) and avoids scipy's NaNs deep in that tail.
    """
    critical = stats.t.ppf(1 - level / 2, df)

    def shortfall(nc: float) -> float:
        return float(stats.nct.sf(critical, df, nc)) - power

    high = max(2.0 * critical, 1.0)
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10))


def detectable_change(
    se: npt.ArrayLike, df: npt.ArrayLike, level: float, power: float = POWER
) -> npt.NDArray[np.float64]:
    """The smallest true difference a t-test with this standard error and these degrees of
    freedom detects with probability ``power`` at significance ``level`` (noncentral t).

    Infinite where no test is possible (NaN degrees of freedom: fewer than 2 seeds); 0 where
    there is no spread at all (any shift would be seen).
    """
    se_, df_ = np.broadcast_arrays(np.asarray(se, dtype=float), np.asarray(df, dtype=float))
    flat_se, flat_df = se_.ravel(), df_.ravel()
    out = np.full(flat_se.shape, np.inf)
    for i in np.flatnonzero(np.isfinite(flat_df) & np.isfinite(flat_se)):
        out[i] = _detectable_noncentrality(float(flat_df[i]), level, power) * flat_se[i]
    return out.reshape(se_.shape)
