"""Issue 13's acceptance, on the stored tables of real runs: the Jacobian spectra of wide
linear networks match free probability, and each layer's mean squared singular value
matches mean-field theory's chi_1 (Pennington et al. 2017; Schoenholz et al. 2017)."""

from __future__ import annotations

import textwrap

import pytest
import torch

from benchinit import load_results, load_study, run
from benchinit.analysis.meanfield import chi_1

STUDY = """
[study]
name = "theory"
kind = "signal"
seeds = 2
[data]
name = "gaussian"
samples = 64
features = 256
[model]
depth = 10
width = 256
bias = {bias}
bias_init = "normal(std={sigma_b})"
[grid]
initializer = {initializers}
activation = {activations}
"""


def last_values(tmp_path, name, **fields):
    path = tmp_path / f"{name}.toml"
    text = STUDY.format(**fields)
    if fields["bias"] == "false":  # without biases a bias_init is ignored, with a warning
        text = "\n".join(line for line in text.splitlines() if not line.startswith("bias_init"))
    path.write_text(textwrap.dedent(text))
    run(load_study(path), tmp_path / name, report=False, progress=False)
    layers = load_results(tmp_path / name).labelled("layers")
    return layers.pivot_table(
        index=["initializer", "activation", "layer"], columns="metric", values="value"
    )


@pytest.mark.slow
def test_linear_networks_match_free_probability(tmp_path):
    table = last_values(
        tmp_path,
        "linear",
        bias="false",
        sigma_b=0.0,
        initializers='["lecun_normal", "orthogonal"]',
        activations='["identity"]',
    )
    gaussian, orthogonal = (
        table.loc[("lecun_normal", "identity")],
        table.loc[("orthogonal", "identity")],
    )
    for depth in (5, 10):
        assert abs(gaussian.loc[depth, "jac_sv2_mean"] - 1) < 0.10
        assert abs(gaussian.loc[depth, "jac_sv2_var"] / depth - 1) < 0.15
    assert (orthogonal["jac_sv2_var"] < 0.05).all(), "orthogonal: every singular value is 1"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("activation", "gains", "sigma_b"),
    [("relu", (1.2, 1.6), 0.0), ("tanh", (1.0, 2.0), 0.3)],
)
def test_each_layer_scales_the_jacobian_by_chi_1(tmp_path, activation, gains, sigma_b):
    inits = "[" + ", ".join(f'"lecun_normal(gain={g})"' for g in gains) + "]"
    table = last_values(
        tmp_path,
        activation,
        bias="true",
        sigma_b=sigma_b,
        initializers=inits,
        activations=f'["{activation}"]',
    )
    phi = {"relu": torch.relu, "tanh": torch.tanh}[activation]
    for gain in gains:
        label = f"lecun_normal(gain={gain:g})" if gain != 1.0 else "lecun_normal"
        mean = table.loc[(label, activation)]["jac_sv2_mean"]
        measured = (mean.loc[10] / mean.loc[6]) ** (1 / 4)  # per layer, near the fixed point
        expected = chi_1(phi, gain, sigma_b)
        assert abs(measured / expected - 1) < 0.10, (gain, measured, expected)


def test_chi_1_is_1_for_tanh_at_sigma_w_1_without_bias():
    assert abs(chi_1(torch.tanh, 1.0, 0.0) - 1.0) < 1e-6
