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
MIN_PRIOR = 3  # variances a prior is fitted from at the least (2 give one df for its spread)
PRIOR_MARGIN = 1.0  # standard errors added to the excess variance d0 is read from (above)


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


def _t_test(
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
    return _t_test(diff, se, np.full(diff.shape, n - 1.0), level)


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
    return _t_test(diff, se, df, level)


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


def trigamma_inverse(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """y with trigamma(y) = x, for x > 0 (elementwise): Newton's method on 1 / trigamma,
    which is nearly linear, from y = 0.5 + 1 / x (Smyth 2004; limma's ``trigammaInverse``).
    Asymptotes outside [1e-6, 1e7]: trigamma(y) ~ 1 / y for large y, 1 / y^2 for small."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x > 0, x, 1.0)
    y = np.where(safe > 1e7, 1 / np.sqrt(safe), np.where(safe < 1e-6, 1 / safe, 0.5 + 1 / safe))
    newton = (safe >= 1e-6) & (safe <= 1e7)
    for _ in range(50):
        tri = special.polygamma(1, y)
        step = np.where(newton, tri * (1 - tri / safe) / special.polygamma(2, y), 0.0)
        y = y + step
        if not (-step / y > 1e-8).any():
            break
    return np.where(x > 0, y, np.nan)


class Prior(NamedTuple):
    """A fitted prior of variances (arrays shaped like the inputs minus their last axis).
    ``s2``: s0^2; ``df``: d0 (0: no prior, the ordinary tests; inf: all variances alike);
    ``pooled_df``: the total residual df of the family (what d0 + d is capped at);
    ``used``: how many variances the fit used."""

    s2: npt.NDArray[np.float64]
    df: npt.NDArray[np.float64]
    pooled_df: npt.NDArray[np.float64]
    used: npt.NDArray[np.int64]


def fit_prior(
    variances: npt.ArrayLike,
    df: npt.ArrayLike,
    *,
    margin: float = PRIOR_MARGIN,
    minimum: int = MIN_PRIOR,
) -> Prior:
    """Fit (s0^2, d0) to the residual variances of one family of tests (the last axis) by
    the method of moments on their logs; ``margin`` standard errors are added to the
    excess variance d0 is read from (0: Smyth's estimator). Zero, NaN and zero-df entries
    are left out; fewer than ``minimum`` left: no prior (d0 = 0, s0^2 NaN)."""
    s2 = np.asarray(variances, dtype=float)
    d = np.broadcast_to(np.asarray(df, dtype=float), s2.shape)
    with np.errstate(invalid="ignore"):
        used = np.isfinite(s2) & (s2 > 0) & np.isfinite(d) & (d > 0)
    count = used.sum(axis=-1)
    half = np.where(used, d, 2.0) / 2
    e = np.where(used, np.log(np.where(used, s2, 1.0)) - special.digamma(half) + np.log(half), 0.0)
    n = np.maximum(count, 1)
    e_mean = e.sum(axis=-1) / n
    squares = np.where(used, (e - e_mean[..., None]) ** 2, 0.0)
    sampling = np.where(used, special.polygamma(1, half), 0.0).sum(axis=-1) / n
    kurtosis = np.where(used, special.polygamma(3, half), 0.0).sum(axis=-1) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        e_var = squares.sum(axis=-1) / (n - 1)
        # the standard error of e_var where the variances differ by chance alone (d0 = inf):
        # Var(sample variance) = kappa4 / n + 2 sigma^4 / (n - 1), log chi^2's cumulants
        chance = np.sqrt(kurtosis / n + 2 * sampling**2 / (n - 1))
        excess = e_var + margin * chance - sampling
    fitted = count >= minimum
    finite = fitted & (excess > 0)
    d0 = np.where(finite, 2 * trigamma_inverse(np.where(finite, excess, 1.0)), np.inf)
    h0 = np.where(finite, d0 / 2, 1.0)
    s0 = np.exp(e_mean + np.where(finite, special.digamma(h0) - np.log(h0), 0.0))
    pooled = np.where(np.isfinite(d) & (d > 0), d, 0.0).sum(axis=-1)
    return Prior(
        np.where(fitted, s0, np.nan), np.where(fitted, d0, 0.0), pooled, count.astype(np.int64)
    )


class Moments(NamedTuple):
    """What a t-test needs of one group's values (arrays): the difference, the residual
    variance with its degrees of freedom, and ``scale``, which turns the variance into the
    difference's: se^2 = variance * scale."""

    diff: npt.NDArray[np.float64]
    variance: npt.NDArray[np.float64]
    df: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]


def paired_moments(differences: npt.ArrayLike) -> Moments:
    """Per-seed differences (last axis): their mean, variance on n - 1 df, scale 1 / n."""
    d = np.asarray(differences, dtype=float)
    n = d.shape[-1]
    shape = d.shape[:-1]
    diff = d.mean(axis=-1) if n else np.full(shape, np.nan)
    variance = d.var(axis=-1, ddof=1) if n > 1 else np.full(shape, np.nan)
    return Moments(diff, variance, np.full(shape, n - 1.0), np.full(shape, 1 / max(n, 1)))


def pooled_moments(base: npt.ArrayLike, new: npt.ArrayLike) -> Moments:
    """Unpaired values (last axis): mean(new) - mean(base), the pooled two-sample variance
    on n1 + n2 - 2 df (NaN with fewer than 2 per side), scale 1 / n1 + 1 / n2."""
    a, b = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    n1, n2 = a.shape[-1], b.shape[-1]
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    if n1 < 2 or n2 < 2:
        diff = b.mean(axis=-1) - a.mean(axis=-1) if n1 and n2 else np.full(shape, np.nan)
        nan = np.full(shape, np.nan)
        return Moments(np.broadcast_to(diff, shape), nan, nan, nan)
    pooled = ((n1 - 1) * a.var(axis=-1, ddof=1) + (n2 - 1) * b.var(axis=-1, ddof=1)) / (n1 + n2 - 2)
    diff = b.mean(axis=-1) - a.mean(axis=-1)
    diff, pooled = np.broadcast_arrays(diff, pooled)
    return Moments(diff, pooled, np.full(shape, n1 + n2 - 2.0), np.full(shape, 1 / n1 + 1 / n2))


def posterior(
    variance: npt.ArrayLike, df: npt.ArrayLike, prior: Prior
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each group's posterior variance (d0 s0^2 + d s^2) / (d0 + d) and its degrees of
    freedom min(d0 + d, pooled df) (last axis: the family ``prior`` was fitted over); d0 =
    inf gives s0^2 on the pooled df, d0 = 0 the variance itself on its own df. NaN where
    there is no residual df."""
    s2, d = np.broadcast_arrays(np.asarray(variance, dtype=float), np.asarray(df, dtype=float))
    s0, d0, pooled = (np.asarray(v, dtype=float)[..., None] for v in prior[:3])
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = (np.where(np.isinf(d0), 0.0, d0) * s0 + d * s2) / (d0 + d)
        value = np.where(np.isinf(d0), s0, np.where(d0 > 0, weighted, s2))
        total = np.where(d0 > 0, np.minimum(d0 + d, pooled), d)
        testable = np.isfinite(d) & (d > 0) & np.isfinite(value)
    return np.where(testable, value, np.nan), np.where(testable, total, np.nan)


def moderated_test(moments: Moments, prior: Prior, level: float = 0.95) -> TTest:
    """Smyth's moderated t of each group (last axis: the family ``prior`` was fitted
    over): the difference over sqrt(posterior variance * scale), on the posterior's
    degrees of freedom. Groups with no residual df are not tested (NaN)."""
    variance, df = posterior(moments.variance, moments.df, prior)
    se = np.sqrt(variance * np.asarray(moments.scale, dtype=float))
    return _t_test(np.asarray(moments.diff, dtype=float), se, df, level)


# --- a seed effect every configuration shares --------------------------------------------


class Split(NamedTuple):
    """Many configurations' values at one set of seeds, split into what they share and what
    is their own. A seed fixes the data order (and, on both sides of a paired comparison,
    the initial weights), so one seed moves every configuration at once: with d_gs the
    value (paired: the difference) of configuration g at seed s and D_s = mean_g d_gs,

    - ``study`` = mean_s D_s, the study's mean difference, and ``shared`` its variance (the
      variance of the D_s over seeds / n; unpaired: Welch's over the two sides' D_s) on
      ``shared_df`` (n - 1; unpaired: Welch-Satterthwaite);
    - ``own``: each configuration's variance about the seed means (x_gs = d_gs - D_s) on
      ``own_df`` = (n - 1)(G - 1) / G each (the interaction df of a G x n layout, shared
      out); what the prior moderates. ``diff`` (mean_s d_gs) = ``study`` + mean_s x_gs.

    Shapes: ``diff`` and ``own`` [..., G], the rest [...]; ``scale`` turns a variance of
    single values into one of a difference of means (1 / n; 1 / n1 + 1 / n2)."""

    diff: npt.NDArray[np.float64]
    study: npt.NDArray[np.float64]
    shared: npt.NDArray[np.float64]
    shared_df: npt.NDArray[np.float64]
    own: npt.NDArray[np.float64]
    own_df: float
    scale: float


def paired_split(differences: npt.ArrayLike) -> Split:
    """:class:`Split` of per-seed differences shaped [..., configurations, seeds]."""
    d = np.asarray(differences, dtype=float)
    g, n = d.shape[-2], d.shape[-1]
    seed_means = d.mean(axis=-2)
    own = (d - seed_means[..., None, :]).var(axis=-1, ddof=1)
    return Split(
        d.mean(axis=-1),
        seed_means.mean(axis=-1),
        seed_means.var(axis=-1, ddof=1) / n,
        np.full(seed_means.shape[:-1], n - 1.0),
        own,
        (n - 1) * (g - 1) / g,
        1 / n,
    )


def unpaired_split(base: npt.ArrayLike, new: npt.ArrayLike) -> Split:
    """:class:`Split` of unpaired values shaped [..., configurations, seeds] per side."""
    a, b = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    g, n1, n2 = a.shape[-2], a.shape[-1], b.shape[-1]
    means = [x.mean(axis=-2) for x in (a, b)]
    v1, v2 = (m.var(axis=-1, ddof=1) / k for m, k in zip(means, (n1, n2), strict=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        welch = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    welch = np.where(v1 + v2 > 0, welch, n1 + n2 - 2.0)
    contrasts = [x - m[..., None, :] for x, m in zip((a, b), means, strict=True)]
    squares = sum(((x - x.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1) for x in contrasts)
    return Split(
        b.mean(axis=-1) - a.mean(axis=-1),
        means[1].mean(axis=-1) - means[0].mean(axis=-1),
        v1 + v2,
        welch,
        squares / (n1 + n2 - 2),
        (n1 + n2 - 2) * (g - 1) / g,
        1 / n1 + 1 / n2,
    )


def split_test(split: Split, prior: Prior, level: float = 0.95) -> TTest:
    """Each configuration's test from a :class:`Split`: se^2 = shared + posterior(own) *
    scale (the prior fitted over ``split.own``), on Welch-Satterthwaite's degrees of
    freedom for that sum: few when the shared seed effect dominates (it is known from n
    seeds only), the posterior's when each configuration's own noise does."""
    own, own_df = posterior(split.own, split.own_df, prior)
    shared = np.asarray(split.shared, dtype=float)[..., None]
    shared_df = np.asarray(split.shared_df, dtype=float)[..., None]
    mine = own * split.scale
    se2 = shared + mine
    with np.errstate(invalid="ignore", divide="ignore"):
        df = se2**2 / (shared**2 / shared_df + mine**2 / own_df)
    df = np.where(shared > 0, df, own_df)
    return _t_test(np.asarray(split.diff, dtype=float), np.sqrt(se2), df, level)


def study_test(split: Split, level: float = 0.95) -> TTest:
    """The study's mean difference over configurations, tested over seeds: a one-sample t
    of the per-seed means (paired), Welch's t of the two sides' per-seed means
    (unpaired)."""
    return _t_test(
        np.asarray(split.study, dtype=float),
        np.sqrt(np.asarray(split.shared, dtype=float)),
        np.asarray(split.shared_df, dtype=float),
        level,
    )


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
