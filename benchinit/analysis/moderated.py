"""Moderated variances (Smyth 2004): a configuration's noise shrunk toward a prior fitted over
the comparison's configurations, the seed effect they share kept apart (:class:`Split`), and
the tests on them. The plain t machinery is :mod:`benchinit.analysis.stats`'s."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from benchinit.analysis.stats import TTest, t_test
from benchinit.lazy import lazy

special = lazy("scipy.special")


MIN_PRIOR = 3  # variances a prior is fitted from at the least (2 give one df for its spread)


PRIOR_MARGIN = 1.0  # standard errors added to the excess variance d0 is read from (above)


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
    return t_test(np.asarray(moments.diff, dtype=float), se, df, level)


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
    return t_test(np.asarray(split.diff, dtype=float), np.sqrt(se2), df, level)


def study_test(split: Split, level: float = 0.95) -> TTest:
    """The study's mean difference over configurations, tested over seeds: a one-sample t
    of the per-seed means (paired), Welch's t of the two sides' per-seed means
    (unpaired)."""
    return t_test(
        np.asarray(split.study, dtype=float),
        np.sqrt(np.asarray(split.shared, dtype=float)),
        np.asarray(split.shared_df, dtype=float),
        level,
    )
