"""benchinit-lsuv: LSUV initialization as a benchinit plugin, and a tutorial for writing one.

A plugin package is a module with functions marked ``@hookimpl`` (one per kind of thing it
adds) plus an entry point in group ``benchinit`` in its ``pyproject.toml``::

    [project.entry-points.benchinit]
    lsuv = "benchinit_lsuv"

Here the hook returns one :class:`benchinit.Initializer`. Its ``fn`` fills one weight
matrix; its ``calibrate`` then sees the whole model and a batch of data, which is what a
data-dependent initializer like LSUV needs. Parameters are keyword-only arguments with
annotations: benchinit checks ``"lsuv(tol=0.01)"`` against them before anything runs.

LSUV (Mishkin & Matas 2016, "All you need is a good init", ICLR): start from orthonormal
weights (Saxe et al. 2014), then for each layer in order, feed a batch through the network
and divide the layer's weights by the standard deviation of its output, until the output
variance is within ``tol`` of 1 (at most ``max_iters`` times per layer). Biases are left as
they are.
"""

from __future__ import annotations

import torch
from torch.nn import init

from benchinit import Bound, Initializer, hookimpl

__version__ = "0.1.0"


@torch.no_grad()
def lsuv(
    weight: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    tol: float = 0.1,
    max_iters: int = 10,
) -> None:
    """LSUV (Mishkin & Matas 2016): orthonormal, then unit output variance layer by layer."""
    init.orthogonal_(weight, generator=generator)


@torch.no_grad()
def calibrate(
    model,
    x: torch.Tensor,
    generator: torch.Generator,
    activation: Bound,
    *,
    tol: float = 0.1,
    max_iters: int = 10,
) -> None:
    """Rescale each layer in turn until its output variance on ``x`` is 1 (within ``tol``)."""
    for layer in range(len(model.weights)):
        for _ in range(max_iters):
            variance = model.preactivation(layer, x).var()
            if not torch.isfinite(variance) or variance <= 0 or abs(variance - 1) < tol:
                break
            model.weights[layer].div_(variance.sqrt())


@hookimpl
def benchinit_initializers() -> list[Initializer]:
    return [Initializer("lsuv", lsuv, calibrate=calibrate)]
