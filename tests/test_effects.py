"""What mattered most: the ANOVA against a textbook and scipy, type II on unbalanced data,
and the bootstrap's answer on a result set whose structure is known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchinit.analysis.effects import COLUMNS, effects

# Montgomery, Design and Analysis of Experiments (Example 5.1): battery life (hours) by plate
# material and temperature (F), 4 batteries each; its ANOVA table is quoted below.
BATTERY = {
    (1, 15): [130, 155, 74, 180],
    (1, 70): [34, 40, 80, 75],
    (1, 125): [20, 70, 82, 58],
    (2, 15): [150, 188, 159, 126],
    (2, 70): [136, 122, 106, 115],
    (2, 125): [25, 70, 58, 45],
    (3, 15): [138, 110, 168, 160],
    (3, 70): [174, 120, 150, 139],
    (3, 125): [96, 104, 82, 60],
}


def battery() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"material": m, "temperature": t, "seed": i, "status": "ok", "life": v}
            for (m, t), values in BATTERY.items()
            for i, v in enumerate(values)
        ]
    )


def by_term(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("term")


def test_the_textbook_two_way_anova():
    table = by_term(effects(battery(), ["material", "temperature"], "life", resamples=0))
    expected = {  # term: (SS, df, F)
        "material": (10683.72, 2, 7.91),
        "temperature": (39118.72, 2, 28.97),
        "material × temperature": (9613.78, 4, 3.56),
        "residual": (18230.75, 27, math.nan),
    }
    for term, (ss, df, f) in expected.items():
        assert table.loc[term, "ss"] == pytest.approx(ss, abs=0.01)
        assert table.loc[term, "df"] == df
        if not math.isnan(f):
            assert table.loc[term, "f"] == pytest.approx(f, abs=0.005)
    assert table.loc["material", "p"] == pytest.approx(0.0020, abs=5e-5)
    assert table.loc["material × temperature", "p"] == pytest.approx(0.0186, abs=5e-5)
    total = 77646.97
    assert table.loc["temperature", "eta_sq"] == pytest.approx(39118.72 / total, abs=1e-6)
    ms_error = 18230.75 / 27
    omega = (39118.72 - 2 * ms_error) / (total + ms_error)
    assert table.loc["temperature", "omega_sq"] == pytest.approx(omega, abs=1e-6)
    assert list(table.index) == [
        "temperature",
        "material",
        "material × temperature",
        "residual",
    ]
    assert table["rank"].tolist()[:3] == [1, 2, 3] and pd.isna(table.loc["residual", "rank"])
    assert list(effects(battery(), ["material", "temperature"], "life", resamples=0)) == list(
        COLUMNS
    )


def test_a_hand_computed_balanced_two_by_two():
    # y[a][b] with 2 replicates; the textbook formulas by hand.
    y = {(0, 0): [1.0, 3.0], (0, 1): [5.0, 7.0], (1, 0): [2.0, 2.0], (1, 1): [10.0, 12.0]}
    frame = pd.DataFrame(
        [{"a": a, "b": b, "v": v} for (a, b), vs in y.items() for v in vs]
    )  # no status column: every row counts
    grand = np.mean([v for vs in y.values() for v in vs])  # 5.25
    cell = {k: np.mean(v) for k, v in y.items()}
    a_mean = {a: np.mean([*y[(a, 0)], *y[(a, 1)]]) for a in (0, 1)}
    b_mean = {b: np.mean([*y[(0, b)], *y[(1, b)]]) for b in (0, 1)}
    ss_a = 4 * sum((a_mean[a] - grand) ** 2 for a in (0, 1))
    ss_b = 4 * sum((b_mean[b] - grand) ** 2 for b in (0, 1))
    ss_ab = 2 * sum(
        (cell[(a, b)] - a_mean[a] - b_mean[b] + grand) ** 2 for a in (0, 1) for b in (0, 1)
    )
    ss_e = sum((v - cell[k]) ** 2 for k, vs in y.items() for v in vs)
    table = by_term(effects(frame, ["a", "b"], "v", resamples=0))
    assert table.loc["a", "ss"] == pytest.approx(ss_a)
    assert table.loc["b", "ss"] == pytest.approx(ss_b)
    assert table.loc["a × b", "ss"] == pytest.approx(ss_ab)
    assert table.loc["residual", "ss"] == pytest.approx(ss_e)
    assert table.loc["a", "f"] == pytest.approx(ss_a / (ss_e / 4))


def test_one_factor_agrees_with_scipy_f_oneway():
    rng = np.random.default_rng(0)
    groups = {"x": rng.normal(0, 1, 5), "y": rng.normal(1, 1, 8), "z": rng.normal(0.5, 2, 3)}
    frame = pd.DataFrame([{"g": g, "m": v} for g, vs in groups.items() for v in vs])
    table = by_term(effects(frame, ["g"], "m", resamples=0))
    expected = stats.f_oneway(*groups.values())
    assert table.loc["g", "f"] == pytest.approx(expected.statistic)
    assert table.loc["g", "p"] == pytest.approx(expected.pvalue)
    values = np.concatenate(list(groups.values()))
    between = sum(len(v) * (v.mean() - values.mean()) ** 2 for v in groups.values())
    assert table.loc["g", "eta_sq"] == pytest.approx(
        between / ((values - values.mean()) ** 2).sum()
    )
    assert (table.loc["g", "df"], table.loc["residual", "df"]) == (2, 13)


def _rss(columns: list[np.ndarray], y: np.ndarray) -> float:
    x = np.column_stack([np.ones(len(y)), *columns])
    fitted = x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return float(((y - fitted) ** 2).sum())


def unbalanced(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in itertools.product("pqr", "uv"):
        for _ in range(rng.integers(2, 7)):  # 2-6 seeds per configuration
            value = {"p": 0, "q": 1, "r": 3}[a] + (0.5 if (a, b) == ("q", "v") else 0)
            rows.append({"a": a, "b": b, "m": value + rng.normal()})
    return pd.DataFrame(rows)


def test_type_two_on_unbalanced_data_matches_full_row_least_squares():
    frame = unbalanced()
    y = frame["m"].to_numpy()
    dummies = {f: [(frame[f] == lv).to_numpy(float) for lv in sorted(set(frame[f]))] for f in "ab"}
    inter = [da * db for da in dummies["a"] for db in dummies["b"]]
    ss_a = _rss(dummies["b"], y) - _rss(dummies["a"] + dummies["b"], y)
    ss_b = _rss(dummies["a"], y) - _rss(dummies["a"] + dummies["b"], y)
    ss_ab = _rss(dummies["a"] + dummies["b"], y) - _rss(dummies["a"] + dummies["b"] + inter, y)
    table = by_term(effects(frame, ["a", "b"], "m", resamples=0))
    assert table.loc["a", "ss"] == pytest.approx(ss_a)
    assert table.loc["b", "ss"] == pytest.approx(ss_b)
    assert table.loc["a × b", "ss"] == pytest.approx(ss_ab)
    swapped = by_term(effects(frame, ["b", "a"], "m", resamples=0))  # order does not matter
    assert swapped.loc["a", "ss"] == pytest.approx(ss_a)
    assert swapped.loc["b × a", "ss"] == pytest.approx(ss_ab)


def test_a_configuration_with_every_run_lost_reduces_the_interactions_df():
    frame = unbalanced()
    frame.loc[(frame["a"] == "r") & (frame["b"] == "v"), "status"] = "diverged"
    frame["status"] = frame["status"].fillna("ok")
    table = by_term(effects(frame, ["a", "b"], "m", resamples=50))
    assert (table.loc["a", "df"], table.loc["b", "df"], table.loc["a × b", "df"]) == (2, 1, 1)
    assert table.loc["residual", "df"] == (frame["status"] == "ok").sum() - 5
    assert np.isfinite(table.loc["a", "omega_sq_low"])


def known_structure(seed: int, seeds: int = 5) -> pd.DataFrame:
    """Factor 'big' moves the metric by 0, 1.5 and 3 noise SDs; 'none' does nothing."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            {"big": big, "none": none, "seed": s, "status": "ok", "m": shift + rng.normal()}
            for big, shift in (("x", 0.0), ("y", 1.5), ("z", 3.0))
            for none in ("p", "q", "r")
            for s in range(seeds)
        ]
    )


def test_a_known_structure_is_ranked_and_the_null_interval_covers_zero():
    table = by_term(effects(known_structure(0), ["none", "big"], "m", seed=0))
    assert table.loc["big", "rank"] == 1
    assert table.loc["big", "omega_sq_low"] > 0.3
    assert table.loc["none", "omega_sq_low"] <= 0 <= table.loc["none", "omega_sq_high"]
    assert table.loc["none", "eta_sq"] < 0.05 < table.loc["big", "eta_sq_low"]
    for name in ("eta_sq", "omega_sq"):
        low, point, high = (table[f"{name}{s}"] for s in ("_low", "", "_high"))
        assert ((low <= point + 0.05) & (point - 0.05 <= high)).iloc[:3].all()


def test_the_null_interval_covers_zero_in_most_result_sets():
    covered = 0
    for k in range(30):
        table = by_term(effects(known_structure(100 + k), ["big", "none"], "m", resamples=300))
        assert table.loc["big", "rank"] == 1
        covered += table.loc["none", "omega_sq_low"] <= 0 <= table.loc["none", "omega_sq_high"]
    assert covered >= 26


def test_the_bootstrap_is_seeded():
    frame = known_structure(0)
    first = effects(frame, ["big", "none"], "m", resamples=200, seed=3)
    pd.testing.assert_frame_equal(
        first, effects(frame, ["big", "none"], "m", resamples=200, seed=3)
    )
    other = effects(frame, ["big", "none"], "m", resamples=200, seed=4)
    assert not np.allclose(first["omega_sq_low"].iloc[:3], other["omega_sq_low"].iloc[:3])


def test_rows_that_did_not_finish_and_constant_factors_are_left_out():
    frame = known_structure(0).assign(activation="relu")
    broken = pd.concat(
        [
            frame,
            frame.head(3).assign(status="failed", m=1e9),
            frame.head(2).assign(m=math.nan),
        ]
    )
    table = effects(broken, ["big", "activation", "none"], "m", resamples=0)
    assert set(table["term"]) == {"big", "none", "big × none", "residual"}
    pd.testing.assert_frame_equal(table, effects(frame, ["big", "none"], "m", resamples=0))
    empty = effects(frame, ["activation"], "m")
    assert empty.empty and list(empty) == list(COLUMNS)


def test_three_factors_give_their_two_way_interactions():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        [
            {"a": a, "b": b, "c": c, "m": rng.normal() + (a == "a1")}
            for a, b, c in itertools.product(["a0", "a1"], ["b0", "b1", "b2"], ["c0", "c1"])
            for _ in range(3)
        ]
    )
    table = by_term(effects(frame, ["a", "b", "c"], "m", resamples=100))
    assert set(table.index) == {"a", "b", "c", "a × b", "a × c", "b × c", "residual"}
    # residual: the three-way interaction (2 df) and the seeds (24 df)
    assert table.loc["residual", "df"] == 36 - (1 + 1 + 2 + 1 + 2 + 1 + 2)
    assert sorted(table["rank"].dropna()) == [1, 2, 3, 4, 5, 6]


def test_interactions_can_be_left_out():
    table = effects(known_structure(0), ["big", "none"], "m", interactions=False, resamples=0)
    assert list(table["term"]) == ["big", "none", "residual"]
    assert table.set_index("term").loc["residual", "df"] == 45 - 5
