"""The evidence behind a verdict: per configuration and metric, the seeds' values -> a test.

A configuration's noise is moderated over the comparison's configurations where a prior can
be fitted (benchinit.analysis.moderated), else tested alone; the study as a whole is tested
over its shared seeds. The rule that turns these tests into verdicts is
benchinit.gate.verdicts'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchinit.analysis import moderated, stats


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
        moments = moderated.paired_moments([n[s] - b[s] for s in common])
        design = "paired" if len(common) >= 2 else ""
    else:
        moments = moderated.pooled_moments(list(b.values()), list(n.values()))
        design = "unpaired" if len(b) >= 2 and len(n) >= 2 else ""
    if len(common) == 1 and not (len(b) == len(n) == 1):  # one pair among more: unpaired
        moments = moderated.pooled_moments(list(b.values()), list(n.values()))
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


def _ordinary(row: pd.Series, level: float) -> stats.TTest:
    """The test without a prior: paired t, or Welch's t for unpaired seeds."""
    if row["design"] == "paired":
        common = sorted(set(row["_base"]) & set(row["_new"]))
        return stats.paired_test([row["_new"][s] - row["_base"][s] for s in common], level)
    return stats.welch_test(list(row["_base"].values()), list(row["_new"].values()), level)


def _test_text(row: pd.Series, moderate: bool) -> str:
    if row["test"]:
        return str(row["test"])
    if row["design"] == "paired":
        pairs = len(set(row["_base"]) & set(row["_new"]))
        return f"{'moderated ' if moderate else ''}paired t over {pairs} seeds"
    seeds = f"{len(row['_base'])} vs {len(row['_new'])} seeds"
    return f"moderated t, {seeds}" if moderate else f"Welch t, {seeds}"


def _core_seeds(sets: list[frozenset[int]]) -> frozenset[int]:
    """The seed set the configurations are tested together at: among their own sets, the
    one that keeps the most residual df in all (configurations holding it x its df)."""

    def score(candidate: frozenset[int]) -> tuple[int, int]:
        holders = sum(candidate <= s for s in sets)
        return holders * (len(candidate) - 1), len(candidate)

    return max(dict.fromkeys(sets), key=score)


def _split(rows: pd.DataFrame) -> tuple[list[int], moderated.Split, str]:
    """The configurations of one design that ran one set of seeds (positions in ``rows``),
    their :class:`moderated.Split` at those seeds, and the seeds in words."""
    base, new = list(rows["_base"]), list(rows["_new"])
    if rows["design"].iloc[0] == "paired":
        sets = [frozenset(b) & frozenset(n) for b, n in zip(base, new, strict=True)]
        core = sorted(_core_seeds(sets))
        used = [i for i, s in enumerate(sets) if set(core) <= s]
        differences = [[new[i][s] - base[i][s] for s in core] for i in used]
        return used, moderated.paired_split(np.array(differences)), f"{len(core)} seeds"
    base_sets, new_sets = [frozenset(b) for b in base], [frozenset(n) for n in new]
    core_b, core_n = _core_seeds(base_sets), _core_seeds(new_sets)
    used = [i for i in range(len(rows)) if core_b <= base_sets[i] and core_n <= new_sets[i]]
    before = np.array([[base[i][s] for s in sorted(core_b)] for i in used])
    after = np.array([[new[i][s] for s in sorted(core_n)] for i in used])
    seeds = f"{len(core_b)} vs {len(core_n)} seeds"
    return used, moderated.unpaired_split(before, after), seeds


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
    seed effect they share and their own noise (:class:`moderated.Split`); their own noise is
    moderated with a prior fitted over them, and each is tested against both parts
    (:func:`moderated.split_test`). The shared part alone is the study-level test
    (:func:`moderated.study_test`), taken in the design most configurations have. Rows outside
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
            prior = moderated.fit_prior(split.own, split.own_df)
            fitted = len(used) >= moderated.MIN_PRIOR and bool(prior.df > 0)
            results = np.full((len(rows), 5), math.nan)
            if fitted:
                test = moderated.split_test(split, prior, level)
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
    rows: pd.DataFrame, used: list[int], split: moderated.Split, level: float, seeds: str
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
    test = moderated.study_test(split, level)
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
            f"set of seeds, {prior['variances']} variances to fit from; {moderated.MIN_PRIOR} "
            "needed): ordinary t-tests"
        )
    df = "∞ (all alike)" if math.isinf(prior["prior_df"]) else f"{prior['prior_df']:.3g}"
    return (
        f"{head}: prior df {df}, own noise sd {prior['prior_sd']:.3g}, from "
        f"{_plural(prior['configurations'], 'configuration')}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
