"""The CI gate over many draws: false regressions stay rare, real ones are caught.

The simulations call the pure decision path (``stats`` tests -> ``stats.adjust_p`` ->
``verdicts.decide``) on arrays of thousands of draws at once: the same functions ``compare``
runs per configuration. One end-to-end test per scenario checks the folders-to-exit-code
wiring. Monte-Carlo slack is explicit: a rate observed over D draws is held to its bound
plus three binomial standard errors, sqrt(bound * (1 - bound) / D).

Model: the metric of configuration c at seed s is mu_c + u_s + e, where u_s is shared by
every configuration and both sides at one seed (common random numbers: a seed fixes the
initial weights and the data order) and e is each run's own noise.
"""

from __future__ import annotations

import math

import numpy as np
from synthetic import runs_frame, write_runs

from benchinit import stats
from benchinit.cli import main
from benchinit.verdicts import decide

ALPHA = 0.05
DRAWS = 2000


def slack(rate: float, draws: int = DRAWS) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / draws)


def paired_draws(rng, configs, seeds, *, noise=0.01, shared=0.02, drop=0.0):
    """(base, new) arrays [draws, configs, seeds]; configuration 0 of NEW lowered by drop."""
    mu = rng.uniform(0.6, 0.95, (1, configs, 1))
    shared_u = rng.normal(0, shared, (DRAWS, 1, seeds))
    base = mu + shared_u + rng.normal(0, noise, (DRAWS, configs, seeds))
    new = mu + shared_u + rng.normal(0, noise, (DRAWS, configs, seeds))
    new[:, 0, :] -= drop
    return base, new


def paired_verdicts(base, new, tolerance, correction):
    test = stats.paired_test(new - base, 1 - ALPHA)
    adjusted = stats.adjust_p(test.p, correction)
    return decide(test.diff, test.low, test.high, adjusted, tolerance, ALPHA)


def test_holm_keeps_false_regressions_rare_over_200_configurations():
    """200 configurations, no true change, 5 seeds, tolerance 0 (the strictest gate)."""
    base, new = paired_draws(np.random.default_rng(1), 200, 5)
    holm = (paired_verdicts(base, new, 0.0, "holm") == "regressed").any(axis=1).mean()
    bh = (paired_verdicts(base, new, 0.0, "bh") == "regressed").any(axis=1).mean()
    none = (paired_verdicts(base, new, 0.0, "none") == "regressed").any(axis=1).mean()
    assert holm <= ALPHA + slack(ALPHA)  # family-wise: any false regression in the draw
    assert bh <= ALPHA + slack(ALPHA)  # all nulls true: the false discovery rate is FWER
    assert none > 0.9  # uncorrected, 200 tests at 5% almost always cry wolf


def test_a_planted_two_sd_drop_is_caught():
    """One configuration drops by 2 SD of its paired differences (noise sd * sqrt(2)), at 10
    seeds, among 40 comparisons under Holm; the default accuracy tolerance (0.005)."""
    sd = 0.01 * math.sqrt(2)
    base, new = paired_draws(np.random.default_rng(2), 40, 10, drop=2 * sd)
    verdicts = paired_verdicts(base, new, 0.005, "holm")
    caught = (verdicts[:, 0] == "regressed").mean()
    false = (verdicts[:, 1:] == "regressed").any(axis=1).mean()
    assert caught >= 0.80
    assert false <= ALPHA + slack(ALPHA)


def test_the_catch_rate_among_200_is_what_detectable_change_predicts():
    """Among 200 comparisons Holm tests a lone change at 0.05 / 200, where 10 seeds catch a
    2-SD drop in only about two draws of three. The gate says so: its detectable change is
    above 2 SD, and the measured catch rate is the power it implies."""
    sd = 0.01 * math.sqrt(2)
    base, new = paired_draws(np.random.default_rng(3), 200, 10, drop=2 * sd)
    caught = (paired_verdicts(base, new, 0.005, "holm")[:, 0] == "regressed").mean()
    level = stats.family_level(ALPHA, 200, "holm")
    nc = 2 * math.sqrt(10)  # the drop over its standard error
    from scipy import stats as sp

    predicted = sp.nct.sf(sp.t.ppf(1 - level / 2, 9), 9, nc)
    assert abs(caught - predicted) <= slack(predicted)
    assert 0.55 < predicted < 0.75
    assert float(stats.detectable_change(sd / math.sqrt(10), 9, level)) > 2 * sd


def test_unpaired_seeds_of_one_study_give_no_excess_false_regressions():
    """Issue 9 #12: seeds 0-3 against seeds 4-7 of one study, 48 configurations that move
    together (a shared seed effect twice the runs' own noise). Welch's t keeps the false
    regression rate of single comparisons below nominal, and Holm the family-wise one."""
    rng = np.random.default_rng(4)
    configs = 48
    mu = rng.uniform(0.6, 0.95, (1, configs, 1))
    u = rng.normal(0, 0.02, (DRAWS, 1, 8))
    values = mu + u + rng.normal(0, 0.01, (DRAWS, configs, 8))
    base, new = values[..., :4], values[..., 4:]
    test = stats.welch_test(base, new, 1 - ALPHA)
    per_test = decide(test.diff, test.low, test.high, test.p, 0.0, ALPHA) == "regressed"
    holm_p = stats.adjust_p(test.p, "holm")
    family = (decide(test.diff, test.low, test.high, holm_p, 0.0, ALPHA) == "regressed").any(1)
    # The 48 tests of one draw are correlated: the standard error comes from the draws.
    rate_se = per_test.mean(axis=1).std() / math.sqrt(DRAWS)
    assert per_test.mean() + 3 * rate_se <= ALPHA
    assert family.mean() <= ALPHA + slack(ALPHA)


def _config_values(rng, configs, seeds, drop=0.0):
    mu = rng.uniform(0.6, 0.95, (configs, 1))
    u = rng.normal(0, 0.02, (1, seeds))
    base = mu + u + rng.normal(0, 0.01, (configs, seeds))
    new = mu + u + rng.normal(0, 0.01, (configs, seeds))
    new[0] -= drop
    return base, new


def test_end_to_end_null_folders_pass_the_gate(tmp_path, capsys):
    base, new = _config_values(np.random.default_rng(5), 200, 5)
    a = write_runs(tmp_path / "a", runs_frame(base))
    b = write_runs(tmp_path / "b", runs_frame(new))
    assert main(["compare", str(a), str(b), "--tolerance", "0"]) == 0
    assert "0 regressed" in capsys.readouterr().out


def test_end_to_end_planted_drop_fails_the_gate(tmp_path, capsys):
    """Wiring, not power: a drop of 5 SD of the paired differences in init0."""
    base, new = _config_values(np.random.default_rng(6), 200, 10, drop=5 * 0.01 * math.sqrt(2))
    a = write_runs(tmp_path / "a", runs_frame(base))
    b = write_runs(tmp_path / "b", runs_frame(new))
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 1
    out = capsys.readouterr().out
    assert "1 regressed" in out
    regressed = [line for line in out.splitlines() if "regressed" in line and "init" in line]
    assert len(regressed) == 1 and regressed[0].split()[0] == "init0"


def test_end_to_end_unpaired_halves_of_one_study(tmp_path, capsys):
    rng = np.random.default_rng(7)
    values = rng.uniform(0.6, 0.95, (48, 1)) + rng.normal(0, 0.02, (1, 8))
    values = values + rng.normal(0, 0.01, (48, 8))
    a = write_runs(tmp_path / "a", runs_frame(values[:, :4], seeds=range(4)))
    b = write_runs(tmp_path / "b", runs_frame(values[:, 4:], seeds=range(4, 8)))
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 0
    assert "0 regressed" in capsys.readouterr().out
