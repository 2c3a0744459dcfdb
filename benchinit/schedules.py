"""Learning-rate schedules, shared by every optimizer and stepped once per epoch.

``schedule`` (an optimizer parameter) picks one; the lr in epoch e (0-based) is:

- ``constant``: lr
- ``step``: lr * gamma ** (e // step_size)            (torch.optim.lr_scheduler.StepLR)
- ``exponential``: lr * gamma ** e                    (ExponentialLR; pick gamma near 1)
- ``cosine``: eta_min + (lr - eta_min) (1 + cos(pi e / epochs)) / 2   (CosineAnnealingLR)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch


def lr_factor(params: Mapping[str, Any], base_lr: float, epochs: int) -> Callable[[int], float]:
    """The multiplier of ``base_lr`` in epoch ``e``."""
    schedule, gamma = params["schedule"], params["gamma"]
    if schedule == "constant":
        return lambda e: 1.0
    if schedule == "step":
        step_size = int(params["step_size"])
        if step_size < 1:  # binding refuses it (benchinit.descriptors.SCHEDULE_PARAMS)
            raise ValueError(f"step_size must be at least 1, got {step_size}")
        return lambda e: gamma ** (e // step_size)
    if schedule == "exponential":
        return lambda e: gamma**e
    if schedule == "cosine":
        eta_min, total = params["eta_min"], max(epochs, 1)

        def cosine(e: int) -> float:
            lr = eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * min(e, total) / total)) / 2
            return lr / base_lr if base_lr else 1.0

        return cosine
    raise ValueError(f"unknown schedule {schedule!r}")


def make_scheduler(
    optimizer: torch.optim.Optimizer, params: Mapping[str, Any], epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    base_lr = float(optimizer.param_groups[0]["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(params, base_lr, epochs))
