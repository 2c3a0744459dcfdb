"""benchinit.stats against scipy's own tests and numpy, including the edge cases compare
meets (one seed, no spread) and the power calculation against a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from benchinit import stats


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
