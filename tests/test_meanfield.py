"""Mean-field theory against known values, scipy's quadrature and brute-force random networks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from benchinit.analysis import meanfield as mf

F64 = torch.float64
tanh, relu = torch.tanh, torch.relu


def identity(z: torch.Tensor) -> torch.Tensor:
    return z


def gaussian_expectation(f, q: float) -> float:
    """E[f(u)], u ~ N(0, q), by scipy.integrate.quad (the library the quadrature must match)."""
    s = math.sqrt(q)

    def integrand(z: float) -> float:
        u = torch.tensor(s * z, dtype=F64)
        return float(f(u)) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

    kinks = [p / s for p in (-1.0, 0.0, 1.0) if abs(p / s) < 12]
    value, _ = integrate.quad(integrand, -12, 12, points=kinks, limit=500, epsabs=1e-14)
    return value


@pytest.mark.parametrize("q", [1e-4, 0.3, 1.0, 30.0, 400.0])
def test_quadrature_matches_scipy(q):
    assert mf.second_moment(tanh, q) == pytest.approx(
        gaussian_expectation(lambda u: tanh(u) ** 2, q), rel=1e-10
    )
    sech4 = gaussian_expectation(lambda u: torch.cosh(u) ** -4, q)  # tanh'^2: a spike at large q
    assert mf.chi(tanh, q, 1.0) == pytest.approx(sech4, rel=1e-8)
    assert mf.second_moment(relu, q) == pytest.approx(q / 2, rel=1e-12)


@pytest.mark.parametrize("c", [-0.5, 0.0, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("q", [0.5, 30.0])
def test_pair_quadrature_matches_the_arc_cosine_kernel(q, c):
    """E[relu(u1) relu(u2)] = q / (2 pi) (sqrt(1 - c^2) + (pi - arccos c) c) (Cho & Saul 2009)."""
    u1, u2, w = mf._pair_rule(q, c)
    value = float((w * relu(u1) * relu(u2)).sum())
    exact = q / (2 * math.pi) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c)
    assert value == pytest.approx(exact, rel=1e-4)


def test_chi_1_of_tanh_is_1_at_sigma_w_1():
    assert mf.q_star(tanh, 1.0, 0.0) == 0.0  # exactly the fixed point 0, not a rounding error
    assert mf.chi_1(tanh, 1.0, 0.0) == pytest.approx(1.0, abs=1e-6)
    assert mf.q_star(tanh, 1.0 + 1e-6, 0.0) == pytest.approx(1e-6, rel=1e-3)  # just past it


@pytest.mark.parametrize("phi, sigma_w", [(tanh, 1.0), (relu, math.sqrt(2.0))])
def test_depth_scales_are_exactly_inf_at_the_critical_point(phi, sigma_w):
    field = mf.mean_field(phi, sigma_w, 0.0)
    assert field.xi_c == math.inf and field.trainable_depth == math.inf
    assert field.xi_q == math.inf


def test_relu_is_critical_at_sigma_w_squared_2():
    assert mf.chi_1(relu, math.sqrt(2.0), 0.0) == pytest.approx(1.0, abs=1e-12)
    assert mf.chi(relu, 7.0, 1.5) == pytest.approx(1.5**2 / 2, rel=1e-12)  # for every q
    assert mf.critical_sigma_w(relu, 0.3) == pytest.approx(math.sqrt(2.0), rel=1e-6)
    assert mf.q_star(relu, 1.5, 0.0) == math.inf  # sigma_w^2 > 2: the variance explodes
    assert mf.q_star(relu, 1.2, 0.3) == pytest.approx(0.3**2 / (1 - 1.2**2 / 2), rel=1e-9)


def test_critical_line_of_tanh():
    """Schoenholz et al. 2017, Fig. 1: sigma_b^2 = 0.05 is critical at sigma_w^2 about 1.76."""
    assert mf.critical_sigma_w(tanh, math.sqrt(0.05)) ** 2 == pytest.approx(1.76, abs=0.01)
    assert mf.critical_sigma_w(tanh, 0.0) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("sigma_w", "sigma_b"), [(1.8, 0.3), (2.5, 0.2)])
def test_q_star_of_tanh_matches_a_wide_random_network(sigma_w, sigma_b):
    """Brute force: 200 inputs through 20 random tanh layers of 1,000 units. Both points are
    chaotic (c* < 1), so the inputs stay distinct and each layer gives 200,000 near-independent
    draws; in the ordered phase they merge and one network gives only 1,000."""
    g = torch.Generator().manual_seed(0)
    width, h = 1000, torch.randn(200, 1000, generator=g, dtype=F64)
    variances = []
    for _ in range(20):
        w = torch.randn(width, width, generator=g, dtype=F64) * sigma_w / math.sqrt(width)
        z = h @ w.T + torch.randn(width, generator=g, dtype=F64) * sigma_b
        variances.append(float(z.square().mean()))
        h = torch.tanh(z)
    measured = float(np.mean(variances[-10:]))  # well past xi_q: at the fixed point
    assert mf.q_star(tanh, sigma_w, sigma_b) == pytest.approx(measured, rel=0.02)


def test_variance_slope_is_the_derivative_of_the_variance_map():
    for phi, q in ((tanh, 0.7), (relu, 2.0), (torch.sigmoid, 3.0)):
        h = 1e-5 * q
        numeric = (
            mf.variance_map(phi, q + h, 1.3, 0.2) - mf.variance_map(phi, q - h, 1.3, 0.2)
        ) / (2 * h)
        assert mf.variance_slope(phi, q, 1.3) == pytest.approx(numeric, rel=1e-7)


def test_ordered_phase_has_c_star_1():
    for phi, sigma_w, sigma_b in ((tanh, 0.8, 0.3), (tanh, 1.2, 0.5), (relu, 1.2, 0.3)):
        field = mf.mean_field(phi, sigma_w, sigma_b)
        assert field.chi_1 < 1 and field.c_star == 1.0
        assert field.chi_c == pytest.approx(field.chi_1)
        assert field.xi_c == pytest.approx(-1 / math.log(field.chi_1))


def test_chaotic_phase_has_a_stable_c_star_below_1():
    field = mf.mean_field(tanh, 2.5, 0.3)
    assert field.chi_1 > 1 and 0 < field.c_star < 1
    c = field.c_star
    assert mf.correlation_map(tanh, c, 2.5, 0.3) == pytest.approx(c, abs=1e-10)  # a fixed point
    assert field.chi_c < 1  # stable
    h = 1e-6  # chi_c is the slope of the map there
    slope = (
        mf.correlation_map(tanh, c + h, 2.5, 0.3) - mf.correlation_map(tanh, c - h, 2.5, 0.3)
    ) / (2 * h)
    assert field.chi_c == pytest.approx(slope, rel=1e-5)
    assert mf.c_star(tanh, 2.0, 0.0) == pytest.approx(0.0, abs=1e-12)  # odd phi, no bias


def test_correlation_map_matches_a_wide_random_layer():
    """Two inputs at q* with correlation c, through one random layer of 20,000 units."""
    sigma_w, sigma_b, n = 2.0, 0.3, 20_000
    q = mf.q_star(tanh, sigma_w, sigma_b)
    g = torch.Generator().manual_seed(0)
    for c in (0.2, 0.8):
        z1 = torch.randn(n, generator=g, dtype=F64)
        z2 = c * z1 + math.sqrt(1 - c * c) * torch.randn(n, generator=g, dtype=F64)
        h = torch.tanh(math.sqrt(q) * torch.stack([z1, z2]))
        w = torch.randn(n, n // 10, generator=g, dtype=F64) * sigma_w / math.sqrt(n)
        out = h @ w + torch.randn(n // 10, generator=g, dtype=F64) * sigma_b
        measured = float((out[0] * out[1]).mean() / (out.square().mean()))
        assert mf.correlation_map(tanh, c, sigma_w, sigma_b) == pytest.approx(measured, abs=0.03)


def test_xi_c_diverges_at_the_critical_line():
    sigma_b = math.sqrt(0.05)
    critical = mf.critical_sigma_w(tanh, sigma_b)
    for side in (-1, 1):  # ordered and chaotic
        depths = [
            mf.mean_field(tanh, critical * (1 + side * d), sigma_b).xi_c for d in (0.1, 0.01, 0.001)
        ]
        assert depths[0] < depths[1] < depths[2]
        assert depths[2] > 10 * depths[0] and depths[2] > 100
    field = mf.mean_field(tanh, critical * 1.001, sigma_b)
    assert field.trainable_depth == pytest.approx(6 * field.xi_c)


def test_phase_diagram_is_a_tidy_table():
    table = mf.phase_diagram(tanh, [0.5, 1.0, 2.0, 3.0], [0.0, 0.3])
    assert len(table) == 8
    assert list(table.columns) == [
        "sigma_w", "sigma_b", "q_star", "chi_1", "variance_slope", "c_star", "chi_c",
        "xi_q", "xi_c", "trainable_depth",
    ]  # fmt: skip
    chaotic = table[table["chi_1"] > 1]
    assert set(chaotic["sigma_w"]) == {2.0, 3.0} and (chaotic["c_star"] < 1).all()


def test_linear_closed_forms_match_random_matrix_products():
    """mean sigma^(2L), variance L sigma^(4L) (Gaussian) or 0 (orthogonal), width 256."""
    n, depth, members, sigma = 256, 8, 6, 1.1
    g = torch.Generator().manual_seed(0)
    means, variances = mf.linear_jacobian_moments(depth, sigma)
    measured = np.zeros((2, depth))
    for _ in range(members):
        j = torch.eye(n, dtype=F64)
        for layer in range(depth):
            j = torch.randn(n, n, generator=g, dtype=F64) * sigma / math.sqrt(n) @ j
            eigenvalues = torch.linalg.eigvalsh(j @ j.T)
            measured[:, layer] += [
                float(eigenvalues.mean()),
                float(eigenvalues.var(unbiased=False)),
            ]
    measured /= members
    assert np.allclose(measured[0], means, rtol=0.05)
    assert np.allclose(measured[1], variances, rtol=0.10)
    _, flat = mf.linear_jacobian_moments(depth, sigma, orthogonal=True)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    j = torch.linalg.matrix_power(sigma * q, depth)
    assert float(torch.linalg.eigvalsh(j @ j.T).var()) < 1e-20 and flat == [0.0] * depth


def test_jacobian_theory_generalizes_the_closed_forms():
    widths, moments = [64] * 6, [1.21 / 64] * 5
    means, variances = mf.jacobian_theory(identity, 1.0, moments, widths)
    closed = mf.linear_jacobian_moments(5, 1.1)
    assert np.allclose(means, closed[0]) and np.allclose(variances, closed[1])
    _, flat = mf.jacobian_theory(identity, 1.0, moments, widths, weight_spreads=[1.0] * 5)
    assert np.allclose(flat, 0.0, atol=1e-12)
    # nonlinear: the mean is the product of chi at each layer's variance
    means, _ = mf.jacobian_theory(tanh, 0.5, [4.0 / 64] * 5, widths)
    qs = [q**2 for q in mf.theory_std(tanh, 0.5, [4.0 / 64] * 5, [64] * 5)]
    assert np.allclose(means, np.cumprod([mf.chi(tanh, q, 2.0) for q in qs]))


def test_rectangular_gaussian_layers_match_random_matrices():
    """Aspect ratios n_l / n_{l-1} enter the variance: 128 -> 256 -> 384 -> 192."""
    widths, g = [128, 256, 384, 192], torch.Generator().manual_seed(0)
    sums = np.zeros(3)
    for _ in range(6):
        j = torch.eye(widths[0], dtype=F64)
        for layer, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
            j = torch.randn(n_out, n_in, generator=g, dtype=F64) / math.sqrt(n_in) @ j
            sums[layer] += float(torch.linalg.eigvalsh(j @ j.T).var(unbiased=False)) / 6
    _, predicted = mf.jacobian_theory(identity, 1.0, [1 / n for n in widths[:-1]], widths)
    assert np.allclose(sums, predicted, rtol=0.10)
