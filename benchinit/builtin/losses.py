"""Built-in losses: per-sample values, so the engine can average per model and sum models.

``pred`` is ``[..., B, outputs]``; classification targets arrive as class indices or one-hot
rows (as each loss declares), regression targets as ``[..., B, targets]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchinit.plugins.descriptors import Loss
from benchinit.plugins.hookspecs import hookimpl


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (1/k) sum (y - y_hat)^2; sensitive to outliers."""
    return (pred - target).square().mean(-1)


def cross_entropy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log softmax(pred)[y]: the negative log-likelihood of a categorical model."""
    return -F.log_softmax(pred, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)


def gaussian_nll(pred: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Gaussian negative log-likelihood 1/2 (log var + (y - mu)^2 / var), constant dropped.

    The model predicts a mean and a variance per target (var = softplus(raw) + eps, as in
    Lakshminarayanan et al. 2017); with the variance fixed at 1 it is MSE / 2.
    """
    k = target.shape[-1]
    mean, raw = pred[..., :k], pred[..., k:]
    var = F.softplus(raw) + eps
    return 0.5 * (var.log() + (target - mean).square() / var).mean(-1)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (1/k) sum |y - y_hat|; robust to outliers."""
    return (pred - target).abs().mean(-1)


def huber(pred: torch.Tensor, target: torch.Tensor, *, delta: float = 1.0) -> torch.Tensor:
    """Huber 1964: quadratic within delta of the target, linear beyond (robust MSE)."""
    return F.huber_loss(pred, target, reduction="none", delta=delta).mean(-1)


@hookimpl
def benchinit_losses() -> list[Loss]:
    return [
        Loss("mse", mse, class_targets="one_hot"),
        Loss("cross_entropy", cross_entropy, tasks=("classification",), class_targets="index"),
        Loss("gaussian_nll", gaussian_nll, tasks=("regression",), prediction="mean_var"),
        Loss("l1", l1, class_targets="one_hot"),
        Loss("huber", huber, class_targets="one_hot"),
    ]
