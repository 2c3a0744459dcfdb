"""Each built-in study, shrunk with --set, shows what its description promises."""

from __future__ import annotations

import pytest

from benchinit import load_results, load_study
from benchinit.cli import main
from benchinit.study.sources import builtin_studies


def run_builtin(name: str, tmp_path, *overrides: str, seeds: int | None = None):
    args = ["run", name, "--out", str(tmp_path / name), "--quiet", "--no-report"]
    for override in overrides:
        args += ["--set", override]
    if seeds is not None:
        args += ["--seeds", str(seeds)]
    assert main(args) == 0
    return load_results(tmp_path / name)


@pytest.mark.parametrize("name", sorted(builtin_studies()))
def test_every_builtin_study_loads_and_describes_itself(name, monkeypatch):
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD")  # cnn-init names lsuv (plugins/)
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
        "tuned-init",
        "isometry",
        "phase",
        "residual",
        "width-transfer",
        "cnn-init",
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


def test_optimizers_tuned_each_at_its_own_rate(tmp_path):
    results = run_builtin(
        "optimizers",
        tmp_path,
        "train.epochs=3",
        # the study's step decay (step_size 4) would never step in 3 epochs: one cell
        # under two labels, which a study refuses; step once here
        "grid.optimizer=['sgd', 'sgd(momentum=0.9)', \"sgd(schedule='step', step_size=2)\", "
        "'adam', 'adamw']",
        "tune.optimizer.lr=[0.001, 0.003, 0.1, 0.3]",
        "tune.seeds=1",
        seeds=2,
    )
    rate = results.runs.groupby("optimizer")["tuned.optimizer.lr"].first()
    assert rate["sgd"] >= 30 * rate["adam"], "plain SGD wants a far larger rate than Adam"
    assert rate["adamw"] <= 0.003 and rate["sgd(momentum=0.9)"] <= rate["sgd"]
    accuracy = results.runs.groupby("optimizer")["test_accuracy"].mean()
    best = accuracy[["sgd(momentum=0.9)", "adam", "adamw"]]
    assert (best >= accuracy["sgd"]).all(), "plain SGD is last even at its own best rate"
    assert len(results.tuning) == 5 * 4 * 1, "every optimizer x rate x tuning seed"


def test_tuned_init_xavier_chooses_a_larger_rate_than_he(tmp_path):
    results = run_builtin(
        "tuned-init",
        tmp_path,
        'grid.initializer=["kaiming_normal", "xavier_normal"]',
        "train.epochs=2",
        "tune.optimizer.lr=[0.003, 0.01, 0.03]",
        "tune.seeds=1",
        seeds=1,
    )
    rate = results.runs.set_index("initializer")["tuned.optimizer.lr"]
    assert rate["xavier_normal"] >= rate["kaiming_normal"]
    # Xavier's smaller weights want a larger rate: what a 3x larger rate buys it is far more
    # than what it buys He. (Which rate He picks at 2 epochs is a near tie, 88% against 89%
    # of 400 validation digits, that flips between CPUs: the test does not hang on it.)
    tried = results.tuning.pivot_table(
        index="tuned.optimizer.lr", columns="initializer", values="val_accuracy"
    )
    gain = tried.loc[0.03] - tried.loc[0.01]
    assert gain["xavier_normal"] > gain["kaiming_normal"] + 0.1


def _last_layer(results, metric):
    layers = results.labelled("layers")
    last = layers[(layers["layer"] == layers["model.depth"]) & (layers["metric"] == metric)]
    return last.groupby(["activation", "initializer", "model.depth"])["value"].mean()


def test_isometry_orthogonal_linear_networks_keep_every_singular_value_at_1(tmp_path):
    results = run_builtin("isometry", tmp_path, 'grid."model.depth"=[5, 20]', seeds=1)
    mean, var = _last_layer(results, "jac_sv2_mean"), _last_layer(results, "jac_sv2_var")
    spread = var / mean**2
    assert spread[("identity", "orthogonal", 20)] < 0.05
    for depth in (5, 20):  # free probability: variance = depth for N(0, 1/N) weights
        assert 0.7 * depth < spread[("identity", "lecun_normal", depth)] < 1.3 * depth
    assert spread[("tanh", "orthogonal", 20)] < 3 < 10 < spread[("tanh", "lecun_normal", 20)]
    assert spread[("relu", "orthogonal", 20)] > 10, "ReLU breaks isometry either way"


def test_phase_deep_networks_train_only_near_the_critical_scale(tmp_path):
    gains = '["lecun_normal(gain=0.5)", "lecun_normal(gain=1.32)", "lecun_normal(gain=4.0)"]'
    results = run_builtin(
        "phase", tmp_path, f"grid.initializer={gains}", 'grid."model.depth"=[4, 32]', seeds=1
    )
    accuracy = results.runs.set_index(["initializer", "model.depth"])["test_accuracy"]
    assert accuracy[("lecun_normal(gain=1.32)", 32)] > 0.6, "critical: trains 32 layers deep"
    assert accuracy[("lecun_normal(gain=0.5)", 32)] < 0.3, "ordered: does not"
    assert accuracy[("lecun_normal(gain=4)", 32)] < 0.3, "chaotic: does not"
    assert accuracy[("lecun_normal(gain=1.32)", 4)] > 0.8


def test_residual_with_normalization_trains_where_a_plain_network_does_not(tmp_path):
    results = run_builtin("residual", tmp_path, 'grid."model.depth"=[8, 32]', seeds=1)
    runs = results.runs.set_index(["model.residual", "model.norm", "model.depth"])
    accuracy = runs["test_accuracy"]
    assert accuracy[("False", "none", 8)] > 0.8, "a plain network trains 8 layers deep"
    assert accuracy[("False", "none", 32)] < 0.5, "and not 32"
    assert accuracy[("1/sqrt(depth)", "layer", 32)] > 0.85, "a residual, normalized one does"


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


def test_cnn_init_he_trains_a_deep_plain_cnn_and_small_normal_does_not(tmp_path):
    """He et al. 2015's claim on the shrunk grid (10 conv layers, 2 epochs, 3 seeds).
    Measured on a 2-core CPU: He 0.40-0.69 test accuracy over seeds 0-3, N(0, 0.01^2)
    0.078-0.092 with a training loss of 2.303-2.305 (ln 10: chance)."""
    results = run_builtin(
        "cnn-init",
        tmp_path,
        'grid.initializer=["kaiming_normal", "normal(std=0.01)"]',
        "train.epochs=2",
    )
    runs = results.runs.groupby("initializer")
    accuracy, loss = runs["test_accuracy"], runs["train_loss"]
    assert accuracy.min()["kaiming_normal"] > 0.25, "He trains, every seed"
    assert accuracy.max()["normal(std=0.01)"] < 0.15, "the small normal stays at chance"
    assert loss.min()["normal(std=0.01)"] > 2.28  # ln 10 = 2.303: nothing learned
    assert loss.max()["kaiming_normal"] < loss.min()["normal(std=0.01)"]


def test_fixup_trains_a_resnet_20_without_normalization_where_he_does_not(tmp_path):
    """Fixup's claim on the shrunk grid (no normalization, 2 epochs, 2 seeds). Measured on a
    2-core CPU: He diverged in seed 0 and stayed at chance (training loss 2.31) in seed 1;
    Fixup reached a training loss of 1.98 and 1.88 (test accuracy 0.41 and 0.52)."""
    results = run_builtin(
        "fixup",
        tmp_path,
        'grid.initializer=["kaiming_normal", "fixup"]',
        'grid.model.norm=["none"]',
        "train.epochs=2",
        seeds=2,
    )
    runs = results.runs.set_index(["initializer", "seed"])
    for seed in (0, 1):
        he, fixup = runs.loc[("kaiming_normal", seed)], runs.loc[("fixup", seed)]
        assert he["status"] == "diverged" or he["train_loss"] > 2.25, "He: diverges or stalls"
        assert fixup["status"] == "ok" and fixup["train_loss"] < 2.1, "Fixup trains"
        assert fixup["test_accuracy"] > 0.25
