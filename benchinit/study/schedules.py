"""Learning-rate schedules, shared by every optimizer and stepped once per epoch.

``schedule`` (an optimizer parameter) picks one; the lr in epoch e (0-based) is:

- ``constant``: lr
- ``step``: lr * gamma ** (e // step_size)            (torch.optim.lr_scheduler.StepLR)
- ``exponential``: lr * gamma ** e                    (ExponentialLR; pick gamma near 1)
- ``cosine``: eta_min + (lr - eta_min) (1 + cos(pi e / epochs)) / 2   (CosineAnnealingLR)

:func:`inert` says which schedule parameters cannot change the learning rate of a run
(benchinit.study.inert resets them before a cell's id is computed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

# The parameters each schedule reads (lr_factor below is the truth; a test holds them equal).
READS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "step": ("step_size", "gamma"),
    "exponential": ("gamma",),
    "cosine": ("eta_min",),
}
SCHEDULE_KEYS = ("schedule", "step_size", "gamma", "eta_min")


def lr_factor(params: Mapping[str, Any], base_lr: float, epochs: int) -> Callable[[int], float]:
    """The multiplier of ``base_lr`` in epoch ``e``."""
    schedule, gamma = params["schedule"], params["gamma"]
    if schedule == "constant":
        return lambda e: 1.0
    if schedule == "step":
        step_size = int(params["step_size"])
        if step_size < 1:  # binding refuses it (benchinit.plugins.descriptors.SCHEDULE_PARAMS)
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


def inert(params: Mapping[str, Any], epochs: int, tuned: Collection[str] = ()) -> dict[str, str]:
    """The schedule parameters that cannot change the learning rate of a run of ``epochs``
    epochs, each with why (completing "<param> ..."). ``schedule`` itself is inert when its
    learning rate never leaves its base value: one epoch or none (the first epoch always
    runs at the base lr), a step schedule whose step_size is past the last epoch, or a
    gamma of 1. A parameter in ``tuned`` (tried at other values later) is never taken as
    fixed: whether the schedule matters then depends on the values tried.
    """
    schedule = params["schedule"]
    found: dict[str, str] = {}
    fixed = {key: params[key] for key in READS.get(schedule, ()) if key not in tuned}
    if schedule != "constant":
        if epochs <= 1:
            found["schedule"] = (
                f"has no effect at {epochs} epoch{'s' * (epochs != 1)} (a schedule changes "
                "the learning rate only after the first epoch)"
            )
        elif fixed.get("gamma") == 1 and schedule in ("step", "exponential"):
            found["schedule"] = "has no effect with gamma = 1 (the learning rate never changes)"
        elif schedule == "step" and fixed.get("step_size", 0) >= epochs:
            found["schedule"] = (
                f"has no effect with step_size {fixed['step_size']} at {epochs} epochs (the "
                "learning rate would first step after the last epoch)"
            )
    reads = READS.get(schedule, ())
    for key in SCHEDULE_KEYS[1:]:
        if key not in reads:
            found[key] = f"has no effect with schedule {schedule!r} (it does not read it)"
        elif "schedule" in found:
            found[key] = f"has no effect, as schedule {schedule!r} has none here"
    return found
