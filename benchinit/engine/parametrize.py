"""A cell's parametrization applied to a stacked model (benchinit.study.parametrization).

- :func:`model_scales`: the per-layer :class:`Scales` of a cell's ``model`` configuration;
- :func:`rescale_init`: each member's initial draw times its layer's ``init`` factor;
- :func:`param_groups` and :func:`scale_groups`: one torch parameter group per layer tensor
  (members are stacked in one tensor per layer, and the scales are per layer, so this is
  exact), and each group's learning rate (and weight decay) scaled after the optimizer is
  built, whatever its ``lr`` parameter is called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from benchinit.engine.models import StackedMLP
from benchinit.study import parametrization as pz

Group = dict[str, Any]


def model_scales(
    model_cfg: Mapping[str, Any], layers: int, hidden: int, rule: str | None = None
) -> list[pz.Scales]:
    """Per layer, the scales of a cell's ``model`` configuration; ``rule``: the optimizer's
    :attr:`Optimizer.lr_scaling` (None: the lr columns do not matter, e.g. at init)."""
    return pz.layer_scales(
        model_cfg.get("parametrization", "standard"),
        layers=layers,
        hidden=hidden,
        width=int(model_cfg.get("width", 1)),
        base_width=int(model_cfg.get("base_width", pz.DEFAULT_BASE_WIDTH)),
        rule=rule or "sgd",
        output_init=model_cfg.get("mup_output", "initializer"),
    )


@torch.no_grad()
def rescale_init(model: StackedMLP, scales: Sequence[pz.Scales]) -> None:
    """Every member's weights and biases times their layer's init factors (in place)."""
    for layer, scale in enumerate(scales):
        if scale.init != 1:
            model.kernels[layer].mul_(scale.init)
        if model.biases is not None and scale.bias_init != 1:
            model.biases[layer].mul_(scale.bias_init)


def param_groups(model: StackedMLP, scales: Sequence[pz.Scales]) -> list[Group]:
    """One group per parameter tensor, with its lr factor under ``"lr_scale"`` (the
    normalization gains and shifts keep the base rate)."""
    groups: list[Group] = []
    for layer, scale in enumerate(scales):
        groups.append({"params": [model.kernels[layer]], "lr_scale": scale.lr})
        if model.biases is not None:
            groups.append({"params": [model.biases[layer]], "lr_scale": scale.bias_lr})
    for extra in (model.gains, model.shifts):
        groups.extend({"params": [p], "lr_scale": 1.0} for p in extra or [])
    return groups


def scale_groups(optimizer: torch.optim.Optimizer) -> None:
    """Each group's ``lr`` times its ``lr_scale`` and its ``weight_decay`` divided by it,
    as microsoft/mup does (lr x weight decay unchanged per group)."""
    for group in optimizer.param_groups:
        scale = float(group.pop("lr_scale", 1.0))
        if scale == 1:
            continue
        group["lr"] = group["lr"] * scale
        if group.get("weight_decay"):
            group["weight_decay"] = group["weight_decay"] / scale
