"""Built-in activations, with the gain and histogram range each one declares.

Gain: ``torch.nn.init.calculate_gain`` where PyTorch defines one (identity and sigmoid 1,
tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + slope^2)), selu 3/4); otherwise
``benchinit.analysis.meanfield.unit_gain``: 1 / sqrt(E[phi(z)^2]) for z ~ N(0, 1).

Histogram range: the image for bounded activations (sigmoid [0, 1], tanh and softsign
[-1, 1]); for unbounded ones, the image of a pre-activation within three unit standard
deviations (ReLU [0, 3], ...), so a unit-variance layer fills the plot; what an exploding one
puts beyond the range is counted apart, as the "above" bar.

Saturation (the ``saturated_frac`` statistic) is where phi'(z) < 10% of max phi': sigmoid
and tanh in their flat tails (|z| > 3.64 for sigmoid, |z| > 1.82 for tanh), ReLU for z < 0
(the same entries as dead ones), ELU for z < ln 0.1, identity never.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn.functional as F

from benchinit.analysis.meanfield import unit_gain
from benchinit.plugins.descriptors import Activation
from benchinit.plugins.hookspecs import hookimpl


def identity(x: torch.Tensor) -> torch.Tensor:
    """phi(z) = z: a deep linear network."""
    return x


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid 1 / (1 + e^-z), the lesson's activation; saturates at 0 and 1."""
    return torch.sigmoid(x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent; zero-centred, saturates at -1 and 1."""
    return torch.tanh(x)


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(0, z) (Nair & Hinton 2010); needs He init to keep its variance."""
    return torch.relu(x)


def leaky_relu(x: torch.Tensor, *, negative_slope: float = 0.01) -> torch.Tensor:
    """max(0, z) + slope * min(0, z) (Maas et al. 2013)."""
    return F.leaky_relu(x, negative_slope)


def elu(x: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """z for z > 0, alpha (e^z - 1) otherwise (Clevert et al. 2016)."""
    return F.elu(x, alpha)


def selu(x: torch.Tensor) -> torch.Tensor:
    """Scaled ELU, self-normalizing with LeCun-normal weights (Klambauer et al. 2017)."""
    return F.selu(x)


def gelu(x: torch.Tensor, *, approximate: Literal["none", "tanh"] = "none") -> torch.Tensor:
    """z * Phi(z), Phi the Gaussian CDF (Hendrycks & Gimpel 2016)."""
    return F.gelu(x, approximate=approximate)


def silu(x: torch.Tensor) -> torch.Tensor:
    """z * sigmoid(z), a.k.a. swish (Elfwing et al. 2018; Ramachandran et al. 2017)."""
    return F.silu(x)


def softplus(x: torch.Tensor, *, beta: float = 1.0) -> torch.Tensor:
    """log(1 + e^(beta z)) / beta, a smooth ReLU (Dugas et al. 2001)."""
    return F.softplus(x, beta)


def softsign(x: torch.Tensor) -> torch.Tensor:
    """z / (1 + |z|), a slower-saturating tanh (Bergstra et al. 2009)."""
    return F.softsign(x)


@functools.cache
def _unit_gain(fn_name: str, *params: tuple[str, float | str]) -> float:
    fn = globals()[fn_name]
    return unit_gain(lambda z: fn(z, **dict(params)))


def _numeric_gain(fn_name: str):
    return lambda **params: _unit_gain(fn_name, *sorted(params.items()))


@hookimpl
def benchinit_activations() -> list[Activation]:
    return [
        Activation("identity", identity, gain=1.0, hist_range=(-3.0, 3.0)),
        Activation("sigmoid", sigmoid, gain=1.0, hist_range=(0.0, 1.0)),
        Activation("tanh", tanh, gain=5.0 / 3.0, hist_range=(-1.0, 1.0)),
        Activation("relu", relu, gain=math.sqrt(2.0), hist_range=(0.0, 3.0)),
        Activation(
            "leaky_relu",
            leaky_relu,
            gain=lambda negative_slope: math.sqrt(2.0 / (1.0 + negative_slope**2)),
            hist_range=lambda negative_slope: (-3.0 * abs(negative_slope), 3.0),
        ),
        Activation("elu", elu, gain=_numeric_gain("elu"), hist_range=(-1.0, 3.0)),
        Activation("selu", selu, gain=0.75, hist_range=(-1.8, 3.2)),
        Activation("gelu", gelu, gain=_numeric_gain("gelu"), hist_range=(-0.5, 3.0)),
        Activation("silu", silu, gain=_numeric_gain("silu"), hist_range=(-0.5, 3.0)),
        Activation("softplus", softplus, gain=_numeric_gain("softplus"), hist_range=(0.0, 3.0)),
        Activation("softsign", softsign, gain=_numeric_gain("softsign"), hist_range=(-1.0, 1.0)),
    ]
