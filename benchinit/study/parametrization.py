"""Parametrizations as abc-tables: how each layer's multiplier, initial scale and learning
rate scale with width (Yang & Hu 2021, "Tensor Programs IV"; Yang et al. 2022, "Tensor
Programs V", Table 3 and the MuReadout form of its Appendix; microsoft/mup's conventions).

A layer computes ``z = multiplier * (h @ W) + b``. With ``n = width / base_width`` (the
width multiplier; every hidden layer of an MLP has the same width), each layer's factors are
``n ** exponent`` from :data:`TABLE`:

- ``multiplier``: the forward multiplier of the weight (never of the bias, as MuReadout);
- ``init``: a factor on the initializer's draw of W (the initializer still picks its own
  variance from fan-in, so ``init = 1`` keeps it: SP-style 1/fan_in);
- ``lr``: a factor on the optimizer's learning rate for W; ``bias_lr`` and ``bias_init``
  the same for the layer's bias.

The update rule (``sgd``: the step is linear in the gradient; ``adam``: the step is
invariant to the gradient's scale, as Adam, AdamW, RMSprop, Adagrad) picks the lr column.
At ``width == base_width`` every factor is 1: each parametrization *is* the standard one at
its base width, so a rate tuned there is the standard rate.

Roles: ``input`` (features -> width), ``hidden`` (width -> width), ``output`` (the head,
width -> outputs). A model with no hidden layer has no width: every factor is 1.

Where this follows microsoft/mup exactly: muP's output layer is MuReadout (multiplier 1/n,
initializer's draw times sqrt(n), bias times sqrt(n)); MuSGD's lr x n for vector-like
tensors (input weights, hidden biases, output weights) and lr / (fan-in mult / fan-out mult)
= 1 for square hidden weights; MuAdam's lr / n for matrix-like (hidden) weights only;
weight decay divided by the same lr factor (mup's coupled ``decoupled_wd=False`` default, so
lr x weight decay is unchanged per group). ``mup_output = "zero"`` is MuReadout's
``readout_zero_init`` (weights and bias zero). NTK has no reference implementation in mup:
here it is the abc form of Jacot et al. (2018) relative to the base width, multiplier
n^-1/2 on every weight with fan-in n and its draw scaled up by n^1/2 (so the initial
function equals the standard one), learning rates unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchinit.plugins.descriptors import Bound
    from benchinit.plugins.registry import Registry

PARAMETRIZATIONS = ("standard", "ntk", "mup")
RULES = ("sgd", "adam")  # the optimizer's update rule (benchinit.plugins.descriptors.Optimizer)
OUTPUT_INITS = ("initializer", "zero")  # muP's output layer: the initializer's draw, or zero
ROLES = ("input", "hidden", "output")
DEFAULT_BASE_WIDTH = 64

# Exponents of n = width / base_width:
# (multiplier, init, lr, bias_init, bias_lr) per role.
Exponents = tuple[float, float, float, float, float]
_ZERO: Exponents = (0, 0, 0, 0, 0)
_NTK: Exponents = (-0.5, 0.5, 0, 0, 0)  # multiplier n^-1/2, draw x n^1/2: f(x) as standard
TABLE: dict[tuple[str, str], dict[str, Exponents]] = {
    ("standard", "sgd"): {"input": _ZERO, "hidden": _ZERO, "output": _ZERO},
    ("standard", "adam"): {"input": _ZERO, "hidden": _ZERO, "output": _ZERO},
    ("ntk", "sgd"): {"input": _ZERO, "hidden": _NTK, "output": _NTK},
    ("ntk", "adam"): {"input": _ZERO, "hidden": _NTK, "output": _NTK},
    # TP V Table 3, SGD: input weights and biases lr x fan_out, hidden lr x 1, output the
    # 1/fan_in multiplier (MuReadout) with lr x n on the stored weight: effective lr / n.
    ("mup", "sgd"): {
        "input": (0, 0, 1, 0, 1),
        "hidden": (0, 0, 0, 0, 1),
        "output": (-1, 0.5, 1, 0.5, 0),
    },
    # TP V Table 3, Adam: hidden lr / fan_in; output effective lr / n through the multiplier.
    ("mup", "adam"): {"input": _ZERO, "hidden": (0, 0, -1, 0, 0), "output": (-1, 0.5, 0, 0.5, 0)},
}


@dataclass(frozen=True)
class Scales:
    """One layer's factors (see the module docstring)."""

    multiplier: float = 1.0
    init: float = 1.0
    lr: float = 1.0
    bias_init: float = 1.0
    bias_lr: float = 1.0


def roles(layers: int, hidden: int) -> list[str]:
    """Each layer's role: ``layers`` affine layers, ``hidden`` of them hidden (the rest the
    head). ``input`` is the first hidden layer, ``output`` the head."""
    return ["input" if i == 0 else "hidden" if i < hidden else "output" for i in range(layers)]


def layer_scales(
    parametrization: str,
    *,
    layers: int,
    hidden: int,
    width: int,
    base_width: int = DEFAULT_BASE_WIDTH,
    rule: str = "sgd",
    output_init: str = "initializer",
) -> list[Scales]:
    """Per affine layer, its :class:`Scales` (``rule`` as :data:`RULES`)."""
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization {parametrization!r} is not one of {PARAMETRIZATIONS}")
    if rule not in RULES:
        raise ValueError(f"update rule {rule!r} is not one of {RULES}")
    if hidden == 0:
        return [Scales() for _ in range(layers)]
    n = width / base_width
    table = TABLE[(parametrization, rule)]
    scales = []
    for role in roles(layers, hidden):
        a, b, c, d, e = table[role]
        scale = Scales(n**a, n**b, n**c, n**d, n**e)
        if parametrization == "mup" and role == "output" and output_init == "zero":
            scale = Scales(scale.multiplier, 0.0, scale.lr, 0.0, scale.bias_lr)
        scales.append(scale)
    return scales


def needs_rule(parametrization: str) -> bool:
    """Whether the parametrization scales learning rates (so the optimizer must say its
    update rule): muP only; NTK and standard change none."""
    return any(
        exponents[2] or exponents[4]
        for (name, _), table in TABLE.items()
        if name == parametrization
        for exponents in table.values()
    )


def lr_scaling_problem(registry: Registry, model: Mapping[str, Any], optimizer: Bound[Any]) -> str:
    """Why ``optimizer`` cannot train ``model`` (a cell's [model] configuration), or "":
    muP scales learning rates per layer, so the optimizer must declare how
    (``Optimizer(lr_scaling=...)``, benchinit.plugins.descriptors)."""
    kind = model.get("parametrization", "standard")
    if not needs_rule(kind) or optimizer.descriptor.lr_scaling is not None:
        return ""
    names = registry.names("optimizer")
    able = [n for n in names if registry.get("optimizer", n).descriptor.lr_scaling]
    source = registry.get("optimizer", optimizer.name).plugin.describe()
    return (
        f"optimizer '{optimizer.name}' ({source}) declares no lr_scaling, so it cannot "
        f"take the per-layer learning rates of model.parametrization = '{kind}'. Use one "
        f"that does ({', '.join(able)}), or, if its fn accepts torch parameter groups, "
        'declare Optimizer(..., lr_scaling="sgd") (a step linear in the gradient) or '
        '"adam" (a step invariant to its scale) in the plugin.'
    )
