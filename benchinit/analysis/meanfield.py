"""Mean-field theory of wide random networks: variance, correlations, depth scales, Jacobians.

Convention (Poole et al. 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al. 2017, "Deep information propagation"): a hidden layer is
z_l = W_l h_{l-1} + b_l, h_l = phi(z_l), with i.i.d. zero-mean weights of variance
sigma_w^2 / n_{l-1} and biases of variance sigma_b^2. ``sigma_w`` and ``sigma_b`` below are
these standard deviations (sigma_w^2 = n_in * E[W^2]); z ~ N(0, 1) throughout::

    variance map       V(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2,   q* = V(q*)
    chi(q)             = sigma_w^2 E[phi'(sqrt(q) z)^2],   chi_1 = chi(q*)
    correlation map    C(c) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*,   c* = C(c*)
                       u1 = sqrt(q*) z1,  u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2)
    chi_c              = C'(c*) = sigma_w^2 E[phi'(u1) phi'(u2)] at c*   (chi_c = chi_1 if c* = 1)
    depth scales       xi_q = -1 / ln V'(q*),  V'(q*) = chi_1 + sigma_w^2 E[phi(u) phi''(u)]
                       xi_c = -1 / ln chi_c;   trainable depth about 6 xi_c (Schoenholz 2017)

chi_1 < 1 is the ordered phase (c* = 1: inputs become alike, gradients vanish), chi_1 > 1 the
chaotic one (c* < 1, gradients explode), chi_1 = 1 the critical line where xi_c diverges.
Expectations are quadratures: the trapezoid rule on a sinh-mapped grid, which resolves
tanh'(u)^2 at q = 400 where Gauss-Hermite nodes are too far apart, and a 2-D rule for pairs
(see ``_rule`` and ``_pair_rule``). phi' comes from autograd, so plugin activations work.
V'(q) uses Stein's identity, d/dq E[f(sqrt(q) z)] = E[f(sqrt(q) z) (z^2 - 1)] / (2q).

The Jacobian J_l = dh_l/dx (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017,
"Resurrecting the sigmoid"). Its spectrum here is the n_l eigenvalues lambda of J_l J_l^T,
with m1 = tr(JJ^T)/n_l and m2 = tr((JJ^T)^2)/n_l. Per layer, with mu_k = E[phi'(sqrt(q_l) z)^(2k)],
r = n_l / n_{l-1} and s = tau(Q^2)/tau(Q)^2 the spread of Q = W^T W (tau = tr/n_{l-1};
s = 1 + 1/r for i.i.d. Gaussian weights, 1/r for orthogonal ones with r <= 1), free probability
(D_l free from W_l M W_l^T) gives::

    b1 = sigma_w^2 m1,  b2 = r sigma_w^4 ((s - 1) m1^2 + m2)         (after W)
    m1' = mu1 b1,       m2' = mu2 b1^2 + mu1^2 (b2 - b1^2)            (after D = diag phi')

so m1 after L layers is the product of chi(q_l). Linear and square: mean sigma_w^(2L) and
variance L sigma_w^(4L) for Gaussian weights, variance 0 for orthogonal ones; at chi = 1,
variance L mu2/mu1^2 (Gaussian) and L (mu2/mu1^2 - 1) (orthogonal), as in Pennington et al.

Where it applies: infinitely wide layers with i.i.d. zero-mean weights (the Jacobian's
variance also for rotation-invariant ones such as orthogonal), inputs of a given second
moment; at finite width on average, with O(depth / width) corrections. Where it does not:
residual networks (h + alpha phi(W h + b)) and layer- or batch-normalized ones, whose
recursions differ (Yang & Schoenholz 2017; He et al. 2016 is the architecture); benchinit
gives no prediction for them. Trained weights are not i.i.d. either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

Phi = Callable[[torch.Tensor], torch.Tensor]
_NODES = 256  # per axis; even, so no node sits on the kink u = 0 of ReLU-like activations
_Q_MAX = 1e12  # beyond this q, the variance grows without bound: q* = inf
_Q_TINY = 1e-30  # below this, q* is the fixed point 0
_ROUNDING = 1e-12  # relative: a slope within this of 1, or V(q) - q of 0, is rounding
TRAINABLE_DEPTHS = 6.0  # Schoenholz et al. 2017: networks deeper than ~6 xi_c do not train


def _mapped(q: float, n: int = _NODES) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes u = a sinh(t) on a uniform symmetric grid in t, and their weights du.

    a = min(1, sqrt(q)) is the smaller of the activation's scale and the Gaussian's, so the
    grid resolves both phi's features near 0 and the Gaussian's tails out to 10 sqrt(q).
    """
    a = min(1.0, math.sqrt(q))
    dt = 2 * math.asinh(10.0 * math.sqrt(q) / a) / n
    t = (torch.arange(n, dtype=torch.float64) + 0.5 - n / 2) * dt
    return a * torch.sinh(t), a * torch.cosh(t) * dt


def _rule(q: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes u and weights (summing to 1) for expectations over u ~ N(0, q), q > 0.

    The trapezoid rule in t is exponentially accurate for smooth integrands; measured
    against scipy.integrate.quad, E[tanh(u)^2] and E[sech(u)^4] are exact to 1e-15 from
    q = 1e-6 to 1e4, where 300 Gauss-Hermite nodes miss sech^4 by 40% at q = 400, and the
    symmetric grid makes E[relu(u)^2] = q/2 and E[1{u > 0}] = 1/2 exact.
    """
    u, du = _mapped(q)
    w = torch.exp(-0.5 * u.square() / q) * du
    return u, w / w.sum()


def _value_and_slope(phi: Phi, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """phi(u) and phi'(u) (autograd, as benchinit.engine.probes.derivative), in float64."""
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        y = phi(u)
        (d,) = torch.autograd.grad(y.sum(), u, allow_unused=True)
    d = torch.zeros_like(u) if d is None else d
    return y.detach().double(), d.detach().double()


def _slope_moments(phi: Phi, q: float) -> tuple[float, float, float]:
    """E over u ~ N(0, q) of phi'(u)^2, phi'(u)^4 and phi(u)^2 (u^2 / q - 1)."""
    u, w = _rule(q)
    value, slope = _value_and_slope(phi, u)
    d2 = slope.square()
    moments = (d2, d2.square(), value.square() * (u.square() / q - 1))
    return tuple(float((w * m).sum()) for m in moments)  # type: ignore[return-value]


def second_moment(phi: Phi, q: float) -> float:
    """E[phi(z)^2] for z ~ N(0, q)."""
    if q <= 0:
        return float(phi(torch.zeros(1, dtype=torch.float64)).double().square())
    u, w = _rule(q)
    return float((w * phi(u).double().square()).sum())


def unit_gain(phi: Phi) -> float:
    """1 / sqrt(E[phi(z)^2]), z ~ N(0, 1): the weight gain that keeps q fixed at 1.

    This is He et al.'s criterion; it gives sqrt(2) for ReLU. benchinit uses it as the gain
    of activations for which ``torch.nn.init.calculate_gain`` defines none.
    """
    return 1.0 / np.sqrt(second_moment(phi, 1.0))


def theory_std(
    phi: Phi,
    input_second_moment: float,
    weight_second_moments: Sequence[float],
    fan_ins: Sequence[int],
    bias_second_moments: Sequence[float] | None = None,
) -> list[float]:
    """Predicted pre-activation std of every hidden layer.

    ``input_second_moment`` is the mean of x^2 over inputs; ``weight_second_moments[l]`` the
    mean of W_l^2 (sigma_w^2 / n for zero-mean weights), ``fan_ins[l]`` its number of inputs.
    """
    biases = bias_second_moments or [0.0] * len(fan_ins)
    stds, mean_square_input = [], input_second_moment
    for w2, n, b2 in zip(weight_second_moments, fan_ins, biases, strict=True):
        q = w2 * n * mean_square_input + b2
        stds.append(math.sqrt(q))
        mean_square_input = second_moment(phi, q)
    return stds


# --- the variance map -------------------------------------------------------------------


def variance_map(phi: Phi, q: float, sigma_w: float, sigma_b: float = 0.0) -> float:
    """V(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2: the next pre-activation variance."""
    return sigma_w**2 * second_moment(phi, q) + sigma_b**2


def q_star(phi: Phi, sigma_w: float, sigma_b: float = 0.0, q0: float = 1.0) -> float:
    """The stable fixed point q* = V(q*) that iterating V from ``q0`` approaches.

    Bisection on g(q) = V(q) - q, bracketed by halving (or doubling) q from ``q0`` until g
    changes sign: a + to - crossing, so V'(q*) <= 1. Returns 0.0 when q shrinks to 0 (tanh in
    the ordered phase without bias, and at sigma_w = 1: a crossing where V(q) exceeds q by
    rounding only, 1e-12 q, is no fixed point), ``inf`` when it grows past 1e12 (ReLU with
    sigma_w^2 > 2), and ``q0`` itself when V(q0) = q0 to 1e-12 (ReLU at sigma_w^2 = 2 without
    bias, where every q is a fixed point)."""

    def g(q: float) -> float:
        return variance_map(phi, q, sigma_w, sigma_b) - q

    g0 = g(q0)
    if abs(g0) <= 1e-12 * q0:
        return q0
    lo, hi = q0, q0
    if g0 < 0:  # shrinking: find the largest q0 / 2^k with g >= 0
        while g(lo) < 0:
            hi, lo = lo, lo / 2
            if lo < _Q_TINY:
                return 0.0
        if g(lo) <= _ROUNDING * lo:
            return 0.0  # V(q) = q to rounding only: q shrank to 0
    else:  # growing: find the smallest q0 * 2^k with g < 0
        while g(hi) >= 0:
            lo, hi = hi, hi * 2
            if hi > _Q_MAX:
                return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if g(mid) >= 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-14 * hi:
            break
    return 0.5 * (lo + hi)


def _at(q: float) -> float:
    """Where to evaluate at a fixed point: ``_Q_MAX`` for q* = inf (exact for positively
    homogeneous phi such as ReLU, where nothing depends on q), a tiny q for q* = 0."""
    return min(max(q, _Q_TINY), _Q_MAX)


def chi(phi: Phi, q: float, sigma_w: float) -> float:
    """sigma_w^2 E[phi'(sqrt(q) z)^2]: one layer's mean squared singular value at variance q."""
    return sigma_w**2 * _slope_moments(phi, _at(q))[0]


def chi_1(phi: Phi, sigma_w: float, sigma_b: float = 0.0) -> float:
    """chi at the fixed point q*: 1 on the critical line (Poole et al. 2016)."""
    return chi(phi, q_star(phi, sigma_w, sigma_b), sigma_w)


def variance_slope(phi: Phi, q: float, sigma_w: float) -> float:
    """V'(q) = sigma_w^2 E[phi(u)^2 (z^2 - 1)] / (2q) (Stein), = chi + sigma_w^2 E[phi phi'']."""
    q = _at(q)
    return sigma_w**2 * _slope_moments(phi, q)[2] / (2 * q)


# --- the correlation map ----------------------------------------------------------------


def _pair_rule(q: float, c: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nodes (u1, u2) and weights for (u1, u2) ~ N(0, q [[1, c], [c, 1]]), broadcastable.

    While sqrt(q (1 - c^2)) <= 1, u2 = c u1 + sqrt(q (1 - c^2)) v with v ~ N(0, 1): phi(u2)
    is smooth in v, and c -> 1 is the 1-D rule exactly. Beyond, a product of 1-D grids in
    (u1, u2) weighted by the bivariate density: phi's features lie along the axes there.
    Measured against nested scipy.integrate.quad (sech^2 pairs) and the arc-cosine kernel
    (ReLU pairs), q from 0.5 to 400 and c from -0.5 to 0.999: relative errors below 1e-5.
    """
    spread = math.sqrt(q * max(1.0 - c * c, 0.0))
    if spread <= 1.0:
        u, w = _rule(q)
        v, wv = _rule(1.0)
        u1 = u.view(-1, 1)
        return u1, c * u1 + spread * v.view(1, -1), w.view(-1, 1) * wv.view(1, -1)
    u, du = _mapped(q)
    u1, u2 = u.view(-1, 1), u.view(1, -1)
    exponent = -(u1.square() - 2 * c * u1 * u2 + u2.square()) / (2 * spread**2)
    w = torch.exp(exponent) * du.view(-1, 1) * du.view(1, -1)
    return u1, u2, w / w.sum()


def _correlation(
    phi: Phi, q: float, c: float, sigma_w: float, sigma_b: float
) -> tuple[float, float]:
    """C(c) and C'(c) at variance q, normalized by V(q) (= q at the fixed point)."""
    u1, u2, w = _pair_rule(q, c)
    value1, slope1 = _value_and_slope(phi, u1)
    value2, slope2 = _value_and_slope(phi, u2)
    covariance = float((w * value1 * value2).sum())
    slope = float((w * slope1 * slope2).sum())
    return (sigma_w**2 * covariance + sigma_b**2) / variance_map(phi, q, sigma_w, sigma_b), (
        sigma_w**2 * slope * q / variance_map(phi, q, sigma_w, sigma_b)
    )


def correlation_map(phi: Phi, c: float, sigma_w: float, sigma_b: float = 0.0) -> float:
    """C(c) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*: the correlation of two inputs'
    pre-activations one layer on, when both have variance q* (nan without a finite q*)."""
    q = q_star(phi, sigma_w, sigma_b)
    return _correlation(phi, _at(q), c, sigma_w, sigma_b)[0] if math.isfinite(q) else math.nan


def _c_star(phi: Phi, q: float, sigma_w: float, sigma_b: float) -> tuple[float, float]:
    """(c*, chi_c) at the fixed point q*; see :func:`c_star`."""
    if not math.isfinite(q):
        return math.nan, math.nan
    slope_at_1 = chi(phi, q, sigma_w)
    if slope_at_1 <= 1.0:
        return 1.0, slope_at_1
    c = 0.0  # Newton from the left on the convex h(c) = C(c) - c: monotone convergence
    for _ in range(100):
        value, slope = _correlation(phi, _at(q), c, sigma_w, sigma_b)
        step = (value - c) / (1.0 - slope) if slope < 1.0 else 0.0
        c = min(c + max(step, 0.0), 1.0)
        if step <= 1e-14:
            break
    return c, _correlation(phi, _at(q), c, sigma_w, sigma_b)[1]


def c_star(phi: Phi, sigma_w: float, sigma_b: float = 0.0) -> float:
    """The stable fixed point of the correlation map: 1 in the ordered phase (chi_1 <= 1).

    C(c) = sum_k a_k c^k with a_k >= 0 (Mehler's expansion), so h(c) = C(c) - c is convex on
    [0, 1] with h(0) >= 0 and h(1) = 0: in the chaotic phase (C'(1) = chi_1 > 1) it has one
    root in [0, 1), which Newton's method from c = 0 approaches from below.
    """
    return _c_star(phi, q_star(phi, sigma_w, sigma_b), sigma_w, sigma_b)[0]


def chi_c(phi: Phi, sigma_w: float, sigma_b: float = 0.0) -> float:
    """C'(c*) = sigma_w^2 E[phi'(u1) phi'(u2)] at c* (Schoenholz et al. 2017, eq. 5)."""
    return _c_star(phi, q_star(phi, sigma_w, sigma_b), sigma_w, sigma_b)[1]


# --- depth scales and the phase diagram -------------------------------------------------


def _depth(slope: float) -> float:
    """-1 / ln(slope): inf at or beyond 1 (within rounding: the critical point's quadrature
    gives 1 - 2e-16, not a depth of 4e15 layers), 0 at 0, nan for nan."""
    if math.isnan(slope):
        return math.nan
    if abs(slope - 1.0) <= _ROUNDING:
        return math.inf
    return -1.0 / math.log(slope) if 0.0 < slope < 1.0 else (0.0 if slope <= 0 else math.inf)


@dataclass(frozen=True)
class MeanField:
    """Everything mean-field theory says about one (phi, sigma_w, sigma_b)."""

    sigma_w: float
    sigma_b: float
    q_star: float  # fixed point of the variance map
    chi_1: float  # chi at q*: < 1 ordered, > 1 chaotic
    variance_slope: float  # V'(q*)
    c_star: float  # fixed point of the correlation map
    chi_c: float  # C'(c*)
    xi_q: float  # -1 / ln V'(q*): layers over which q approaches q*
    xi_c: float  # -1 / ln chi_c: layers over which correlations approach c*
    trainable_depth: float  # TRAINABLE_DEPTHS * xi_c


def mean_field(phi: Phi, sigma_w: float, sigma_b: float = 0.0) -> MeanField:
    """q*, chi_1, c*, chi_c, the depth scales xi_q and xi_c and the trainable depth 6 xi_c.
    Without a finite q* (ReLU with sigma_w^2 > 2), chi_1 and V'(q*) are their limits as
    q -> inf (exact for positively homogeneous phi, where they do not depend on q) and the
    correlation quantities are nan.
    """
    q = q_star(phi, sigma_w, sigma_b)
    slope_q = variance_slope(phi, q, sigma_w)
    c, slope_c = _c_star(phi, q, sigma_w, sigma_b)
    xi_c = _depth(slope_c)
    return MeanField(
        sigma_w=sigma_w,
        sigma_b=sigma_b,
        q_star=q,
        chi_1=chi(phi, q, sigma_w),
        variance_slope=slope_q,
        c_star=c,
        chi_c=slope_c,
        xi_q=_depth(slope_q),
        xi_c=xi_c,
        trainable_depth=TRAINABLE_DEPTHS * xi_c,
    )


def phase_diagram(
    phi: Phi, sigma_w: Sequence[float], sigma_b: float | Sequence[float] = 0.0
) -> pd.DataFrame:
    """One row per (sigma_b, sigma_w): the :class:`MeanField` fields as columns."""
    biases = [sigma_b] if isinstance(sigma_b, int | float) else list(sigma_b)
    return pd.DataFrame(
        [asdict(mean_field(phi, float(w), float(b))) for b in biases for w in sigma_w]
    )


def critical_sigma_w(phi: Phi, sigma_b: float = 0.0, lo: float = 0.05, hi: float = 20.0) -> float:
    """The sigma_w where chi_1 = 1 (bisection; chi_1 must cross 1 once in [lo, hi])."""
    f_lo, f_hi = chi_1(phi, lo, sigma_b) - 1, chi_1(phi, hi, sigma_b) - 1
    if f_lo * f_hi > 0:
        raise ValueError(f"chi_1 - 1 does not change sign between sigma_w = {lo} and {hi}")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if (chi_1(phi, mid, sigma_b) - 1) * f_lo > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --- the input-output Jacobian ----------------------------------------------------------


def jacobian_theory(
    phi: Phi,
    input_second_moment: float,
    weight_second_moments: Sequence[float],
    widths: Sequence[int],
    bias_second_moments: Sequence[float] | None = None,
    weight_spreads: Sequence[float] | None = None,
) -> tuple[list[float], list[float]]:
    """Predicted mean and variance of the eigenvalues of J_l J_l^T for every hidden layer.

    ``widths`` = [n_0, n_1, ..., n_L]; ``weight_second_moments[l]`` is the mean of W_l^2 and
    ``weight_spreads[l]`` tau(Q^2) / tau(Q)^2 of Q = W_l^T W_l (measure it with
    ``benchinit.engine.jacobian.weight_spread``); None means i.i.d. weights at infinite width,
    s = 1 + n_{l-1} / n_l. The recursion is in the module docstring.
    """
    fan_ins, fan_outs = list(widths[:-1]), list(widths[1:])
    stds = theory_std(phi, input_second_moment, weight_second_moments, fan_ins, bias_second_moments)
    qs = [std * std for std in stds]
    spreads = weight_spreads or [
        1 + n_in / n_out for n_in, n_out in zip(fan_ins, fan_outs, strict=True)
    ]
    m1, m2 = np.float64(1.0), np.float64(1.0)  # numpy scalars: overflow gives inf, not an error
    means, variances = [], []
    with np.errstate(all="ignore"):
        for q, w2, n_in, n_out, s in zip(
            qs, weight_second_moments, fan_ins, fan_outs, spreads, strict=True
        ):
            sigma2 = np.float64(w2) * n_in
            mu1, mu2, _ = _slope_moments(phi, _at(q))
            b1, b2 = sigma2 * m1, (n_out / n_in) * sigma2**2 * ((s - 1) * m1**2 + m2)
            m1, m2 = mu1 * b1, mu2 * b1**2 + mu1**2 * (b2 - b1**2)
            means.append(float(m1))
            variances.append(float(m2 - m1**2))
    return means, variances


def linear_jacobian_moments(
    depth: int, sigma: float = 1.0, orthogonal: bool = False
) -> tuple[list[float], list[float]]:
    """Closed forms for a square linear network, layers 1..depth (Saxe et al. 2014;
    Pennington et al. 2017): mean sigma^(2l); variance l sigma^(4l) for i.i.d. N(0, sigma^2/N)
    weights, 0 for orthogonal weights of gain sigma."""
    layers = range(1, depth + 1)
    means = [sigma ** (2 * k) for k in layers]
    if orthogonal:
        return means, [0.0] * depth
    return means, [k * sigma ** (4 * k) for k in layers]
