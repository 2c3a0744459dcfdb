"""Checks of plugin contracts that :mod:`benchinit.testing` runs: the problems list, and the
checks of a model plugin (a stack of members that never mix) and of an optimizer that
declares ``lr_scaling`` (it honours each parameter group's rate)."""

from __future__ import annotations

import math
from typing import Any

import torch

from benchinit.plugins.descriptors import Descriptor
from benchinit.plugins.model_kind import Layer, Model, ModelShape
from benchinit.plugins.registry import Registry


class Problems:
    """What a check found wrong, as sentences."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, condition: bool, message: str) -> bool:
        if not condition:
            self.items.append(message)
        return condition

    def run(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            self.items.append(f"{what} raised {type(exc).__name__}: {exc}")
            return None


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def default(descriptor: Descriptor, registry: Registry) -> Any:
    return registry.bind(descriptor.kind, descriptor.name)


def check_lr_groups(
    who: str, spec: Any, start: torch.Tensor, grad: torch.Tensor, problems: Problems
) -> None:
    """``lr_scaling``: groups accepted, and a group whose ``lr`` is halved (as
    benchinit.engine.parametrize does after construction) takes half the first step."""
    params = [torch.nn.Parameter(start.clone()) for _ in range(2)]
    groups = [{"params": [params[0]]}, {"params": [params[1]]}]
    optimizer = problems.run(
        f"{who} declares lr_scaling, but construction from groups", spec, groups
    )
    if optimizer is None:
        return
    if len(optimizer.param_groups) != 2:
        problems.check(
            False,
            f"{who} declares lr_scaling, but a parameter group at half the rate cannot be "
            f"set: two groups given, {len(optimizer.param_groups)} kept (or declare "
            "lr_scaling=None)",
        )
        return
    optimizer.param_groups[1]["lr"] = optimizer.param_groups[1]["lr"] / 2
    for param in params:
        param.grad = grad.clone()
    optimizer.step()
    full, half = (p.detach() - start for p in params)
    problems.check(
        torch.allclose(half, full / 2, rtol=1e-9, atol=1e-12) and bool(full.abs().sum() > 0),
        f"{who} declares lr_scaling, but a parameter group at half the rate does not take "
        "half the step: it must honour each group's lr (or declare lr_scaling=None)",
    )


def check_model(d: Model, registry: Registry, problems: Problems) -> None:
    who = f"model '{d.name}'"
    inputs = (1, 8, 8) if d.image else (6,)
    settings = {"depth": 2, "width": 4, "bias": True, "residual": False, "norm": "none"}
    for depth in (2, 3, 8):  # the smallest depth the model builds (a ResNet's is 6n + 2)
        if d.check is None or d.check({**settings, "depth": depth}) is None:
            break
    shape = ModelShape(2, inputs, outputs=3, depth=depth, width=4, dtype="float64")
    model = problems.run(f"{who} building {shape}", default(d, registry), shape)
    if model is None:
        return
    specs = getattr(model, "layer_specs", None)
    if not problems.check(callable(specs), f"{who} builds a model without layer_specs()"):
        return
    layers = problems.run(f"{who}.layer_specs()", specs)
    if not problems.check(
        isinstance(layers, list) and all(isinstance(x, Layer) for x in layers),
        f"{who}.layer_specs() must return a list of benchinit.Layer",
    ):
        return
    init, act = registry.bind("initializer", "kaiming_normal"), registry.bind("activation", "tanh")
    zeros = registry.bind("initializer", "zeros")
    for g in range(2):
        problems.run(
            f"{who}.initialize_member", model.initialize_member, g, init, zeros, act, seeded(g)
        )
    x = torch.randn(5, math.prod(inputs), generator=seeded(0), dtype=torch.float64)
    trace: list[Any] = []
    out = problems.run(f"{who} forward", lambda: model(x, act, trace).detach().clone())
    if out is None or not problems.check(
        tuple(out.shape) == (2, 5, 3), f"{who} returned {tuple(out.shape)}, not [G, B, outputs]"
    ):
        return
    hidden = sum(layer.hidden for layer in layers)
    problems.check(len(trace) == hidden, f"{who} traced {len(trace)} of {hidden} hidden layers")
    with torch.no_grad():
        for p in model.parameters():
            p[1].add_(1.0)  # member 1 changes; member 0 must not notice
    problems.check(
        torch.equal(model(x, act)[0], out[0]),
        f"{who}: members mix (one member's weights "
        "changed another's outputs); a stack must be G separate models",
    )
