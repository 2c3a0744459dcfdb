"""The lesson's experiment, asserted on the stored tables of a real `seed` run."""

from __future__ import annotations

import pandas as pd
import pytest

from benchinit import load_results, load_study, run
from benchinit.engine.execute import plan, run_batch

N01, N001 = "normal", "normal(std=0.01)"


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    run(load_study("seed"), out, report=False, progress=False)
    return load_results(out)


def layer_means(results, metric):
    layers = results.labelled("layers")
    rows = layers[layers["metric"] == metric]
    return rows.groupby(["activation", "initializer", "layer"])["value"].mean()


def test_every_cell_is_stored_ok(seed):
    assert len(seed.runs) == 120 and set(seed.runs["status"]) == {"ok"}
    # 5 layers x (9 statistics + 2 Jacobian moments + their 2 predictions)
    assert len(seed.layers) == 120 * 5 * 13
    assert len(seed.histograms) == 120 * 5 * 32  # activations, every layer, below + above
    assert len(seed.spectra) == 120 * 32  # the Jacobian's spectrum at the last layer
    assert set(seed.spectra["layer"]) == {5}


def test_sigmoid_n01_saturates_at_0_and_1(seed):
    h = seed.labelled("histograms")
    last = h[(h["activation"] == "sigmoid") & (h["initializer"] == N01) & (h["layer"] == 5)]
    counts = last.groupby("bin")["count"].sum()
    outer = counts.loc[[0, 1, 2, 27, 28, 29]].sum() / counts.sum()
    assert outer > 0.6, f"only {outer:.2f} of layer-5 activations in the outer bins"
    assert counts.loc[0] > counts.loc[10:19].sum() and counts.loc[29] > counts.loc[10:19].sum()


def test_sigmoid_n001_collapses_to_one_half(seed):
    h = seed.labelled("histograms")
    last = h[(h["activation"] == "sigmoid") & (h["initializer"] == N001) & (h["layer"] == 5)]
    counts = last.groupby("bin")["count"].sum()
    assert counts.loc[[14, 15]].sum() / counts.sum() > 0.95  # the bins around 0.5
    assert layer_means(seed, "act_std").loc[("sigmoid", N001, 5)] < 0.02


def test_relu_kaiming_keeps_its_std_and_xavier_shrinks_it(seed):
    std = layer_means(seed, "act_std")
    kaiming = std.loc[("relu", "kaiming_normal")]
    assert 0.5 < kaiming.loc[5] / kaiming.loc[1] < 2.0
    xavier = std.loc[("relu", "xavier_normal")]
    assert all(xavier.diff().dropna() < 0), "xavier+relu shrinks layer by layer"
    assert xavier.loc[5] / xavier.loc[1] < 0.35  # about (1/sqrt 2)^4


def test_relu_n01_explodes_past_the_range_not_into_its_edge(seed):
    """N(0,1) + ReLU grows ~sqrt(width / 2) per layer: layer 5's activations lie far past
    the histogram's 3.0, counted above the range, not as a spike in its last bin."""
    h = seed.labelled("histograms")
    last = h[(h["activation"] == "relu") & (h["initializer"] == N01) & (h["layer"] == 5)]
    counts = last.groupby("bin")["count"].sum()
    above = last[last["right"] == float("inf")]
    assert set(above["bin"]) == {30} and set(above["left"]) == {3.0}
    assert counts.loc[30] / counts.sum() > 0.4, "most non-zero activations beyond 3"
    assert counts.loc[29] < 0.01 * counts.loc[30], "the last bin holds only its own values"
    assert counts.loc[-1] == 0, "ReLU is never below 0"
    first = h[(h["activation"] == "relu") & (h["initializer"] == N01) & (h["layer"] == 1)]
    share = first.groupby("bin")["count"].sum()
    assert 0.3 < share.loc[30] / share.sum() < 0.5, "the description's 38% at layer 1"
    kaiming = h[(h["activation"] == "relu") & (h["initializer"] == "kaiming_normal")]
    share = kaiming.groupby("bin")["count"].sum()
    assert share.loc[30] / share.sum() < 0.1, "He keeps the layers within the range"


def test_tanh_n001_shrinks_toward_zero(seed):
    std = layer_means(seed, "act_std").loc[("tanh", N001)]
    assert all(std.diff().dropna() < 0) and std.loc[5] < 1e-3 * std.loc[1]


def test_gradient_norms_show_vanishing_and_exploding(seed):
    grad = layer_means(seed, "grad_norm")
    tiny = grad.loc[("sigmoid", N001)]
    assert tiny.loc[1] < 1e-5 * tiny.loc[5], "sigmoid + N(0, 0.01): vanishes toward layer 1"
    sigmoid = grad.loc[("sigmoid", "xavier_normal")]
    assert sigmoid.loc[1] < 0.05 * sigmoid.loc[5], "sigmoid's phi' <= 1/4 vanishes even with Xavier"
    for activation in ("relu", "tanh"):  # tiny weights: tiny gradients at every layer
        assert (grad.loc[(activation, N001)] < 1e-3 * grad.loc[(activation, "xavier_normal")]).all()
    chaotic = grad.loc[("tanh", N01)]
    assert chaotic.loc[1] > 10 * chaotic.loc[5], "tanh + N(0, 1) explodes toward layer 1"
    kaiming = grad.loc[("relu", "kaiming_normal")]
    assert (kaiming / kaiming.loc[1]).between(0.9, 1.1).all(), "relu + He: the same at every layer"
    xavier = grad.loc[("tanh", "xavier_normal")]
    assert xavier.loc[1] < 1.5 * xavier.loc[5]
    dead = layer_means(seed, "dead_frac").loc[("relu", "kaiming_normal")]
    assert all(dead.between(0.4, 0.6))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("initializer", ["xavier_normal", "kaiming_normal"])
def test_theory_matches_measurement(seed, activation, initializer):
    measured = layer_means(seed, "preact_std").loc[(activation, initializer)]
    predicted = layer_means(seed, "theory_std").loc[(activation, initializer)]
    assert ((measured / predicted - 1).abs() < 0.10).all(), pd.concat([measured, predicted], axis=1)


def test_run_level_metrics(seed):
    by = seed.runs.groupby(["activation", "initializer"])
    assert by["saturated_frac"].mean().loc[("sigmoid", N01)] > 0.5
    assert by["std_drift"].mean().loc[("relu", "kaiming_normal")] < 0.3
    assert by["std_drift"].mean().loc[("tanh", N001)] > 10  # 2^-13: collapsed
    assert by["grad_drift"].mean().loc[("sigmoid", N001)] > 5  # 5 decades of vanishing
    summary = seed.summary("act_entropy").set_index(["activation", "initializer"])
    for activation, best in (
        ("relu", "kaiming_normal"),
        ("tanh", "xavier_normal"),
        ("sigmoid", "xavier_normal"),
    ):
        for bad in (N01, N001):  # more spread, beyond the 95% intervals
            assert (
                summary.loc[(activation, best), "ci_low"]
                > summary.loc[(activation, bad), "ci_high"]
            )
    relu = summary.loc["relu"]
    assert relu.loc["kaiming_normal", "mean"] > relu.loc["xavier_normal", "mean"] + 1


def test_leaderboard_ranks_the_lessons_answer_first(seed):
    summary = seed.summary()  # main metric: act_entropy, higher is better
    assert seed.metric == "act_entropy"
    for activation, expected in (("relu", "kaiming_normal"), ("tanh", "kaiming_normal")):
        rows = summary[summary["activation"] == activation]
        assert rows.iloc[0]["initializer"] == expected
        assert set(rows.iloc[-2:]["initializer"]) == {N01, N001}


def test_stacked_equals_one_at_a_time():
    study = load_study("seed", ["data.samples=200"], seeds=2)
    cells = study.cells()

    def tables(max_members):
        batches = plan(cells, study.registry, device="cpu", threads=1, max_members=max_members)
        parts = [run_batch(b) for b in batches]
        return {
            t: pd.concat([p[t] for p in parts])
            .sort_values(
                [c for c in ("cell", "phase", "layer", "metric", "bin") if c in parts[0][t]]
            )
            .reset_index(drop=True)
            for t in ("runs", "layers", "histograms")
        }

    stacked, alone = tables(64), tables(1)
    assert (
        len(plan(cells, study.registry, device="cpu", threads=1)) == 3
    )  # one stack per activation
    pd.testing.assert_frame_equal(stacked["layers"], alone["layers"], rtol=1e-5)
    pd.testing.assert_frame_equal(stacked["histograms"], alone["histograms"])
    cols = ["cell", "status", "std_drift", "saturated_frac", "dead_frac", "grad_drift"]
    pd.testing.assert_frame_equal(stacked["runs"][cols], alone["runs"][cols], rtol=1e-5)
