"""The CI gate over many draws: false regressions stay rare, real ones are caught.

The simulations call the pure decision path (``stats`` tests -> ``stats.adjust_p`` ->
``verdicts.decide``) on arrays of thousands of draws at once: the same functions ``compare``
runs per configuration. One end-to-end test per scenario checks the folders-to-exit-code
wiring. Monte-Carlo slack is explicit: a rate observed over D draws is held to its bound
plus three binomial standard errors, sqrt(bound * (1 - bound) / D).

Model: the metric of configuration c at seed s is mu_c + u_s + e, where u_s is shared by
every configuration and both sides at one seed (common random numbers: a seed fixes the
initial weights and the data order) and e is each run's own noise.

The second half is the evidence for the moderated gate (README, "How well the gate holds
up"): old (a plain paired or Welch t per configuration, Holm) against new (moderated
variances with the shared seed effect apart, Holm, and the study-level test), on null
comparisons and on drops of 1 and 2 seed standard deviations. ``python
tests/test_gate.py`` prints the README's table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic import runs_frame, write_runs

from benchinit.analysis import moderated, stats
from benchinit.cli import main
from benchinit.gate.verdicts import decide

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


# --- evidence: old gate against new ------------------------------------------------------

SIGMA = 0.01  # a configuration's typical seed standard deviation (its own run noise)
SPREAD = 0.25  # log-sd of the seed sd across configurations: some are noisier than others
SHARED = 0.02  # the seed effect every configuration shares (2 sd), where a scenario has one


def _configurations(rng, configs):
    """Each configuration's seed sd; the first, which a drop "in one configuration" hits,
    has the typical one (a quiet or a noisy one would make that row about its luck)."""
    sd = SIGMA * np.exp(SPREAD * rng.normal(size=(1, configs, 1)))
    sd[:, 0] = SIGMA
    return sd


def old_gate(base, new, paired):
    """Regressed configurations [draws, configs] by the gate before moderation."""
    test = stats.paired_test(new - base) if paired else stats.welch_test(base, new)
    adjusted = stats.adjust_p(test.p, "holm")
    return decide(test.diff, test.low, test.high, adjusted, 0.0, ALPHA) == "regressed"


def new_gate(base, new, paired):
    """(regressed configurations [draws, configs], study regressed [draws]) by the gate:
    the split, a prior per draw, Holm over the configurations, the study test alone."""
    split = moderated.paired_split(new - base) if paired else moderated.unpaired_split(base, new)
    test = moderated.split_test(split, moderated.fit_prior(split.own, split.own_df))
    adjusted = stats.adjust_p(test.p, "holm")
    rows = decide(test.diff, test.low, test.high, adjusted, 0.0, ALPHA) == "regressed"
    whole = moderated.study_test(split)
    study = decide(whole.diff, whole.low, whole.high, whole.p, 0.0, ALPHA) == "regressed"
    return rows, study | rows.all(axis=-1)


def scenario(
    seed, *, seeds, drop=0.0, where="all", paired=True, shared=0.0, draws=1000, configs=200
):
    """Rates over ``draws`` comparisons of ``configs`` configurations: NEW lowered by ``drop``
    seed sds in all configurations or in the first; ``shared``: a seed effect every configuration
    shares (other seeds on the two sides when unpaired, a changed random stream when
    paired). Returns the old and new gate's failure rates, the new study-level rate, and
    the share of dropped configurations each calls regressed."""
    rng = np.random.default_rng(seed)
    sd = _configurations(rng, configs)
    base = sd * rng.normal(size=(draws, configs, seeds))
    new = sd * rng.normal(size=(draws, configs, seeds))
    if paired:
        new += rng.normal(0, shared, (draws, 1, seeds))
    else:
        base += rng.normal(0, shared, (draws, 1, seeds))
        new += rng.normal(0, shared, (draws, 1, seeds))
    dropped = slice(None) if where == "all" else slice(0, 1)
    new[:, dropped] -= drop * sd[:, dropped]
    old = old_gate(base, new, paired)
    rows, study = new_gate(base, new, paired)
    return {
        "old gate": old.any(axis=-1).mean(),
        "new gate": (rows.any(axis=-1) | study).mean(),
        "new study": study.mean(),
        "old caught": old[:, dropped].mean(),
        "new caught": rows[:, dropped].mean(),
    }


NULLS = {
    "other seeds (unpaired), shared seed effect": dict(seeds=3, paired=False, shared=SHARED),
    "same seeds, a changed random stream": dict(seeds=3, paired=True, shared=SHARED),
}


@pytest.mark.parametrize("name", list(NULLS))
def test_null_comparisons_of_200_configurations_fail_the_gate_at_most_alpha(name):
    """Issue 19: 200 configurations, 3 seeds, no real change: the new gate (configurations
    and the study as a whole) raises a false regression in at most alpha of comparisons."""
    rates = scenario(20, draws=DRAWS, **NULLS[name])
    assert rates["new gate"] <= ALPHA + slack(ALPHA)
    assert rates["old gate"] <= ALPHA + slack(ALPHA)


def test_a_prior_over_whole_variances_would_cry_wolf_on_a_shared_seed_effect():
    """Why the shared seed effect is kept apart: Smyth's prior fitted over the whole
    variances of configurations that share a seed effect pools one random quantity as if
    it were 200 (their variances move together). A two-sided Holm family at alpha calls a
    false regression in at most alpha / 2 of comparisons; the pooled prior passes that
    bound, the split keeps it."""
    rng = np.random.default_rng(21)
    sd = _configurations(rng, 200)
    d = rng.normal(0, 3 * SIGMA, (DRAWS, 1, 3)) + sd * rng.normal(size=(DRAWS, 200, 3))
    moments = moderated.paired_moments(d)
    test = moderated.moderated_test(moments, moderated.fit_prior(moments.variance, moments.df))
    adjusted = stats.adjust_p(test.p, "holm")
    pooled = (decide(test.diff, test.low, test.high, adjusted, 0.0, ALPHA) == "regressed").any(1)
    rows, _ = new_gate(np.zeros_like(d), d, True)
    assert pooled.mean() > ALPHA / 2 + slack(ALPHA / 2)
    assert rows.any(axis=1).mean() <= ALPHA / 2 + slack(ALPHA / 2)


def test_the_prior_s_margin_keeps_unequal_variances_from_crying_wolf():
    """Why d0 is read one chance standard error high: among 200 configurations at 3 seeds
    whose seed sds differ (log-sd 0.25), Smyth's estimator alone often takes their scatter
    for chance (d0 large), shrinks the noisiest configurations' variances too far, and
    false regressions pass alpha / 2; with the margin they stay below it."""
    rng = np.random.default_rng(23)
    d = _configurations(rng, 200) * rng.normal(size=(DRAWS, 200, 3)) * math.sqrt(2)
    split = moderated.paired_split(d)
    rates = {}
    for margin in (0.0, moderated.PRIOR_MARGIN):
        test = moderated.split_test(
            split, moderated.fit_prior(split.own, split.own_df, margin=margin)
        )
        adjusted = stats.adjust_p(test.p, "holm")
        rates[margin] = (
            (decide(test.diff, test.low, test.high, adjusted, 0.0, ALPHA) == "regressed")
            .any(1)
            .mean()
        )
    assert rates[0.0] > ALPHA / 2 + slack(ALPHA / 2)
    assert rates[moderated.PRIOR_MARGIN] <= ALPHA / 2 + slack(ALPHA / 2)


POWER = {
    (configs, seeds, drop, where): dict(configs=configs, seeds=seeds, drop=drop, where=where)
    for configs, where in ((200, "all"), (200, "one"), (6, "one"))
    for seeds in (3, 5)
    for drop in (1.0, 2.0)
}


def _power_id(key):
    return f"{key[0]} configurations, {key[1]} seeds, {key[2]:g} sd, {key[3]}"


@pytest.mark.parametrize("key", list(POWER), ids=_power_id)
def test_the_new_gate_sees_what_the_old_one_missed(key):
    """Drops of 1 and 2 seed sds at 3 and 5 seeds, paired: the new gate catches the dropped
    configurations at least as often as the old one, and a drop in every configuration
    fails it almost always (the study as a whole), where the old gate mostly passed."""
    rates = scenario(22, **POWER[key])
    assert rates["new caught"] >= rates["old caught"] - slack(0.05, 1000)
    if key[3] == "all":
        assert rates["new study"] >= 0.99 and rates["new gate"] > rates["old gate"]


def evidence() -> list[str]:
    """The README's table (Markdown lines)."""
    lines = [
        "| comparison | configurations | seeds | gate fails: old | new | study regressed "
        "(new) | dropped configurations called regressed: old | new |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cases = [(f"null: {name}", 200, NULLS[name], 20, DRAWS) for name in NULLS]
    for key, settings in POWER.items():
        where = "every configuration" if key[3] == "all" else "one configuration"
        cases.append((f"drop of {key[2]:g} sd in {where}", key[0], settings, 22, 1000))
    for name, configs, settings, seed, draws in cases:
        r = scenario(seed, draws=draws, **{"configs": configs, **settings})
        caught = "– | –" if "null" in name else f"{r['old caught']:.1%} | {r['new caught']:.1%}"
        lines.append(
            f"| {name} | {configs} | {settings['seeds']} | {r['old gate']:.1%} | "
            f"{r['new gate']:.1%} | {r['new study']:.1%} | {caught} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(evidence()))
