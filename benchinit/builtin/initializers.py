"""Built-in weight initializers.

Each fills one ``[out, in]`` weight (fan_in = in, fan_out = out) in place from the cell's
generator, through ``torch.nn.init`` so the definitions and defaults are PyTorch's. Xavier
uses gain 1 and He/Kaiming gain sqrt(2) unless the study asks for ``gain="activation"``,
which takes the cell's activation gain (``torch.nn.init.calculate_gain`` where defined).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch.nn import init

from benchinit.plugins.descriptors import Bound, Initializer
from benchinit.plugins.hookspecs import hookimpl

Gain = float | Literal["activation"]
RELU_GAIN = math.sqrt(2.0)  # He et al.'s default: the gain of ReLU


def _gain(gain: Gain, activation: Bound) -> float:
    return activation.gain if gain == "activation" else float(gain)


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    if weight.dim() < 2:
        raise ValueError(
            f"fan_in and fan_out are undefined for a {weight.dim()}-D tensor; "
            "use zeros, constant, normal or uniform for biases"
        )
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def zeros(weight: torch.Tensor, generator: torch.Generator, activation: Bound) -> None:
    """All zeros: every unit computes the same thing and symmetry is never broken."""
    weight.zero_()


@torch.no_grad()
def constant(
    weight: torch.Tensor, generator: torch.Generator, activation: Bound, *, value: float
) -> None:
    """Every entry equal to ``value``: symmetric, like zeros (a baseline, not a method)."""
    weight.fill_(value)


@torch.no_grad()
def normal(
    weight: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    mean: float = 0.0,
    std: float = 1.0,
) -> None:
    """N(mean, std^2) entries; the lesson's N(0, 1) and N(0, 0.01^2)."""
    init.normal_(weight, mean, std, generator=generator)


@torch.no_grad()
def uniform(
    weight: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    a: float = 0.0,
    b: float = 1.0,
) -> None:
    """U(a, b) entries (torch.nn.init.uniform_'s defaults)."""
    init.uniform_(weight, a, b, generator=generator)


@torch.no_grad()
def xavier_normal(
    weight: torch.Tensor, generator: torch.Generator, activation: Bound, *, gain: Gain = 1.0
) -> None:
    """Glorot & Bengio 2010: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    init.xavier_normal_(weight, _gain(gain, activation), generator=generator)


@torch.no_grad()
def xavier_uniform(
    weight: torch.Tensor, generator: torch.Generator, activation: Bound, *, gain: Gain = 1.0
) -> None:
    """Glorot & Bengio 2010: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    init.xavier_uniform_(weight, _gain(gain, activation), generator=generator)


@torch.no_grad()
def kaiming_normal(
    weight: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    gain: Gain = RELU_GAIN,
) -> None:
    """He et al. 2015: N(0, std^2), std = gain / sqrt(fan), gain sqrt(2) (ReLU)."""
    fan_in, fan_out = _fans(weight)
    std = _gain(gain, activation) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    init.normal_(weight, 0.0, std, generator=generator)


@torch.no_grad()
def kaiming_uniform(
    weight: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    gain: Gain = RELU_GAIN,
) -> None:
    """He et al. 2015: U(-b, b), b = gain * sqrt(3 / fan), gain sqrt(2) (ReLU)."""
    fan_in, fan_out = _fans(weight)
    bound = _gain(gain, activation) * math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))
    init.uniform_(weight, -bound, bound, generator=generator)


@torch.no_grad()
def lecun_normal(
    weight: torch.Tensor, generator: torch.Generator, activation: Bound, *, gain: Gain = 1.0
) -> None:
    """LeCun et al. 1998 (Efficient BackProp): N(0, std^2), std = gain / sqrt(fan_in)."""
    fan_in, _ = _fans(weight)
    init.normal_(weight, 0.0, _gain(gain, activation) / math.sqrt(fan_in), generator=generator)


@torch.no_grad()
def orthogonal(
    weight: torch.Tensor, generator: torch.Generator, activation: Bound, *, gain: Gain = 1.0
) -> None:
    """Saxe et al. 2014: a (semi-)orthogonal matrix times gain, so W W^T = gain^2 I."""
    init.orthogonal_(weight, _gain(gain, activation), generator=generator)


@torch.no_grad()
def trunc_normal(
    weight: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
) -> None:
    """N(mean, std^2) redrawn outside [a, b] (absolute bounds, as torch.nn.init)."""
    init.trunc_normal_(weight, mean, std, a, b, generator=generator)


def _blocks(model: Any, name: str) -> list[Any]:
    """The model's declared layers, refused unless it declares residual blocks."""
    layers = list(getattr(model, "layers", None) or [])
    if not any(getattr(layer, "block", 0) for layer in layers):
        raise ValueError(
            f"initializer '{name}' needs a residual model that declares its blocks "
            '([model] name = "resnet"); this model declares none'
        )
    return layers


@torch.no_grad()
def fixup_calibrate(
    model: Any, x: torch.Tensor, generator: torch.Generator, activation: Bound
) -> None:
    """Fixup's rescaling of He-initialized weights (Zhang et al. 2019)."""
    layers = _blocks(model, "fixup")
    blocks = max(layer.block for layer in layers)
    branch = [s for s in layers if s.hidden]  # a block's shortcut projection is no branch layer
    per_branch = max(sum(1 for s in branch if s.block == b) for b in range(1, blocks + 1))
    shrink = blocks ** (-1.0 / (2 * per_branch - 2))
    for weight, layer in zip(model.weights, layers, strict=True):
        if not layer.hidden and layer.block:
            continue  # a shortcut projection keeps its He draw, as in the paper
        if (layer.block and layer.last_in_block) or not layer.hidden:
            weight.zero_()  # each branch's last layer and the classifier start at 0
        elif layer.block:
            weight.mul_(shrink)


@torch.no_grad()
def fixup(weight: torch.Tensor, generator: torch.Generator, activation: Bound) -> None:
    """Fixup (Zhang et al. 2019): He normal, then branch layers x L^(-1/(2m-2)), last ones 0.

    L residual branches of m layers each: every branch's last layer and the classifier start
    at 0, its other layers at He's std times L^(-1/(2m-2)), so the network's output variance
    at initialization stays O(1) without normalization. Needs a residual model that declares
    its blocks (``resnet``); its branch multipliers start at 1 and biases at ``bias_init``.
    """
    kaiming_normal(weight, generator, activation)


@torch.no_grad()
def skipinit(weight: torch.Tensor, generator: torch.Generator, activation: Bound) -> None:
    """SkipInit (De & Smith 2020): He normal, each residual branch's multiplier at 0.

    Every block starts as the identity (s = x + alpha F(x), alpha = 0, learnable), so a
    deep residual network without normalization is shallow at initialization.
    """
    kaiming_normal(weight, generator, activation)


@torch.no_grad()
def zero_branches(
    model: Any, x: torch.Tensor, generator: torch.Generator, activation: Bound
) -> None:
    """Every residual branch's learnable multiplier set to 0."""
    _blocks(model, "skipinit")
    model.scales.zero_()


@torch.no_grad()
def rezero(weight: torch.Tensor, generator: torch.Generator, activation: Bound) -> None:
    """ReZero (Bachlechner et al. 2020): x + alpha F(x) with alpha = 0, He-normal weights.

    In a ResNet of BasicBlocks it is SkipInit's rule (the multiplier after the branch's last
    layer); kept under its own name, as the paper's.
    """
    kaiming_normal(weight, generator, activation)


@hookimpl
def benchinit_initializers() -> list[Initializer]:
    return [
        Initializer(fn.__name__, fn)
        for fn in (
            zeros,
            constant,
            normal,
            uniform,
            xavier_normal,
            xavier_uniform,
            kaiming_normal,
            kaiming_uniform,
            lecun_normal,
            orthogonal,
            trunc_normal,
        )
    ] + [
        Initializer("fixup", fixup, calibrate=fixup_calibrate),
        Initializer("skipinit", skipinit, calibrate=zero_branches),
        Initializer("rezero", rezero, calibrate=zero_branches),
    ]
