"""Mean-field signal propagation: what a wide random network does to the variance of its layers.

For a layer z_{l+1} = W h_l (+ b) with i.i.d. zero-mean weights of variance sigma_w^2 and
n inputs, the pre-activation variance obeys (Poole et al. 2016, "Exponential expressivity in
deep neural networks through transient chaos"; Schoenholz et al. 2017)::

    q_{l+1} = sigma_w^2 * n * E[phi(z)^2] + sigma_b^2,   z ~ N(0, q_l)

The expectation is computed by Gauss-Hermite quadrature (probabilists' Hermite nodes), with
enough nodes that ReLU's kink costs less than 1e-4 relative error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

_NODES = 301


@functools.cache
def _hermite() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(_NODES)
    return nodes, weights / np.sqrt(2.0 * np.pi)  # weights now sum to 1: an expectation


def second_moment(phi: Callable[[torch.Tensor], torch.Tensor], q: float) -> float:
    """E[phi(z)^2] for z ~ N(0, q)."""
    nodes, weights = _hermite()
    z = torch.as_tensor(nodes * np.sqrt(max(q, 0.0)), dtype=torch.float64)
    values = phi(z).double().numpy()
    return float(np.sum(weights * values**2))


def unit_gain(phi: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """1 / sqrt(E[phi(z)^2]), z ~ N(0, 1): the weight gain that keeps q fixed at 1.

    This is He et al.'s criterion; it gives sqrt(2) for ReLU. benchinit uses it as the gain
    of activations for which ``torch.nn.init.calculate_gain`` defines none.
    """
    return 1.0 / np.sqrt(second_moment(phi, 1.0))


def theory_std(
    phi: Callable[[torch.Tensor], torch.Tensor],
    input_second_moment: float,
    weight_second_moments: Sequence[float],
    fan_ins: Sequence[int],
    bias_second_moments: Sequence[float] | None = None,
) -> list[float]:
    """Predicted pre-activation std of every hidden layer.

    ``input_second_moment`` is the mean of x^2 over inputs; ``weight_second_moments[l]`` the
    mean of W_l^2 (sigma_w^2 for zero-mean weights), ``fan_ins[l]`` its number of inputs.
    """
    biases = bias_second_moments or [0.0] * len(fan_ins)
    stds = []
    mean_square_input = input_second_moment
    for sigma2, n, b2 in zip(weight_second_moments, fan_ins, biases, strict=True):
        q = sigma2 * n * mean_square_input + b2
        stds.append(float(np.sqrt(q)))
        mean_square_input = second_moment(phi, q)
    return stds
