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
(:class:`benchinit.analysis.moderated.Split`); the test adds both, on Welch-Satterthwaite's df
(:func:`benchinit.analysis.moderated.split_test`). Where the shared part is small the tests get the
prior's df; where it dominates they honestly get few.

One prior is fitted per metric (their scales differ) and per design: paired tests moderate
the variance of per-seed differences, unpaired ones the pooled two-sample variance of
single runs (another quantity). Unpaired tests pool the two sides' variances, not Welch's
two, because the prior is a prior of one variance with a scaled chi-square distribution;
with as many seeds on both sides (what a study runs) the pooled test keeps its level when
the variances differ. The configurations tested together are those that ran one set of
seeds (the set that keeps the most data, counted as configurations x residual df); one
that lost a seed, and every configuration of a group of fewer than ``moderated.MIN_PRIOR``,
gets the ordinary test (paired t, Welch's t), and its test column says so. In ``history``
each step has its own priors: a step's tests are exactly ``compare``'s for those two
folders (a torch release may change the noise; one step's variances say nothing about
another's).

**The study as a whole.** Per metric, "did this change make the study worse?" is asked
directly: the mean difference over the configurations, tested with the seed as the unit
(:func:`benchinit.analysis.moderated.study_test`): each seed's differences averaged over the
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


# --- one configuration's values -> the moments its test needs ---------------------------


# --- moderated tests ---------------------------------------------------------------------


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
