"""Built-in optimizers, all elementwise, so many stacked models train under one instance.

Each uses PyTorch's fused kernel where this torch and device have one (measured on a 2-core
CPU: eager ``Adam(fused=True)`` 31% faster than the default), else the multi-tensor path.
Every optimizer also takes an lr schedule (``schedule``, ``step_size``, ``gamma``,
``eta_min``; see benchinit.study.schedules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchinit.plugins.descriptors import Optimizer
from benchinit.plugins.hookspecs import hookimpl


def _fast(
    cls: Callable[..., torch.optim.Optimizer], params: Sequence[torch.Tensor], **kw: Any
) -> torch.optim.Optimizer:
    """``cls(params, fused=True, **kw)`` where supported, else ``foreach=True``."""
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, foreach=True, **kw)


def sgd(
    params: Sequence[torch.Tensor],
    *,
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    dampening: float = 0.0,
) -> torch.optim.Optimizer:
    """Stochastic gradient descent w <- w - lr * g (Robbins & Monro 1951), optional momentum."""
    return _fast(
        torch.optim.SGD,
        params,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        dampening=dampening,
    )


def adam(
    params: Sequence[torch.Tensor],
    *,
    lr: float = 0.001,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015): per-entry steps from running moments of the gradient."""
    return _fast(
        torch.optim.Adam,
        params,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
    )


def adamw(
    params: Sequence[torch.Tensor],
    *,
    lr: float = 0.001,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    amsgrad: bool = False,
) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay."""
    return _fast(
        torch.optim.AdamW,
        params,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
    )


def rmsprop(
    params: Sequence[torch.Tensor],
    *,
    lr: float = 0.01,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> torch.optim.Optimizer:
    """RMSprop (Tieleman & Hinton 2012): steps scaled by a running RMS of the gradient."""
    return torch.optim.RMSprop(
        params,
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
        foreach=True,
    )


def adagrad(
    params: Sequence[torch.Tensor],
    *,
    lr: float = 0.01,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
) -> torch.optim.Optimizer:
    """Adagrad (Duchi et al. 2011): steps scaled by the root of summed squared gradients."""
    return _fast(
        torch.optim.Adagrad, params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps
    )


@hookimpl
def benchinit_optimizers() -> list[Optimizer]:
    # lr_scaling: SGD's step is linear in the gradient; the others' invariant to its scale
    rules: list[tuple[Callable[..., torch.optim.Optimizer], str]] = [
        (sgd, "sgd"),
        (adam, "adam"),
        (adamw, "adam"),
        (rmsprop, "adam"),
        (adagrad, "adam"),
    ]
    return [Optimizer(fn.__name__, fn, lr_scaling=rule) for fn, rule in rules]
