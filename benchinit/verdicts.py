"""The decision rule of ``compare`` and ``history``: per configuration and metric, values over
seeds in, a verdict out (improved, regressed, unchanged, inconclusive). Pure: arrays and
DataFrames, no files, so a simulation can run the gate thousands of times.

For each configuration and metric the difference d = NEW - BASE is signed so that positive
is better (accuracy up, loss down) and tested over seeds:

- seeds that pair (the same seeds ran on both sides): Student's paired t-test over the
  per-seed differences. Identical values on every paired seed are ``unchanged`` however
  few seeds there are (one seed compared with itself included): there is nothing to test;
- seeds that do not pair: Welch's unequal-variance t-test (at least 2 seeds per side).

Then all the tests one command makes (every configuration x metric; in ``history`` every
step too) form one family, and their p-values are adjusted together (``correction``:
``holm``, the default, bounds the chance of *any* false regression in the family; ``bh``
bounds the expected share of false findings; ``none``). Verdicts, with tolerance ``tol``:

- ``regressed`` / ``improved``: adjusted p < alpha and d beyond the tolerance in that
  direction (d < -tol, d > tol);
- ``unchanged``: the whole (1 - alpha) interval lies within [-tol, tol];
- ``inconclusive``: anything else (too few seeds, too much spread).

The intervals are per comparison, not widened for the correction. Holm has no simple
compatible simultaneous intervals; Bonferroni-widened ones would be, but at 5 seeds and
200 comparisons their t quantile is 12.3 instead of 2.8, so "unchanged" could almost never
be said, to guard against an error that does not fail the gate (a false "unchanged" is a
missed regression, which is what the detectable change beside each verdict reports). So
the correction protects the verdicts that fail a build; each "unchanged" is a 95% statement
on its own.

Status changes are verdicts too (not tests, outside the family): more diverged or failed
seeds in NEW is ``regressed``, and so is a configuration of NEW's own grid with no record in
NEW at all (``missing``: an interrupted or incomplete run must not pass the gate); a
configuration with no finished seed in BASE and some in NEW is ``improved``, as is one with
fewer failures whose metric is ``unchanged`` or ``improved`` (an inconclusive metric stays
inconclusive: fewer failures do not show that the rest is not worse).

Beside each verdict: the smallest change the test could have detected with 80% power at the
level a lone real change must reach (alpha / m for Holm and BH, m tests in the family) with
these seeds and this spread, and a warning when the tolerance is below it.

Default tolerance: 0.005 for metrics on [0, 1] (accuracy, fractions: half a point),
otherwise 1% of the baseline mean's magnitude.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchinit import stats
from benchinit.errors import BenchinitError, did_you_mean

UNIT_METRICS = {"test_accuracy", "saturated_frac", "dead_frac"}
VERDICTS = ("improved", "regressed", "unchanged", "inconclusive")


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


def seed_test(base: pd.Series, new: pd.Series, sign: float, level: float) -> dict[str, Any]:
    """One configuration's test on one metric. ``base``/``new``: finished seeds' values,
    indexed by seed; ``sign`` +1 when higher is better, -1 when lower is."""
    common = sorted(set(base.index) & set(new.index))
    paired = len(common) >= 2 or (len(common) == 1 and len(base) == len(new) == 1)
    identical = False
    if paired:
        diffs = sign * (new[common].to_numpy(float) - base[common].to_numpy(float))
        result = stats.paired_test(diffs, level)
        identical = bool((diffs == 0).all())
        test = f"paired t over {len(common)} seeds" if len(common) > 1 else "one paired seed"
        if identical:
            test = f"identical values in {len(common)} paired seed" + "s" * (len(common) > 1)
    elif len(base) >= 2 and len(new) >= 2:
        result = stats.welch_test(sign * base.to_numpy(float), sign * new.to_numpy(float), level)
        test = f"Welch t, {len(base)} vs {len(new)} seeds"
    else:
        result = stats.welch_test(sign * base.to_numpy(float), sign * new.to_numpy(float), level)
        test = f"too few seeds to test ({len(base)} vs {len(new)})"
    values = {k: float(v) + 0.0 for k, v in result._asdict().items()}  # + 0.0: no -0
    return {
        "base": float(base.mean()) if len(base) else math.nan,
        "new": float(new.mean()) if len(new) else math.nan,
        "diff": values["diff"],
        "ci_low": 0.0 if identical else values["low"],
        "ci_high": 0.0 if identical else values["high"],
        "p": values["p"],
        "df": values["df"],
        "se": 0.0 if identical else values["se"],
        "identical": identical,
        "test": test,
    }


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
    table: pd.DataFrame, *, alpha: float, correction: str, power: float = stats.POWER
) -> pd.DataFrame:
    """Adjust the p-values of every row together, then decide each row's verdict.

    ``table`` has one row per test (the columns :func:`seed_test` returns, plus
    ``tolerance`` and ``status_change``: "worse", "missing", "better", "fixed" or ""). Adds
    ``p_adjusted``, ``detectable``, ``underpowered`` and ``verdict``.
    """
    table = table.copy()
    table["p_adjusted"] = stats.adjust_p(table["p"].to_numpy(float), correction)
    family = int(np.isfinite(table["p"].to_numpy(float)).sum())
    level = stats.family_level(alpha, family, correction)
    table["detectable"] = stats.detectable_change(table["se"], table["df"], level, power)
    table["underpowered"] = table["tolerance"] < table["detectable"]
    verdict = decide(
        table["diff"],
        table["ci_low"],
        table["ci_high"],
        table["p_adjusted"],
        table["tolerance"],
        alpha,
        table["identical"],
    )
    change = table["status_change"].to_numpy()
    verdict = np.where(np.isin(change, ["worse", "missing"]), "regressed", verdict)
    metric_fine = np.isin(verdict, ["unchanged", "improved"])
    better = (change == "fixed") | ((change == "better") & metric_fine)
    table["verdict"] = np.where(better, "improved", verdict)
    return table


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
