"""Each built-in study, shrunk with --set, shows what its description promises."""

from __future__ import annotations

import pytest

from benchinit import load_results, load_study
from benchinit.cli import main
from benchinit.study import builtin_studies


def run_builtin(name: str, tmp_path, *overrides: str, seeds: int | None = None):
    args = ["run", name, "--out", str(tmp_path / name), "--quiet", "--no-report"]
    for override in overrides:
        args += ["--set", override]
    if seeds is not None:
        args += ["--seeds", str(seeds)]
    assert main(args) == 0
    return load_results(tmp_path / name)


@pytest.mark.parametrize("name", sorted(builtin_studies()))
def test_every_builtin_study_loads_and_describes_itself(name):
    study = load_study(name)
    assert study.description.strip(), f"{name} says what a reader should expect"
    assert (
        "what to expect" in study.description.lower()
        or "what to look for" in study.description.lower()
    )
    assert study.cells()


def test_builtin_studies_are_the_promised_set():
    assert {
        "seed",
        "mnist-mlp",
        "optimizers",
        "losses",
        "losses-regression",
        "depth",
        "linear",
    } <= set(builtin_studies())


def test_mnist_mlp_zeros_stays_at_chance_and_he_with_adam_learns(tmp_path):
    results = run_builtin(
        "mnist-mlp",
        tmp_path,
        'grid.initializer=["zeros", "kaiming_normal"]',
        'grid.activation=["relu"]',
        'grid.optimizer=["adam"]',
        "train.epochs=2",
        seeds=1,
    )
    accuracy = results.runs.set_index("initializer")["test_accuracy"]
    assert accuracy["zeros"] < 0.15, "symmetry is never broken: chance accuracy"
    assert accuracy["kaiming_normal"] > 0.85
    assert accuracy["kaiming_normal"] > accuracy["zeros"] + 0.6


def test_optimizers_momentum_and_adam_beat_plain_sgd(tmp_path):
    results = run_builtin("optimizers", tmp_path, "train.epochs=3", seeds=2)
    loss = results.runs.groupby("optimizer")["train_loss"].mean()
    plain = loss["sgd(lr=0.05)"]
    assert loss["sgd(lr=0.05, momentum=0.9)"] < 0.6 * plain
    assert loss["adam"] < 0.6 * plain and loss["adamw"] < 0.6 * plain


def test_losses_cross_entropy_beats_l1(tmp_path):
    results = run_builtin("losses", tmp_path, "train.epochs=5", seeds=2)
    accuracy = results.runs.groupby("loss")["test_accuracy"].mean()
    assert accuracy["cross_entropy"] > 0.9
    assert accuracy["cross_entropy"] > accuracy["l1"] + 0.05


def test_losses_regression_robust_losses_ignore_outliers(tmp_path):
    results = run_builtin("losses-regression", tmp_path, "train.epochs=30", seeds=2)
    assert results.metric == "test_mse"
    mse = results.runs.groupby("loss")["test_mse"].mean()
    assert mse["l1"] < 0.5 * mse["mse"] and mse["huber"] < 0.5 * mse["mse"]
    assert mse["gaussian_nll"] > 2 * mse["l1"], "the Gaussian likelihood's mean is MSE's"


def test_depth_he_trains_and_xavier_stalls(tmp_path):
    results = run_builtin("depth", tmp_path, seeds=1)
    loss = results.runs.set_index("initializer")["train_loss"]
    assert loss["xavier_normal"] > 2.2, "stalled at ln 10, a uniform guess"
    assert loss["kaiming_normal"] < 0.5 * loss["xavier_normal"]


def test_linear_w_and_b_approach_the_truth(tmp_path):
    results = run_builtin("linear", tmp_path, seeds=1)
    curves = results.labelled("curves")
    params = curves[curves["split"] == "params"]
    last = params[params["epoch"] == params["epoch"].max()]
    for initializer, group in last.groupby("initializer"):
        values = group.set_index("metric")["value"]
        assert values["w"] == pytest.approx(2.0, abs=0.05), initializer
        assert values["b"] == pytest.approx(1.0, abs=0.05), initializer
    first = params[(params["epoch"] == 0) & (params["initializer"] == "zeros")]
    assert set(first["value"]) == {0.0}, "zeros start at w = b = 0"
    truth = curves[curves["split"] == "truth"].set_index("metric")["value"]
    assert truth["w"].iloc[0] == 2.0 and truth["b"].iloc[0] == 1.0
