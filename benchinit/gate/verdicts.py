"""The decision rule of ``compare`` and ``history``: per configuration and metric, values over
seeds in, a verdict out (improved, regressed, unchanged, inconclusive); and per metric one
verdict for the study as a whole. Pure: arrays and DataFrames, no files, so a simulation
can run the gate thousands of times. This docstring is the rule's documentation.

**Per configuration.** For each configuration and metric the difference d = NEW - BASE is
signed so that positive is better (accuracy up, loss down) and tested over seeds: paired
when the same seeds ran on both sides (per-seed differences), unpaired otherwise (at least
2 seeds per side).

Few seeds and many configurations is the normal case, so the tests borrow strength across
configurations (empirical-Bayes moderated variances, Smyth 2004; the formulas, and the
choices the paper leaves open, are in :mod:`benchinit.analysis.stats`). At 3 seeds a plain paired t
has 2 degrees of freedom and needs t > 4.3 for p < 0.05 (12 for 0.05 / 6); a prior of
d0 = 8 adds 8. A seed is shared by every configuration, though (it fixes the data order;
other seeds, or a changed random stream, move every configuration at once), and on real
digits runs that shared seed effect was as large as each configuration's own noise or
larger. So each configuration's difference is split into the study's per-seed mean, which
every configuration shares and which is known from n seeds only (n - 1 df), and the
configuration's own deviation from it, whose variance is what the prior moderates
(:class:`benchinit.analysis.stats.Split`); the test adds both, on Welch-Satterthwaite's df
(:func:`benchinit.analysis.stats.split_test`). Where the shared part is small the tests get the
prior's df; where it dominates they honestly get few.

One prior is fitted per metric (their scales differ) and per design: paired tests moderate
the variance of per-seed differences, unpaired ones the pooled two-sample variance of
single runs (another quantity). Unpaired tests pool the two sides' variances, not Welch's
two, because the prior is a prior of one variance with a scaled chi-square distribution;
with as many seeds on both sides (what a study runs) the pooled test keeps its level when
the variances differ. The configurations tested together are those that ran one set of
seeds (the set that keeps the most data, counted as configurations x residual df); one
that lost a seed, and every configuration of a group of fewer than ``stats.MIN_PRIOR``,
gets the ordinary test (paired t, Welch's t), and its test column says so. In ``history``
each step has its own priors: a step's tests are exactly ``compare``'s for those two
folders (a torch release may change the noise; one step's variances say nothing about
another's).

**The study as a whole.** Per metric, "did this change make the study worse?" is asked
directly: the mean difference over the configurations, tested with the seed as the unit
(:func:`benchinit.analysis.stats.study_test`): each seed's differences averaged over the
configurations, those per-seed means tested with a one-sample t (n - 1 df); unpaired, each
side's per-seed means compared by Welch's t. Why not a random-effects mean over
configurations (a one-sample t over configuration means, or DerSimonian-Laird):

- the question is about this study's configurations, a fixed grid. A random-effects test
  counts the spread of real effects between configurations as uncertainty, so a drop of 1
  point in one configuration and 50 in another (a drop in every configuration) could be
  "inconclusive"; here that spread does not enter the standard error, only seed noise;
- configuration means share the seed effect, so they are correlated: a t over 200
  configuration means would read one lucky seed as a significant change of the study; the
  per-seed mean carries that effect into the test, where it belongs.

The price is few degrees of freedom at 3 seeds (2 paired, about 4 unpaired), offset by
averaging: the noise of the mean over G configurations shrinks with G. The mean is taken
over the configurations tested together in the design most of them have; configurations
with no test (missing on one side, not in a grid, another design, other seeds) are left
out and the note counts them. With one configuration the study is that configuration: its
test and its verdict. The tolerance is the mean of the configurations' tolerances.

**Families and corrections.** The configuration tests of one command (every configuration
x metric; in ``history`` every step too) form one family, the study-level tests (one per
metric, and step) another; each family's p-values are adjusted by ``correction``
(``holm``, the default, bounds the chance of *any* false finding in the family; ``bh`` the
expected share of false findings; ``none``). What fails the gate is a regression, one
direction of two-sided tests: a Holm family at alpha calls a false regression in at most
alpha / 2 of null comparisons, so the two families together fail the gate falsely in at
most alpha (a false improvement, which fails nothing, likewise at most alpha).

**Verdicts**, with tolerance ``tol``:

- ``regressed`` / ``improved``: adjusted p < alpha and d beyond the tolerance in that
  direction (d < -tol, d > tol);
- ``unchanged``: the whole (1 - alpha) interval lies within [-tol, tol]; and identical
  inputs are always unchanged, however few seeds: identical values on every paired seed,
  or the same record (status and value, a missing value included) on every seed both
  ran, so a folder compared with itself is unchanged everywhere (seeds that all diverged,
  a metric a configuration does not record);
- ``inconclusive``: anything else (too few seeds, too much spread).

The study-level verdict follows the same rule on its own test, and is also ``regressed``
(``improved``) when every configuration compared regressed (improved): a drop established
in every configuration is never an "inconclusive" study, whatever the few seeds of its own
test allow; and ``unchanged`` when every configuration's inputs were identical.

The intervals are per comparison, not widened for the correction. Holm has no simple
compatible simultaneous intervals; Bonferroni-widened ones would be, but at 5 seeds and
200 comparisons their t quantile is 12.3 instead of 2.8, so "unchanged" could almost never
be said, to guard against an error that does not fail the gate (a false "unchanged" is a
missed regression, which is what the detectable change beside each verdict reports). So
the correction protects the verdicts that fail a build; each "unchanged" is a 95% statement
on its own.

Status changes are verdicts too (not tests, outside the families): more diverged or failed
seeds in NEW is ``regressed``, and so are more finished seeds with no value of the metric
(an accuracy target not reached) and a configuration of NEW's own grid with no record in
NEW at all (``missing``: an interrupted or incomplete run must not pass the gate); a
configuration with no finished seed in BASE and some in NEW is ``improved``, as is one with
fewer failures (or fewer missing values) whose metric is ``unchanged`` or ``improved`` (an
inconclusive metric stays inconclusive: fewer failures do not show that the rest is not
worse). A metric that one folder's finished runs have no value of at all while the other's
have (a validation split or an accuracy target on one side only) is refused before any
test (exit 2, :func:`benchinit.gate.compare.check_values`).

**Exit status** of ``compare``: 1 when any configuration regressed or the study as a whole
regressed on any metric, else 0 (``history``: the same, for its last step). 2 for bad input.

Beside each verdict: the smallest change the test could have detected with 80% power at the
level a lone real change must reach in its family (alpha / m for Holm and BH, m tests) with
these seeds, this spread and these degrees of freedom, and a warning when the tolerance is
below it.

Default tolerance: 0.005 for metrics on [0, 1] (accuracy, fractions: half a point),
otherwise 1% of the baseline mean's magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchinit.analysis import stats
from benchinit.errors import BenchinitError, did_you_mean
from benchinit.metrics import METRIC_TABLE, UNIT

UNIT_METRICS = {m.name for m in METRIC_TABLE if m.bounds == UNIT}
VERDICTS = ("improved", "regressed", "unchanged", "inconclusive")
VALUES = ("_base", "_new")  # per-seed signed values of a row: {seed: value}, not shown


def check_options(alpha: float, tolerance: float | None, correction: str) -> None:
    """Refuse settings that would make every verdict meaningless (NaN tolerance, say)."""
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise BenchinitError(f"alpha (the significance level) must be between 0 and 1, got {alpha}")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise BenchinitError(
            "the tolerance (the smallest difference that counts) must be a finite number "
            f"of at least 0, got {tolerance}"
        )
    if correction not in stats.CORRECTIONS:
        raise BenchinitError(
            f"unknown correction '{correction}'.{did_you_mean(correction, stats.CORRECTIONS)} "
            f"Valid: {', '.join(stats.CORRECTIONS)} (holm: family-wise error; bh: false "
            "discovery rate; none: each test alone)."
        )


def default_tolerance(metric: str, base_mean: float) -> float:
    if metric in UNIT_METRICS:
        return 0.005
    return 0.01 * abs(base_mean) if math.isfinite(base_mean) else 0.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- one configuration's values -> the moments its test needs ---------------------------


def seed_moments(
    base: pd.Series, new: pd.Series, sign: float, same_records: int = 0
) -> dict[str, Any]:
    """One configuration's values on one metric, ready for :func:`moderate`. ``base`` /
    ``new``: finished seeds' values, indexed by seed; ``sign`` +1 when higher is better,
    -1 when lower is; ``same_records``: how many seeds both sides recorded alike (status
    and value, a missing value included) when every seed both recorded is alike, else 0.

    ``design``: ``paired`` (2 or more common seeds), ``unpaired`` (at least 2 per side
    otherwise) or "" (no test). ``identical``: the same values on every paired seed, or
    the same records on every common seed: nothing to test, unchanged."""
    common = sorted(set(base.index) & set(new.index))
    b = {int(s): sign * float(v) for s, v in base.items()}
    n = {int(s): sign * float(v) for s, v in new.items()}
    if common:
        moments = stats.paired_moments([n[s] - b[s] for s in common])
        design = "paired" if len(common) >= 2 else ""
    else:
        moments = stats.pooled_moments(list(b.values()), list(n.values()))
        design = "unpaired" if len(b) >= 2 and len(n) >= 2 else ""
    if len(common) == 1 and not (len(b) == len(n) == 1):  # one pair among more: unpaired
        moments = stats.pooled_moments(list(b.values()), list(n.values()))
        design, common = ("unpaired" if len(b) >= 2 and len(n) >= 2 else ""), []
    paired_values = bool(common) and all(n[s] == b[s] for s in common)
    identical = paired_values or (same_records > 0 and not b and not n)
    if paired_values:
        test = "identical values in " + _plural(len(common), "paired seed")
    elif identical:
        test = f"identical records in {_plural(same_records, 'seed')} (no value on either side)"
    elif len(common) == 1:
        test = "one paired seed"
    elif not design:
        test = f"too few seeds to test ({len(b)} vs {len(n)})"
    else:
        test = ""  # the test's own description, once it is made
    return {
        "base": float(base.mean()) if len(base) else math.nan,
        "new": float(new.mean()) if len(new) else math.nan,
        "diff": float(moments.diff) + 0.0,  # + 0.0: no -0
        "variance": float(moments.variance),
        "resid_df": float(moments.df),
        "scale": float(moments.scale),
        "design": design,
        "identical": identical,
        "test": test,
        "_base": b,
        "_new": n,
    }


# --- moderated tests ---------------------------------------------------------------------


def _ordinary(row: pd.Series, level: float) -> stats.TTest:
    """The test without a prior: paired t, or Welch's t for unpaired seeds."""
    if row["design"] == "paired":
        common = sorted(set(row["_base"]) & set(row["_new"]))
        return stats.paired_test([row["_new"][s] - row["_base"][s] for s in common], level)
    return stats.welch_test(list(row["_base"].values()), list(row["_new"].values()), level)


def _test_text(row: pd.Series, moderated: bool) -> str:
    if row["test"]:
        return str(row["test"])
    if row["design"] == "paired":
        pairs = len(set(row["_base"]) & set(row["_new"]))
        return f"{'moderated ' if moderated else ''}paired t over {pairs} seeds"
    seeds = f"{len(row['_base'])} vs {len(row['_new'])} seeds"
    return f"moderated t, {seeds}" if moderated else f"Welch t, {seeds}"


def _core_seeds(sets: list[frozenset[int]]) -> frozenset[int]:
    """The seed set the configurations are tested together at: among their own sets, the
    one that keeps the most residual df in all (configurations holding it x its df)."""

    def score(candidate: frozenset[int]) -> tuple[int, int]:
        holders = sum(candidate <= s for s in sets)
        return holders * (len(candidate) - 1), len(candidate)

    return max(dict.fromkeys(sets), key=score)


def _split(rows: pd.DataFrame) -> tuple[list[int], stats.Split, str]:
    """The configurations of one design that ran one set of seeds (positions in ``rows``),
    their :class:`stats.Split` at those seeds, and the seeds in words."""
    base, new = list(rows["_base"]), list(rows["_new"])
    if rows["design"].iloc[0] == "paired":
        sets = [frozenset(b) & frozenset(n) for b, n in zip(base, new, strict=True)]
        core = sorted(_core_seeds(sets))
        used = [i for i, s in enumerate(sets) if set(core) <= s]
        differences = [[new[i][s] - base[i][s] for s in core] for i in used]
        return used, stats.paired_split(np.array(differences)), f"{len(core)} seeds"
    base_sets, new_sets = [frozenset(b) for b in base], [frozenset(n) for n in new]
    core_b, core_n = _core_seeds(base_sets), _core_seeds(new_sets)
    used = [i for i in range(len(rows)) if core_b <= base_sets[i] and core_n <= new_sets[i]]
    before = np.array([[base[i][s] for s in sorted(core_b)] for i in used])
    after = np.array([[new[i][s] for s in sorted(core_n)] for i in used])
    seeds = f"{len(core_b)} vs {len(core_n)} seeds"
    return used, stats.unpaired_split(before, after), seeds


def _study_row(key: dict[str, Any], group: pd.DataFrame) -> dict[str, Any]:
    nan = math.nan
    return {
        **key,
        "base": nan, "new": nan, "diff": nan, "ci_low": nan, "ci_high": nan, "p": nan,
        "df": nan, "se": nan, "tolerance": float(group["tolerance"].mean()),
        "identical": bool(group["identical"].all()), "configurations": 0, "of": len(group),
        "copy": -1, "test": "no test", "note": "",
    }  # fmt: skip


def test_rows(
    table: pd.DataFrame, by: Sequence[str], level: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Test every row of ``table`` (rows from :func:`seed_moments`), and the study as a
    whole, per group of ``by`` columns (a metric; in ``history`` a step and a metric).

    Per group and design, the configurations that ran one set of seeds are split into the
    seed effect they share and their own noise (:class:`stats.Split`); their own noise is
    moderated with a prior fitted over them, and each is tested against both parts
    (:func:`stats.split_test`). The shared part alone is the study-level test
    (:func:`stats.study_test`), taken in the design most configurations have. Rows outside
    the seed set, and groups too small for a prior, get the ordinary tests.

    Returns the table with ``p``, ``ci_low``, ``ci_high``, ``df``, ``se`` and ``test``;
    the study rows (one per group; columns ``by``, ``base``, ``new``, ``diff``, ``ci_low``,
    ``ci_high``, ``p``, ``df``, ``se``, ``tolerance``, ``identical``, ``configurations``
    (in the mean), ``of`` (in the group), ``copy`` (the row of ``table`` it is, for one
    configuration, else -1), ``test``, ``note``); and the priors (one per group and design:
    ``fitted``, ``prior_df``, ``prior_sd``, ``configurations``, ``variances``).
    """
    table = table.copy().reset_index(drop=True)
    for column in ("p", "ci_low", "ci_high", "df", "se"):
        table[column] = math.nan
    studies, priors = [], []
    for key, group in table.groupby(list(by), sort=False, dropna=False):
        keys = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        study = _study_row(keys, group)
        counts = group["design"].value_counts()
        majority = "paired" if counts.get("paired", 0) >= counts.get("unpaired", 0) else "unpaired"
        for design in ("paired", "unpaired"):
            rows = group[group["design"] == design]
            if rows.empty:
                continue
            used, split, seeds = _split(rows)
            prior = stats.fit_prior(split.own, split.own_df)
            fitted = len(used) >= stats.MIN_PRIOR and bool(prior.df > 0)
            results = np.full((len(rows), 5), math.nan)
            if fitted:
                test = stats.split_test(split, prior, level)
                results[used] = np.column_stack([test.p, test.low, test.high, test.df, test.se])
            for i in [i for i in range(len(rows)) if not (fitted and i in used)]:
                t = _ordinary(rows.iloc[i], level)
                results[i] = [t.p, t.low, t.high, t.df, t.se]
            table.loc[rows.index, ["p", "ci_low", "ci_high", "df", "se"]] = results
            table.loc[rows.index, "test"] = [
                _test_text(r, fitted and i in used) for i, (_, r) in enumerate(rows.iterrows())
            ]
            priors.append(
                {
                    **keys,
                    "design": design,
                    "fitted": fitted,
                    "prior_df": float(prior.df) if fitted else 0.0,
                    "prior_sd": math.sqrt(float(prior.s2)) if fitted else math.nan,
                    "configurations": len(used),
                    "variances": int(prior.used),
                }
            )
            if design == majority:
                study.update(_study_test(rows, used, split, level, seeds))
        left = len(group) - study["configurations"]
        study["note"] = (
            f"mean over {study['configurations']} of {_plural(len(group), 'configuration')}"
            + (f" ({left} left out: no test, another design or other seeds)" if left else "")
        )
        studies.append(study)
    same = table["identical"].to_numpy(bool)
    table.loc[same, ["ci_low", "ci_high", "se"]] = 0.0
    return table, pd.DataFrame(studies), pd.DataFrame(priors)


def _study_test(
    rows: pd.DataFrame, used: list[int], split: stats.Split, level: float, seeds: str
) -> dict[str, Any]:
    """The study-level columns from the configurations in the mean: their test, or with
    one configuration, that configuration's own."""
    chosen = rows.iloc[used]
    out: dict[str, Any] = {
        "base": float(chosen["base"].mean()),
        "new": float(chosen["new"].mean()),
        "tolerance": float(chosen["tolerance"].mean()),
        "configurations": len(used),
    }
    if len(used) == 1:
        out["copy"] = int(chosen.index[0])
        out["test"] = "one configuration: its own test"
        return out
    test = stats.study_test(split, level)
    name = "paired t over" if rows["design"].iloc[0] == "paired" else "Welch t,"
    out.update(
        diff=float(test.diff) + 0.0, ci_low=float(test.low), ci_high=float(test.high),
        p=float(test.p), df=float(test.df), se=float(test.se),
        test=f"{name} {seeds} of the mean over the configurations",
    )  # fmt: skip
    return out


def prior_text(prior: dict[str, Any]) -> str:
    """One clause per prior: 'paired: prior df 4.2, own noise sd 0.031, from 6
    configurations' (the sd a configuration's own noise about the per-seed means is shrunk
    toward)."""
    head = f"{prior['design']}"
    if not prior["fitted"]:
        return (
            f"{head}: no prior ({_plural(prior['configurations'], 'configuration')} at one "
            f"set of seeds, {prior['variances']} variances to fit from; {stats.MIN_PRIOR} "
            "needed): ordinary t-tests"
        )
    df = "∞ (all alike)" if math.isinf(prior["prior_df"]) else f"{prior['prior_df']:.3g}"
    return (
        f"{head}: prior df {df}, own noise sd {prior['prior_sd']:.3g}, from "
        f"{_plural(prior['configurations'], 'configuration')}"
    )


# --- deciding ----------------------------------------------------------------------------


def decide(
    diff: npt.ArrayLike,
    low: npt.ArrayLike,
    high: npt.ArrayLike,
    p_adjusted: npt.ArrayLike,
    tolerance: npt.ArrayLike,
    alpha: float,
    identical: npt.ArrayLike | None = None,
) -> npt.NDArray[np.str_]:
    """The verdict of each test from its difference, interval and adjusted p (see the
    module docstring); elementwise over arrays."""
    d, lo, hi, p, tol = (
        np.asarray(v, dtype=float) for v in (diff, low, high, p_adjusted, tolerance)
    )
    same = np.zeros(d.shape, bool) if identical is None else np.asarray(identical, bool)
    significant = np.nan_to_num(p, nan=1.0) < alpha
    with np.errstate(invalid="ignore"):
        conditions = [
            same,
            np.isnan(d) | np.isnan(lo) | np.isnan(hi),
            significant & (d < -tol),
            significant & (d > tol),
            (lo >= -tol) & (hi <= tol),
        ]
    choices = ["unchanged", "inconclusive", "regressed", "improved", "unchanged"]
    return np.select(conditions, choices, default="inconclusive")


def judge(
    table: pd.DataFrame,
    *,
    alpha: float,
    correction: str,
    study: pd.DataFrame | None = None,
    power: float = stats.POWER,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adjust the p-values of the configuration tests together and those of the
    study-level tests together (two families), then decide each row's verdict and each
    study's.

    ``table`` has one row per test (the columns :func:`test_rows` leaves, plus
    ``tolerance`` and ``status_change``: "worse", "missing", "better", "fixed" or "");
    ``study`` the study rows of :func:`test_rows` (none: no study-level test). Adds
    ``p_adjusted``, ``detectable``, ``underpowered`` and ``verdict`` to both.
    """
    table = table.copy()
    study = pd.DataFrame() if study is None else study.copy()
    for frame in (table, study):
        if not len(frame):
            continue
        frame["p_adjusted"] = stats.adjust_p(frame["p"].to_numpy(float), correction)
        family = int(np.isfinite(frame["p"].to_numpy(float)).sum())
        level = stats.family_level(alpha, family, correction)
        frame["detectable"] = stats.detectable_change(frame["se"], frame["df"], level, power)
        frame["underpowered"] = frame["tolerance"] < frame["detectable"]
        frame["verdict"] = decide(
            frame["diff"], frame["ci_low"], frame["ci_high"], frame["p_adjusted"],
            frame["tolerance"], alpha, frame["identical"],
        )  # fmt: skip
    change = table["status_change"].to_numpy()
    verdict = table["verdict"].to_numpy()
    verdict = np.where(np.isin(change, ["worse", "missing"]), "regressed", verdict)
    metric_fine = np.isin(verdict, ["unchanged", "improved"])
    better = (change == "fixed") | ((change == "better") & metric_fine)
    table["verdict"] = np.where(better, "improved", verdict)
    if len(study):
        study = _study_verdicts(table, study)
    return table, study


def _study_verdicts(table: pd.DataFrame, study: pd.DataFrame) -> pd.DataFrame:
    """A study of one configuration is that configuration; every configuration regressed
    (improved) is a study that did."""
    by = [c for c in study.columns if c in ("step", "metric")]
    for i, row in study.iterrows():
        if row["copy"] >= 0:
            source = table.loc[row["copy"]]
            for column in ("p_adjusted", "detectable", "underpowered", "verdict"):
                study.at[i, column] = source[column]
            continue
        mask = np.ones(len(table), bool)
        for column in by:
            mask &= (table[column] == row[column]).to_numpy()
        verdicts = set(table.loc[mask, "verdict"])
        if len(verdicts) == 1 and verdicts <= {"regressed", "improved"}:
            study.at[i, "verdict"] = verdicts.pop()
    return study


def regressed(table: pd.DataFrame, study: pd.DataFrame) -> bool:
    """The exit status rule: a configuration regressed, or a study-level verdict did."""
    rows = len(table) and (table["verdict"] == "regressed").any()
    whole = len(study) and (study["verdict"] == "regressed").any()
    return bool(rows or whole)


def counts(table: pd.DataFrame) -> dict[str, int]:
    return {v: int((table["verdict"] == v).sum()) for v in VERDICTS}


def power_warning(table: pd.DataFrame, power: float = stats.POWER) -> str:
    """One sentence when some tolerance is below what the seeds could detect, else ""."""
    weak = int(table["underpowered"].sum())
    if not weak:
        return ""
    return (
        f"warning: in {weak} of {len(table)} comparisons the tolerance is below the smallest "
        f"change these seeds could detect with {power:.0%} power (see 'detectable'): a "
        "regression of the tolerance's size would likely be missed; run more seeds or raise "
        "the tolerance"
    )
