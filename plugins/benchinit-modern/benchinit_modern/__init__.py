"""benchinit-modern: an activation (Mish), an optimizer (Lion) and a loss (focal loss).

Each is a plain function or ``torch.optim.Optimizer`` plus a descriptor returned from one
hook per kind; the entry point ``modern = "benchinit_modern"`` in ``pyproject.toml`` makes
benchinit find them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from benchinit import Activation, Loss, Optimizer, hookimpl
from benchinit.analysis.meanfield import unit_gain

__version__ = "0.1.0"


def mish(x: torch.Tensor) -> torch.Tensor:
    """Mish (Misra 2019): x tanh(softplus(x)), smooth and non-monotonic."""
    return F.mish(x)


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023), one update per entry:

    w <- w - lr (sign(b1 m + (1 - b1) g) + wd w);   m <- b2 m + (1 - b2) g.
    Every step has the same size per entry, so its lr is typically 3-10x smaller than Adam's.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-4,
        beta1: float = 0.9,
        beta2: float = 0.99,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum"] = torch.zeros_like(p)
                m = state["momentum"]
                update = (m * group["beta1"] + p.grad * (1 - group["beta1"])).sign_()
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(update, alpha=-group["lr"])
                m.mul_(group["beta2"]).add_(p.grad, alpha=1 - group["beta2"])
        return None


def lion(
    params: list[torch.Tensor],
    *,
    lr: float = 1e-4,
    beta1: float = 0.9,
    beta2: float = 0.99,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Lion (Chen et al. 2023): sign of an interpolated momentum; use a small lr."""
    return Lion(params, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)


def focal(pred: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): -(1 - p_t)^gamma log p_t; gamma = 0 is cross-entropy."""
    log_p = F.log_softmax(pred, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return -((1 - log_p.exp()) ** gamma) * log_p


@hookimpl
def benchinit_activations() -> list[Activation]:
    return [Activation("mish", mish, gain=unit_gain(mish), hist_range=(-0.5, 3.0))]


@hookimpl
def benchinit_optimizers() -> list[Optimizer]:
    return [Optimizer("lion", lion, elementwise=True)]


@hookimpl
def benchinit_losses() -> list[Loss]:
    return [Loss("focal", focal, tasks=("classification",), class_targets="index")]
