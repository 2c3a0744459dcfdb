"""Per-layer statistics of a stacked model: what the lesson's histograms show, as numbers.

For every hidden layer and member, over all samples and units of the layer (the flattened
array the lesson histograms):

- ``act_mean``, ``act_std``: mean and (population) std of the activations;
- ``preact_std``: std of the pre-activations ``z = W h + b``;
- ``saturated_frac``: share of entries where the activation's derivative phi'(z) is below
  10% of its maximum over z (sigmoid/tanh tails, ReLU's negative side; never for identity);
- ``dead_frac``: share of entries that are exactly 0;
- ``dead_unit_frac``: share of the layer's units that are exactly 0 on every probe sample
  (a dead ReLU, Lu et al. 2019): a unit is a neuron of a dense layer and a channel of a
  convolution (0 at every sample and position); ``saturated_unit_frac`` likewise for units
  saturated (as ``saturated_frac``) on every sample and position. :func:`layer_channels`
  gives a model's channel counts;
- ``grad_norm``: Frobenius norm of the gradient of the layer's weight (see signal/train for
  the loss that gradient comes from);
- a histogram of the activations, ``BINS`` bins over the activation's histogram range and
  two more that count the values below and above it (infinities too), so mass beyond the
  range is never mistaken for mass at its edges; NaNs are not counted. ``act_entropy`` is
  the entropy of the ``BINS`` bins with the outside counts folded into the edge bins, as it
  always was (its range stays 0 .. log2(BINS)).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchinit.analysis.meanfield import theory_std
from benchinit.plugins.descriptors import Bound

BINS = 30
SATURATION = 0.1  # phi'(z) below this share of max phi' counts as saturated


def derivative(activation: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """phi'(z), elementwise, by autograd (works for any plugin activation)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (d,) = torch.autograd.grad(activation(z).sum(), z)
    return d


@functools.cache
def _max_derivative(activation: Bound) -> float:
    z = torch.linspace(-20.0, 20.0, 40001, dtype=torch.float64)
    return float(derivative(activation, z).abs().max())


def max_derivative(activation: Bound) -> float:
    """max over z in [-20, 20] of |phi'(z)|, cached per activation and parameters."""
    return _max_derivative(activation)


def layer_statistics(
    pre: torch.Tensor, act: torch.Tensor, activation: Bound, channels: int | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Statistics ``{name: [G]}`` and histogram counts ``[G, BINS + 2]`` (below the range,
    its bins, above it: :func:`histogram`) of one hidden layer.

    ``pre`` and ``act`` are ``[G, B, units]``; ``channels``: a convolution's channel count C
    (``units`` is C * H * W in (C, H, W) order), the unit of the per-unit fractions; None:
    every one of ``units`` is a unit (a dense layer).
    """
    pre, act = pre.detach(), act.detach()
    dims = (1, 2)
    saturated = derivative(activation, pre).abs() < SATURATION * max_derivative(activation)
    act_mean, act_std = mean_std(act)
    _, pre_std = mean_std(pre)
    stats = {
        "act_mean": act_mean,
        "act_std": act_std,
        "preact_std": pre_std,
        "saturated_frac": saturated.to(act.dtype).mean(dims),
        "dead_frac": (act == 0).to(act.dtype).mean(dims),
        "dead_unit_frac": unit_share(act == 0, channels).to(act.dtype),
        "saturated_unit_frac": unit_share(saturated, channels).to(act.dtype),
    }
    return stats, histogram(act, *activation.descriptor.range_of(activation.params))


def unit_share(mask: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """``[G]``: per member, the share of units where ``mask`` ``[G, B, units]`` holds on
    every sample and position (``channels``: as in :func:`layer_statistics`)."""
    members, samples, units = mask.shape
    groups = units if channels is None else channels
    if groups <= 0 or units % groups:
        raise ValueError(f"{units} units per sample are not {groups} channels of equal size")
    every = mask.reshape(members, samples, groups, units // groups).all(3).all(1)
    return every.double().mean(1)


def checked_trace(model: Any, trace: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Refuse (ValueError, which fails the cells saying so) a forward that traced another
    number of layers than the model's ``hidden``: its statistics would be silently missing
    or paired with the wrong layers. A plain module stacked by benchinit.engine.vmapped
    traces one layer per call of its ``act``."""
    hidden = int(getattr(model, "hidden", len(trace)))
    if len(trace) != hidden:
        raise ValueError(
            f"the model traced {len(trace)} of its {hidden} hidden layers: its forward must "
            "give one (pre-activation, output) pair per hidden layer (a module stacked by "
            "benchinit.engine.vmapped: call act once per hidden layer, on its pre-activation)"
        )


def layer_channels(model: Any, layers: int) -> list[int | None]:
    """The first ``layers`` hidden layers' channel counts (in the order the trace holds
    them): a convolution's, None for a dense layer. From the layers the model declares
    (kind ``"conv"``) and the kernel ``[G, out, in, kh, kw]`` of each, whose ``out`` is the
    channel count (``Layer.fan_out`` is ``out * kh * kw``); None for a layer the model does
    not declare (every entry of a sample is then a unit)."""
    specs = getattr(model, "layer_specs", None)
    hidden = [s for s in specs() if s.hidden] if callable(specs) else []
    channels: list[int | None] = [
        int(k.shape[1]) if spec.kind == "conv" and k.dim() == 5 else None
        for spec, k in zip(hidden, model.kernels, strict=False)
    ]
    return (channels + [None] * layers)[:layers]


def mean_std(values: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member, the mean and population std of ``values`` ``[G, ...]``.

    Two passes: the mean, then the sum of squared deviations as batched dot products over
    chunks of ``chunk`` values, summed in float64. Measured on [8, 1000, 100] float32 on one
    CPU thread: 0.28 ms against 3.5 ms for ``torch.var_mean`` (Welford), with relative error
    below 4e-7 even when the mean is far larger than the spread.
    """
    flat = values.flatten(1)
    members, n = flat.shape
    mean = flat.mean(1, keepdim=True)
    centered = flat - mean
    if n % chunk:
        centered = torch.nn.functional.pad(centered, (0, chunk - n % chunk))
    parts = centered.view(-1, 1, chunk)
    squares = torch.bmm(parts, parts.mT).view(members, -1).double().sum(1)
    return mean.squeeze(1), (squares / n).sqrt().to(values.dtype)


def histogram(values: torch.Tensor, lo: float, hi: float, bins: int = BINS) -> torch.Tensor:
    """Counts ``[G, bins + 2]`` of ``values`` ``[G, ...]``: column 0 counts the values below
    ``lo`` (-inf too), columns 1..bins the ``bins`` equal bins of [lo, hi] (both ends
    included), column ``bins + 1`` the values above ``hi`` (+inf too). NaNs go to an extra
    bin that is dropped. One ``bincount`` over member-offset indices (7x faster than
    scattering)."""
    flat = values.detach().flatten(1)
    members = flat.shape[0]
    scaled = (flat - lo).mul_(bins / (hi - lo))
    inside = scaled.clamp(0, bins - 0.5).add_(1)  # [lo, hi] -> bins 1..bins
    index = torch.where(scaled < 0, 0.0, torch.where(flat > hi, bins + 1.0, inside))
    index = index.nan_to_num_(nan=bins + 2).long()  # NaN compares false above: caught here
    index += torch.arange(members, device=flat.device).unsqueeze(1) * (bins + 3)
    counts = torch.bincount(index.flatten(), minlength=members * (bins + 3))
    return counts.view(members, bins + 3)[:, : bins + 2].to(torch.float64)


def folded(counts: torch.Tensor) -> torch.Tensor:
    """``[G, bins]`` from :func:`histogram`'s ``[G, bins + 2]``: the values below and above
    the range counted in the first and last bin."""
    inner = counts[:, 1:-1].clone()
    inner[:, 0] += counts[:, 0]
    inner[:, -1] += counts[:, -1]
    return inner


def entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    """``[G]`` entropy in bits of histogram counts ``[G, bins]`` (NaN for an empty one)."""
    p = counts / counts.sum(1, keepdim=True)
    return -(p * torch.log2(p)).nan_to_num(0.0).sum(1).where(counts.sum(1) > 0, float("nan"))


def weight_grad_norms(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer, the ``[G]`` norms of each member's weight gradient (NaN without one).

    ``weights`` are the parameters (any layout: a norm does not care)."""
    norms = []
    for w in weights:
        if w.grad is None:
            norms.append(torch.full((w.shape[0],), float("nan"), device=w.device))
        else:
            norms.append(w.grad.flatten(1).norm(dim=1))
    return norms


def theory(
    activation: Bound,
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor] | None,
    hidden: int,
) -> list[list[float]]:
    """Mean-field pre-activation std per member (outer) and hidden layer (inner).

    sigma_w^2 is each member's own mean of W^2 (exact for i.i.d. zero-mean weights, and
    defined for any plugin), the input's second moment is measured on ``x``.
    """
    if hidden == 0:  # a linear model has no hidden layer to predict
        return [[] for _ in range(weights[0].shape[0])]
    x2 = float(x.double().square().mean())
    w2 = torch.stack([w.detach().double().square().mean((1, 2)) for w in weights[:hidden]], 1)
    b2 = (
        torch.stack([b.detach().double().square().mean(1) for b in biases[:hidden]], 1)
        if biases is not None
        else torch.zeros_like(w2)
    )
    fan_ins = [int(w.shape[2]) for w in weights[:hidden]]
    return [
        theory_std(activation, x2, w2[g].tolist(), fan_ins, b2[g].tolist())
        for g in range(w2.shape[0])
    ]
