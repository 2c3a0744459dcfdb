"""benchinit.analysis.stats against scipy's own tests and numpy, including the edge cases compare
meets (one seed, no spread) and the power calculation against a simulation; the moderated
variances against Smyth (2004)'s formulas re-derived here term by term, a prior worked by
hand, and simulations where the model holds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special
from scipy import stats as sp

from benchinit.analysis import moderated, stats


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30, 3.7])
@pytest.mark.parametrize("p", [0.025, 0.5, 0.975, 0.9995])
def test_t_quantile_is_scipys(p, df):
    assert stats.t_quantile(p, df) == pytest.approx(sp.t.ppf(p, df), rel=1e-12)


def test_t_quantile_refuses_impossible_probabilities():
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
        stats.t_quantile(1.0, 3)


def test_mean_ci_matches_numpy_and_scipy():
    values = [0.91, 0.87, 0.93, math.nan, 0.89, 0.90]
    mean, low, high = stats.mean_ci(values, level=0.9)
    clean = np.array([v for v in values if not math.isnan(v)])
    expected = sp.t.interval(0.9, len(clean) - 1, loc=clean.mean(), scale=sp.sem(clean))
    assert mean == pytest.approx(clean.mean())
    assert (low, high) == pytest.approx(expected, rel=1e-12)
    assert stats.mean_ci([0.5]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(v) for v in stats.mean_ci([]))


def test_t_half_widths_vectorized():
    counts = np.array([1, 2, 5, 30])
    stds = np.array([0.3, 0.2, 0.1, 1.0])
    half = stats.t_half_widths(counts, stds, level=0.95)
    assert math.isnan(half[0])
    for n, s, h in zip(counts[1:], stds[1:], half[1:], strict=True):
        assert h == pytest.approx(sp.t.ppf(0.975, n - 1) * s / math.sqrt(n), rel=1e-12)


def test_paired_test_is_scipys_one_sample_t():
    rng = np.random.default_rng(3)
    base, new = rng.normal(0.8, 0.02, 7), rng.normal(0.81, 0.02, 7)
    ours = stats.paired_test(new - base, level=0.95)
    theirs = sp.ttest_rel(new, base)
    ci = theirs.confidence_interval(0.95)
    assert float(ours.p) == pytest.approx(theirs.pvalue, rel=1e-10)
    assert (float(ours.low), float(ours.high)) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert float(ours.df) == 6
    assert stats.paired_t(new - base) == pytest.approx(
        (float(ours.diff), ci.low, ci.high, theirs.pvalue), rel=1e-10
    )


def test_paired_test_along_the_last_axis():
    rng = np.random.default_rng(4)
    d = rng.normal(size=(3, 4, 6))
    ours = stats.paired_test(d)
    assert ours.p.shape == (3, 4)
    assert ours.p == pytest.approx(sp.ttest_1samp(d, 0.0, axis=-1).pvalue, rel=1e-10)


@pytest.mark.parametrize("sizes", [(4, 4), (3, 6), (10, 2)])
def test_welch_test_is_scipys(sizes):
    rng = np.random.default_rng(sum(sizes))
    base = rng.normal(1.0, 0.5, sizes[0])
    new = rng.normal(1.4, 2.0, sizes[1])
    ours = stats.welch_test(base, new, level=0.9)
    theirs = sp.ttest_ind(new, base, equal_var=False)
    ci = theirs.confidence_interval(0.9)
    assert float(ours.diff) == pytest.approx(new.mean() - base.mean())
    assert float(ours.p) == pytest.approx(theirs.pvalue, rel=1e-10)
    assert float(ours.df) == pytest.approx(theirs.df, rel=1e-10)
    assert (float(ours.low), float(ours.high)) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_tests_without_spread_or_with_too_few_seeds():
    same = stats.paired_test([0.0, 0.0, 0.0])
    assert (float(same.p), float(same.low), float(same.high)) == (1.0, 0.0, 0.0)
    shifted = stats.paired_test([0.25, 0.25, 0.25])
    assert float(shifted.p) == 0.0 and float(shifted.low) == float(shifted.high) == 0.25
    one = stats.paired_test([0.1])
    assert float(one.diff) == 0.1 and math.isnan(float(one.p)) and math.isnan(float(one.low))
    assert math.isnan(stats.paired_t([0.1])[3])
    flat = stats.welch_test([1.0, 1.0], [1.0, 1.0, 1.0])
    assert float(flat.p) == 1.0
    short = stats.welch_test([1.0], [1.0, 2.0])
    assert math.isnan(float(short.p)) and float(short.diff) == 0.5


def _holm_by_definition(p):
    """Holm from its definition: reject H_(i) at level a iff p_(j) <= a / (m - j + 1) for all
    j <= i; the adjusted p is the smallest a that rejects."""
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_and_bh_adjustments():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    holm = stats.adjust_p(p, "holm")
    assert holm == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    rng = np.random.default_rng(5)
    for _ in range(20):
        q = rng.uniform(0, 0.2, rng.integers(1, 30))
        assert stats.adjust_p(q, "holm") == pytest.approx(_holm_by_definition(q))
        assert stats.adjust_p(q, "bh") == pytest.approx(sp.false_discovery_control(q))
    assert stats.adjust_p(p, "bh") == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    assert stats.adjust_p(p, "none") == pytest.approx(p)


def test_adjustment_leaves_missing_tests_out_of_the_family():
    p = np.array([0.01, math.nan, 0.02])
    adjusted = stats.adjust_p(p, "holm")
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.02]) and math.isnan(adjusted[1])
    assert all(math.isnan(v) for v in stats.adjust_p([math.nan], "bh"))
    rows = stats.adjust_p(np.array([[0.01, 0.02], [0.5, 0.01]]), "holm")
    assert rows == pytest.approx(np.array([[0.02, 0.02], [0.5, 0.02]]))
    with pytest.raises(ValueError, match="holm, bh, none"):
        stats.adjust_p(p, "bonferroni")


def test_family_level():
    assert stats.family_level(0.05, 200, "holm") == 0.05 / 200
    assert stats.family_level(0.05, 200, "bh") == 0.05 / 200
    assert stats.family_level(0.05, 200, "none") == 0.05


@pytest.mark.parametrize("df, level", [(4, 0.05), (9, 0.05 / 200), (6.5, 0.01)])
def test_detectable_change_has_the_stated_power(df, level):
    se = 0.02
    mde = float(stats.detectable_change(se, df, level))
    critical = sp.t.ppf(1 - level / 2, df)
    nc = mde / se
    power = sp.nct.sf(critical, df, nc) + np.nan_to_num(sp.nct.cdf(-critical, df, nc))
    assert 0.8 <= power <= 0.8 + level  # the far tail, left out, adds at most level / 2


def test_detectable_change_by_simulation():
    """A paired t-test over 5 seeds at the detectable change rejects in about 80% of draws."""
    rng = np.random.default_rng(6)
    n, sd = 5, 1.0
    mde = float(stats.detectable_change(sd / math.sqrt(n), n - 1, 0.05))
    draws = rng.normal(mde, sd, size=(20000, n))
    rejected = float(np.mean(sp.ttest_1samp(draws, 0.0, axis=-1).pvalue < 0.05))
    assert abs(rejected - 0.8) < 0.02  # the standard error of 20,000 draws is 0.003
    # (the sample sd varies; the test uses it, and the power calculation accounts for that)


def test_detectable_change_edges():
    out = stats.detectable_change(np.array([0.0, 0.1, 0.1]), np.array([4.0, np.nan, 4.0]), 0.05)
    assert out[0] == 0.0 and math.isinf(out[1]) and out[2] > 0


# --- moderated variances (Smyth 2004), checked against the paper's formulas -------------


def _trigamma_inverse_by_root(x):
    """trigamma^-1 by bracketing the root (trigamma decreases from inf to 0)."""
    return optimize.brentq(lambda y: special.polygamma(1, y) - x, 1e-12, 1e12, xtol=1e-14)


def _prior_from_the_paper(variances, dfs, margin=0.0):
    """(s0^2, d0) from Smyth (2004), section 6, written out term by term: e_g = log s_g^2 -
    digamma(d_g/2) + log(d_g/2); mean(e) = log s0^2 - digamma(d0/2) + log(d0/2); var(e) =
    trigamma(d0/2) + mean(trigamma(d_g/2)). Zero variances are left out."""
    pairs = [(v, d) for v, d in zip(variances, dfs, strict=True) if v > 0 and d > 0]
    e = [math.log(v) - special.digamma(d / 2) + math.log(d / 2) for v, d in pairs]
    g = len(e)
    mean = sum(e) / g
    var = sum((x - mean) ** 2 for x in e) / (g - 1)
    sampling = sum(special.polygamma(1, d / 2) for _, d in pairs) / g
    kappa4 = sum(special.polygamma(3, d / 2) for _, d in pairs) / g
    excess = var - sampling + margin * math.sqrt(kappa4 / g + 2 * sampling**2 / (g - 1))
    if excess <= 0:
        return math.exp(mean), math.inf
    d0 = 2 * _trigamma_inverse_by_root(excess)
    return math.exp(mean + special.digamma(d0 / 2) - math.log(d0 / 2)), d0


def test_trigamma_inverse():
    assert moderated.trigamma_inverse(math.pi**2 / 6) == pytest.approx(1.0, rel=1e-10)
    assert moderated.trigamma_inverse(math.pi**2 / 2) == pytest.approx(0.5, rel=1e-10)
    x = np.array([1e-4, 0.01, 0.3, 1.0, 7.0, 1e3, 1e5])
    expected = [_trigamma_inverse_by_root(v) for v in x]
    assert moderated.trigamma_inverse(x) == pytest.approx(expected, rel=1e-7)
    assert special.polygamma(1, moderated.trigamma_inverse(x)) == pytest.approx(x, rel=1e-7)
    assert math.isnan(float(moderated.trigamma_inverse(0.0)))


@pytest.mark.parametrize("margin", [0.0, 1.0])
def test_fit_prior_is_the_papers_estimator(margin):
    rng = np.random.default_rng(7)
    for _ in range(10):
        g = int(rng.integers(3, 40))
        dfs = rng.choice([1.0, 2.0, 4.0, 1.6667], size=g)
        sigma2 = 0.01 * rng.lognormal(0, rng.uniform(0, 1.5), g)  # from alike to very unlike
        variances = sigma2 * rng.chisquare(dfs) / dfs
        variances[rng.random(g) < 0.1] = 0.0  # identical values: left out
        prior = moderated.fit_prior(variances, dfs, margin=margin)
        if (variances > 0).sum() < moderated.MIN_PRIOR:
            assert float(prior.df) == 0.0
            continue
        s2, d0 = _prior_from_the_paper(variances, dfs, margin)
        assert float(prior.df) == pytest.approx(d0, rel=1e-7)
        assert float(prior.s2) == pytest.approx(s2, rel=1e-7)
        assert int(prior.used) == int((variances > 0).sum())


def test_a_prior_worked_by_hand():
    """d_g = 2 (digamma(1) = -gamma, trigamma(1) = pi^2 / 6) and log s_g^2 = -a, 0, a with
    a = pi / sqrt(3): var(e) = a^2 = pi^2 / 3, so trigamma(d0 / 2) = pi^2 / 3 - pi^2 / 6 =
    trigamma(1): d0 = 2, and log s0^2 = mean(e) + digamma(1) - log 1 = gamma - gamma = 0.
    Posterior variances (2 * 1 + 2 * s_g^2) / 4 on 2 + 2 = 4 df (the pooled 6 is above)."""
    a = math.pi / math.sqrt(3)
    variances = np.exp([-a, 0.0, a])
    prior = moderated.fit_prior(variances, 2.0, margin=0.0)
    assert (float(prior.df), float(prior.s2)) == pytest.approx((2.0, 1.0), rel=1e-9)
    assert float(prior.pooled_df) == 6.0
    posterior, df = moderated.posterior(variances, 2.0, prior)
    assert posterior == pytest.approx([(1 + math.exp(-a)) / 2, 1.0, (1 + math.exp(a)) / 2])
    assert df == pytest.approx([4.0, 4.0, 4.0])
    # the moderated t of a difference of 1.2 over 3 paired seeds, variance 1 (s^2 = e^0):
    moments = moderated.Moments(
        np.array([1.2]), np.array([1.0]), np.array([2.0]), np.array([1 / 3])
    )
    test = moderated.moderated_test(moments, prior, 0.95)
    t = 1.2 / math.sqrt(1.0 / 3)
    assert test.p[0] == pytest.approx(2 * sp.t.sf(t, 4), rel=1e-10)
    half = sp.t.ppf(0.975, 4) * math.sqrt(1 / 3)
    assert (test.low[0], test.high[0]) == pytest.approx((1.2 - half, 1.2 + half))


def test_alike_variances_give_an_infinite_prior_df():
    """Three equal variances on 2 df scatter less than chance alone: d0 = inf and s0^2 =
    exp(mean(e)) = exp(log 1 + gamma) = e^gamma; every test uses s0^2 on the pooled 6 df."""
    prior = moderated.fit_prior([1.0, 1.0, 1.0], 2.0, margin=0.0)
    assert math.isinf(float(prior.df))
    assert float(prior.s2) == pytest.approx(math.exp(np.euler_gamma), rel=1e-12)
    posterior, df = moderated.posterior(np.array([0.5, 1.0, 3.0]), 2.0, prior)
    assert posterior == pytest.approx([math.exp(np.euler_gamma)] * 3) and (df == 6.0).all()


def test_zero_variances_and_too_few_configurations():
    variances, dfs = np.array([0.02, 0.05, 0.01, 0.03]), np.full(4, 2.0)
    with_zero = moderated.fit_prior(np.append(variances, 0.0), np.append(dfs, 2.0))
    without = moderated.fit_prior(variances, dfs)
    assert (float(with_zero.df), float(with_zero.s2)) == pytest.approx(
        (float(without.df), float(without.s2))
    )
    d0, s0 = float(with_zero.df), float(with_zero.s2)
    zero_posterior, _ = moderated.posterior(np.array([0.0]), 2.0, with_zero)
    assert float(zero_posterior[0]) == pytest.approx(d0 * s0 / (d0 + 2))  # positive
    # two variances: no prior, and the moderated test is the ordinary paired t
    rng = np.random.default_rng(8)
    d = rng.normal(0.1, 0.2, (2, 4))
    few = moderated.fit_prior(d.var(axis=-1, ddof=1), 3.0)
    assert float(few.df) == 0.0 and math.isnan(float(few.s2))
    ours = moderated.moderated_test(moderated.paired_moments(d), few)
    assert ours.p == pytest.approx(sp.ttest_1samp(d, 0.0, axis=-1).pvalue, rel=1e-10)


def test_the_margin_is_one_standard_error_of_chance_scatter():
    """The margin's standard error of var(e) where all variances are alike, from log-chi^2
    cumulants, against the scatter of var(e) over 20,000 simulated families."""
    rng = np.random.default_rng(9)
    g, d = 12, 2.0
    s2 = rng.chisquare(d, (20000, g)) / d
    e = np.log(s2) - special.digamma(d / 2) + math.log(d / 2)
    measured = e.var(axis=-1, ddof=1).std()
    sampling, kappa4 = special.polygamma(1, d / 2), special.polygamma(3, d / 2)
    assert math.sqrt(kappa4 / g + 2 * sampling**2 / (g - 1)) == pytest.approx(measured, rel=0.03)


def test_the_moderated_t_is_exact_where_its_model_holds():
    """Variances drawn from the prior (1 / sigma^2 ~ chi^2_d0 / (d0 s0^2)), no real change:
    the moderated p-values are uniform (Smyth 2004's central result), so 5% fall below 0.05,
    and far fewer below 0.001 than the plain t's tails would give with 2 df."""
    rng = np.random.default_rng(10)
    g, n, d0, s0 = 4000, 3, 6.0, 0.01
    sigma2 = d0 * s0 / rng.chisquare(d0, g)
    d = rng.normal(0, np.sqrt(sigma2)[:, None], (g, n))
    moments = moderated.paired_moments(d)
    prior = moderated.fit_prior(moments.variance, moments.df, margin=0.0)
    assert float(prior.df) == pytest.approx(d0, rel=0.35)
    p = moderated.moderated_test(moments, prior).p
    for level in (0.05, 0.01):
        assert abs(np.mean(p < level) - level) < 4 * math.sqrt(level / g)


def test_split_parts_are_the_two_way_layout():
    """Paired: the study test is a one-sample t of the per-seed means, each configuration's
    own variance that of its interaction residuals (d_gs - D_s - mean_s(d_gs - D_s));
    unpaired: Welch's t of the two sides' per-seed means."""
    rng = np.random.default_rng(11)
    d = rng.normal(0, 1, (5, 4)) + rng.normal(0, 2, (1, 4))  # a shared seed effect
    split = moderated.paired_split(d)
    seed_means = d.mean(axis=0)
    study = moderated.study_test(split)
    assert float(study.p) == pytest.approx(sp.ttest_1samp(seed_means, 0.0).pvalue, rel=1e-10)
    residual = d - seed_means - (d - seed_means).mean(axis=1, keepdims=True)
    assert split.own == pytest.approx((residual**2).sum(axis=1) / 3)
    assert split.own_df == pytest.approx(3 * 4 / 5) and split.scale == pytest.approx(1 / 4)
    assert split.diff == pytest.approx(d.mean(axis=1))
    base, new = rng.normal(0, 1, (5, 3)), rng.normal(0.5, 1, (5, 6))
    welch = moderated.study_test(moderated.unpaired_split(base, new))
    expected = sp.ttest_ind(new.mean(axis=0), base.mean(axis=0), equal_var=False)
    assert float(welch.p) == pytest.approx(expected.pvalue, rel=1e-10)
    assert float(welch.df) == pytest.approx(expected.df, rel=1e-10)


def test_split_test_adds_the_shared_part_with_satterthwaites_df():
    rng = np.random.default_rng(12)
    d = rng.normal(0.2, 1, (8, 3)) + rng.normal(0, 1.5, (1, 3))
    split = moderated.paired_split(d)
    prior = moderated.fit_prior(split.own, split.own_df, margin=0.0)
    test = moderated.split_test(split, prior)
    own, own_df = moderated.posterior(split.own, split.own_df, prior)
    for g in range(8):
        a, b = float(split.shared), own[g] / 3
        df = (a + b) ** 2 / (a**2 / 2 + b**2 / own_df[g])
        t = d[g].mean() / math.sqrt(a + b)
        assert test.p[g] == pytest.approx(2 * sp.t.sf(abs(t), df), rel=1e-10)
        assert test.df[g] == pytest.approx(df)
