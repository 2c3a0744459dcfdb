"""Learning rates across width (benchinit.analysis.transfer): best rates, slopes, transfer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from benchinit.analysis.transfer import best_rates, rate_slopes, transferred

RATES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def tuning(optimum):
    """Tuning runs whose loss is a parabola in log rate around ``optimum(width)``."""
    rows = []
    for kind, width, lr, seed in itertools.product(("a", "b"), (64, 256, 1024), RATES, (0, 1)):
        centre = math.log(optimum(kind, width))
        rows.append(
            {
                "kind": kind,
                "model.width": width,
                "tuned.optimizer.lr": lr,
                "seed": seed,
                "val_loss": 0.2 + 0.05 * (math.log(lr) - centre) ** 2 + 0.001 * seed,
            }
        )
    return pd.DataFrame(rows)


def test_best_rate_is_the_parabolas_vertex_and_the_slope_is_exact():
    """kind a: optimum 3e-2 * (64 / width)^(1/2) (slope -1/2); kind b: fixed at 3e-3."""
    frame = tuning(lambda kind, w: 3e-2 * (64 / w) ** 0.5 if kind == "a" else 3e-3)
    best = best_rates(frame, ["kind"])
    b = best[best["kind"] == "b"]
    assert np.allclose(b["lr"], 3e-3, rtol=1e-9)  # three points of a parabola: its vertex
    assert set(b["grid_lr"]) == {1e-3} and set(b["grid_index"]) == {1}
    slopes = rate_slopes(best, ["kind"]).set_index("kind")
    assert slopes.loc["a", "slope"] == pytest.approx(-0.5, abs=1e-9)
    assert slopes.loc["a", "ci_low"] == pytest.approx(-0.5, abs=1e-6)  # on a line: no spread
    assert slopes.loc["b", "slope"] == pytest.approx(0.0, abs=1e-9)
    assert slopes.loc["b", "steps"] == 0 and slopes.loc["a", "widths"] == 3


def test_a_best_rate_at_the_grids_edge_is_flagged_and_diverged_runs_count_as_worst():
    frame = tuning(lambda kind, w: 1e-5)
    frame.loc[frame["tuned.optimizer.lr"] == 1e-4, "val_loss"] = np.nan  # diverged there
    best = best_rates(frame, ["kind"])
    assert set(best["grid_lr"]) == {1e-3} and not best["edge"].any()
    assert rate_slopes(best, ["kind"])["steps"].tolist() == [0, 0]
    edge = best_rates(tuning(lambda kind, w: 1e-5), ["kind"])
    assert edge["edge"].all() and set(edge["lr"]) == {1e-4}


def test_transfer_regret_is_the_loss_at_the_narrow_widths_rate_minus_the_best():
    frame = tuning(lambda kind, w: 1e-2 * 64 / w if kind == "a" else 1e-2)
    best = best_rates(frame, ["kind"])
    means = (
        frame.groupby(["kind", "model.width", "tuned.optimizer.lr"])["val_loss"]
        .mean()
        .reset_index()
        .rename(columns={"model.width": "width", "tuned.optimizer.lr": "lr", "val_loss": "value"})
    )
    moved = transferred(means, best, ["kind"]).set_index(["kind", "width"])
    assert (moved["transferred_lr"] == 1e-2).all()
    assert moved.loc[("b", 1024), "regret"] == pytest.approx(0.0)
    assert moved.loc[("a", 64), "regret"] == pytest.approx(0.0)
    # at 1024 the best grid rate is 1e-3; 1e-2 sits log(16) - log(10) further from 6.25e-4
    far, near = math.log(1e-2 / 6.25e-4), math.log(1e-3 / 6.25e-4)
    assert moved.loc[("a", 1024), "regret"] == pytest.approx(0.05 * (far**2 - near**2))
