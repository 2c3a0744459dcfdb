"""The Jacobian probe: exact against autograd, and against free probability on real products."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from benchinit.analysis import meanfield
from benchinit.engine.jacobian import (
    LOG10_SV_BINS,
    LOG10_SV_RANGE,
    input_jacobians,
    jacobian_spectrum,
    log10_sv_histogram,
    spectrum_theory,
    weight_spread,
)
from benchinit.engine.models import StackedMLP

F64 = torch.float64


def model_of(
    members: int,
    sizes: list[int],
    sigma_w: float = 1.0,
    *,
    sigma_b: float = 0.0,
    orthogonal: bool = False,
    seed: int = 0,
    **kwargs,
) -> StackedMLP:
    """A float64 stack with N(0, sigma_w^2 / n_in) (or orthogonal, gain sigma_w) weights."""
    model = StackedMLP(members, sizes, head=False, bias=sigma_b > 0, dtype=F64, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer, w in enumerate(model.weights):
            for m in range(members):
                if orthogonal:
                    torch.nn.init.orthogonal_(w[m], gain=sigma_w, generator=g)
                else:
                    w[m].normal_(0.0, sigma_w / math.sqrt(w.shape[2]), generator=g)
            if model.biases is not None:
                model.biases[layer].normal_(0.0, sigma_b, generator=g)
    return model


def randomize_norms(model: StackedMLP, seed: int = 1) -> None:
    """Gains and shifts away from 1 and 0, and running statistics away from 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for params in (model.gains, model.shifts):
            for p in params or []:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=F64))
        for name, buffer in model.named_buffers():
            noise = torch.rand(buffer.shape, generator=g, dtype=F64)
            buffer.copy_(0.5 + noise if "var" in name else noise - 0.5)


CASES = {
    "plain": {},
    "residual": {"residual": 0.7},
    "layer": {"norm": "layer"},
    "residual-layer": {"residual": 0.5, "norm": "layer"},
    "batch-eval": {"norm": "batch"},
    "batch-train": {"norm": "batch"},
}


@pytest.mark.parametrize("case", CASES)
def test_batched_jacobian_equals_autograd(case):
    """Every layer's J for every member and probe input, against autograd on one of each."""
    torch.manual_seed(0)
    model = model_of(3, [6, 5, 5, 5], 1.3, sigma_b=0.2, **CASES[case])
    randomize_norms(model)
    if case == "batch-eval":
        model.eval()
    x = torch.randn(4, 6, dtype=F64)
    batch = torch.randn(16, 6, dtype=F64)  # the statistics a training-mode batch norm holds
    frozen = None
    if case == "batch-train":
        frozen = [s.statistics for s in model.steps(batch, torch.tanh, update=False)]
    ours = list(input_jacobians(model, x, torch.tanh, batch=batch))
    assert [tuple(j.shape) for j in ours] == [(3, 4, 5, 6)] * 3
    for g in range(3):
        for p in range(4):

            def outputs(v, g=g):
                stats = (
                    None if frozen is None else [(m[g : g + 1], s[g : g + 1]) for m, s in frozen]
                )
                steps = model.steps(v[None], torch.tanh, member=g, statistics=stats, update=False)
                return tuple(step.out[0, 0] for step in steps)

            true = jacobian(outputs, x[p])
            for layer in range(3):
                assert torch.allclose(ours[layer][g, p], true[layer], atol=1e-12)


def test_moments_and_singular_values_are_those_of_the_jacobian():
    torch.manual_seed(0)
    model = model_of(2, [7, 9, 4], 1.5, norm="layer")  # n_1 > n_0 and n_2 < n_0
    x = torch.randn(3, 7, dtype=F64)
    stats, log10_sv = jacobian_spectrum(model, x, torch.tanh)
    for layer, jac in enumerate(input_jacobians(model, x, torch.tanh)):
        eigenvalues = torch.linalg.eigvalsh(jac @ jac.mT).flatten(1)  # all P n_l of them
        assert torch.allclose(stats[layer]["jac_sv2_mean"], eigenvalues.mean(1))
        assert torch.allclose(stats[layer]["jac_sv2_var"], eigenvalues.var(1, unbiased=False))
    expected = torch.linalg.svdvals(jac).log10().flatten(1)
    assert log10_sv.shape == (2, 3 * 4)
    # layer norm's centring makes one singular value exactly 0: numerically 1e-16 either way
    real = expected > -8
    assert torch.allclose(log10_sv[real], expected[real]) and (log10_sv[~real] < -7).all()
    per_member, _ = jacobian_spectrum(model, x.expand(2, 3, 7), torch.tanh)  # [G, P, n_0]
    assert torch.allclose(per_member[-1]["jac_sv2_var"], stats[-1]["jac_sv2_var"])
    quick, none = jacobian_spectrum(model, x, torch.tanh, singular_values=False)
    assert none.shape == (2, 0)
    for a, b in zip(stats, quick, strict=True):
        assert torch.allclose(a["jac_sv2_var"], b["jac_sv2_var"])


@pytest.mark.parametrize("depth", [5, 10])
def test_linear_gaussian_network_has_mean_1_and_variance_l(depth):
    """Free probability (Pennington et al. 2017): i.i.d. N(0, 1/N) weights, identity phi."""
    model = model_of(8, [256] * (depth + 1))
    x = torch.randn(1, 256, dtype=F64)  # a linear network's J does not depend on x
    stats, _ = jacobian_spectrum(model, x, lambda z: z)
    for layer in (depth // 2, depth):
        mean = float(stats[layer - 1]["jac_sv2_mean"].mean())
        var = float(stats[layer - 1]["jac_sv2_var"].mean())
        assert mean == pytest.approx(1.0, rel=0.10)
        assert var == pytest.approx(layer, rel=0.15)


def test_linear_orthogonal_network_is_isometric():
    model = model_of(4, [256] * 11, orthogonal=True)
    stats, log10_sv = jacobian_spectrum(model, torch.randn(1, 256, dtype=F64), lambda z: z)
    for layer in stats:
        assert (layer["jac_sv2_var"] < 0.05).all()
        assert torch.allclose(layer["jac_sv2_mean"], torch.ones(4, dtype=F64))
    assert log10_sv.abs().max() < 1e-10  # every singular value is 1


SCALES = [("tanh", 1.2), ("tanh", 2.0), ("relu", 1.2), ("relu", math.sqrt(2))]


@pytest.mark.parametrize(("name", "sigma_w"), SCALES)
def test_chi_1_is_the_per_layer_mean_squared_singular_value(name, sigma_w):
    """Inputs scaled so that every layer sits at q*: each layer multiplies the mean by chi_1."""
    phi = getattr(torch, name)
    sigma_b = 0.1 if name == "tanh" else 0.0
    fixed = meanfield.q_star(phi, sigma_w, sigma_b) if name == "tanh" else 1.0
    chi = meanfield.chi_1(phi, sigma_w, sigma_b)
    model = model_of(4, [400] * 7, sigma_w, sigma_b=sigma_b)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 400, generator=g, dtype=F64) * math.sqrt((fixed - sigma_b**2) / sigma_w**2)
    stats, _ = jacobian_spectrum(model, x, phi, singular_values=False)
    means = [float(s["jac_sv2_mean"].mean()) for s in stats]
    for layer, mean in enumerate(means, start=1):
        assert mean == pytest.approx(chi**layer, rel=0.10)
    ratios = [b / a for a, b in itertools.pairwise(means)]
    assert sum(ratios) / len(ratios) == pytest.approx(chi, rel=0.10)


@pytest.mark.parametrize("orthogonal", [False, True], ids=["gaussian", "orthogonal"])
@pytest.mark.parametrize(("name", "sigma_w"), [("tanh", 1.1), ("relu", math.sqrt(2))])
def test_spectrum_theory_predicts_mean_and_variance(name, sigma_w, orthogonal):
    """The free-probability recursion, from each member's own weights, at every layer."""
    phi = getattr(torch, name)
    model = model_of(4, [300] * 7, sigma_w, orthogonal=orthogonal)
    x = torch.randn(8, 300, generator=torch.Generator().manual_seed(1), dtype=F64)
    stats, _ = jacobian_spectrum(model, x, phi)
    predicted = spectrum_theory(model, x, phi)
    assert predicted is not None
    means, variances = (torch.tensor(p, dtype=F64).mean(0).tolist() for p in predicted)
    for layer, measured in enumerate(stats):
        assert float(measured["jac_sv2_mean"].mean()) == pytest.approx(means[layer], rel=0.10)
        assert float(measured["jac_sv2_var"].mean()) == pytest.approx(variances[layer], rel=0.20)
    if name == "relu":  # Pennington et al. 2017: at chi = 1, 2L (Gaussian) and L (orthogonal)
        assert float(variances[-1]) == pytest.approx(6.0 if orthogonal else 12.0, rel=0.05)


def test_no_theory_for_residual_or_normalized_models():
    x = torch.randn(4, 8, dtype=F64)
    assert spectrum_theory(model_of(2, [8, 8, 8], residual=1.0), x, torch.tanh) is None
    assert spectrum_theory(model_of(2, [8, 8, 8], norm="batch"), x, torch.tanh) is None


def test_weight_spread_tells_gaussian_from_orthogonal():
    gaussian = model_of(3, [300, 300]).weights[0]
    orthogonal = model_of(3, [300, 300], orthogonal=True).weights[0]
    assert torch.allclose(weight_spread(gaussian), torch.full((3,), 2.0, dtype=F64), rtol=0.02)
    assert torch.allclose(weight_spread(orthogonal), torch.ones(3, dtype=F64))
    wide = model_of(2, [100, 300]).weights[0]  # r = n_out / n_in = 3: 1 + 1/r
    assert torch.allclose(weight_spread(wide), torch.full((2,), 4 / 3, dtype=F64), rtol=0.03)


def test_histogram_of_log10_singular_values():
    values = torch.tensor([[-10.0, -4.0, -3.9, 0.0, 1.99, 5.0, -math.inf, math.nan]])
    counts = log10_sv_histogram(values)
    assert counts.shape == (1, LOG10_SV_BINS + 2)  # below, the bins, above
    assert counts.sum() == 7  # the NaN is not counted
    assert counts[0, 0] == 2 and counts[0, -1] == 1  # below: -10 and -inf; above: 5
    assert counts[0, 1] == 2 and counts[0, -2] == 1  # -4 and -3.9; 1.99
    assert counts[0, 21] == 1  # 0.0: (0 - -4) / 0.2 = bin 20, after the "below" column


def test_an_exploded_member_gets_nan_and_harms_no_one():
    model = model_of(3, [10, 10, 10], 1.5)
    x = torch.randn(4, 10, dtype=F64)
    before, sv_before = jacobian_spectrum(model, x, torch.tanh)
    with torch.no_grad():
        model.kernels[0][1, 0, 0] = math.nan  # member 1 blew up
    stats, log10_sv = jacobian_spectrum(model, x, torch.tanh)  # no LAPACK error
    for layer, old in zip(stats, before, strict=True):
        assert torch.isnan(layer["jac_sv2_mean"][1]) and torch.isnan(layer["jac_sv2_var"][1])
        assert torch.equal(layer["jac_sv2_mean"][[0, 2]], old["jac_sv2_mean"][[0, 2]])
    assert torch.isnan(log10_sv[1]).all() and torch.equal(log10_sv[[0, 2]], sv_before[[0, 2]])
    assert log10_sv_histogram(log10_sv)[1].sum() == 0


def test_float32_agrees_with_float64():
    """The seed study runs in float32; its spectrum moments match float64 closely."""
    model = model_of(4, [100] * 6, 1.0)
    x = torch.randn(8, 100, generator=torch.Generator().manual_seed(2), dtype=F64)
    exact, sv = jacobian_spectrum(model, x, torch.tanh)
    model.float()
    rounded, sv32 = jacobian_spectrum(model, x.float(), torch.tanh)
    for a, b in zip(exact, rounded, strict=True):
        assert b["jac_sv2_mean"].dtype == F64
        assert torch.allclose(a["jac_sv2_mean"], b["jac_sv2_mean"], rtol=1e-5)
        assert torch.allclose(a["jac_sv2_var"], b["jac_sv2_var"], rtol=1e-4)
    shown = sv > LOG10_SV_RANGE[0]  # below, float32's rounding floor: the edge bin either way
    assert torch.allclose(sv[shown].float(), sv32[shown], atol=1e-3)
    assert torch.equal(log10_sv_histogram(sv), log10_sv_histogram(sv32))


def test_activation_histogram_counts_outside_apart_and_folds_for_entropy():
    from benchinit.engine.probes import entropy_bits, folded, histogram

    values = torch.tensor(
        [[-0.5, 0.0, 0.05, 0.999, 1.0, 1.5, math.inf, -math.inf, math.nan], [0.5] * 9]
    )
    counts = histogram(values, 0.0, 1.0, bins=10)
    assert counts.shape == (2, 12)
    assert counts[0].tolist() == [2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]  # hi is in the last bin
    assert counts[1, 6] == 9 and counts[1].sum() == 9  # one member never sees another's
    edges_folded = folded(counts)
    assert edges_folded[0].tolist() == [4, 0, 0, 0, 0, 0, 0, 0, 0, 4]
    assert entropy_bits(edges_folded)[0] == 1.0  # two equal bins
