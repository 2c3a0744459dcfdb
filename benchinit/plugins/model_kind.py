"""The model plugin kind: :class:`Model` (``[model] name``), the :class:`ModelShape` it
builds and the :class:`Layer` s it declares; :data:`KINDS`, every descriptor kind by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from benchinit.plugins.descriptors import KINDS as ELEMENT_KINDS
from benchinit.plugins.descriptors import Descriptor


@dataclass(frozen=True)
class Layer:
    """One layer a model declares, for the probes and for initializers that need structure.

    ``kind``: ``"linear"`` or ``"conv"`` (torch.nn's Linear and Conv2d weights). ``fan_in``
    and ``fan_out`` as ``torch.nn.init`` computes them for the layer's weight of one member:
    in (out) features times the kernel's receptive field. ``hidden``: the probes measure it
    (an activation follows); a model's head is not hidden. ``block`` and ``last_in_block``
    give a residual model's structure to initializers that need it (``fixup``).
    """

    name: str  # "conv3", "head": how tables and figures name it
    kind: str  # "linear" | "conv"
    fan_in: int
    fan_out: int
    hidden: bool = True
    block: int = 0  # the residual block it belongs to (1, 2, ...); 0: none
    last_in_block: bool = False  # the last layer of its block's branch (Fixup zeroes it)


MODEL_SETTINGS: tuple[str, ...] = ("depth", "width", "bias", "bias_init", "residual", "norm")
# how layers scale with width (benchinit.study.parametrization): the MLP's
MODEL_SETTINGS += ("parametrization", "base_width", "mup_output")


@dataclass(frozen=True)
class ModelShape:
    """What a model builds for one stack: the members, the data's shapes, the [model] settings."""

    members: int  # G: members of the stack, computed as one
    inputs: tuple[int, ...]  # one sample: (features,) or (channels, height, width)
    outputs: int  # the head's outputs; 0: no head (a signal study probes the hidden layers)
    depth: int = 2
    width: int = 100
    bias: bool = True
    residual: float | None = None  # the branch scale alpha; None: a plain network
    norm: str = "none"  # none | layer | batch
    dtype: str = "float32"  # float32 | float64: the parameters' dtype


ModelSize = tuple[int, int, int]  # (parameters, hidden units, multiply-adds) per member, sample


@dataclass(frozen=True)
class Model(Descriptor):
    """``fn(shape: ModelShape, **params) -> stacked module``: ``shape.members`` models of one
    shape, computed as one (``[model] name``; the default ``mlp``).

    The module follows :class:`benchinit.engine.models.StackedMLP`'s contract:
    ``forward(x, activation, trace=None, *, update=True) -> [G, B, outputs]`` for shared
    ``[B, features]`` or per-member ``[G, B, features]`` inputs (flat rows; a model that wants
    images reshapes them to ``shape.inputs``), appending ``(pre-activation, output)`` pairs of
    ``[G, B, units]`` per hidden layer to ``trace``; ``kernels`` and ``biases`` (parameters
    with the member first), ``members``, ``hidden``, ``layers``, ``residual``, ``norm``;
    ``layer_specs()`` (its :class:`Layer` s), ``initialize_member(g, initializer, bias_init,
    activation, generator)`` (the initializer gets one member's weight, ``[out, in]`` or
    ``[out, in, kh, kw]``), ``member(g, activation)`` (a view for calibrating initializers) and
    ``keep(members)``. Subclassing a built-in (benchinit.engine.convnets.StackedCNN) gives all,
    and so does ``benchinit.engine.vmapped.stacked(factory)`` for a plain torch.nn.Module of
    one member (its contract in that module's docstring).

    ``honours``: the [model] settings it reads (of ``MODEL_SETTINGS``); a study that sets
    another one is refused. ``image``: it needs the dataset's image shape (``Data.shape``).
    ``size(shape, **params)`` (optional): :data:`ModelSize` of one member by arithmetic,
    for the memory check and the stack size before anything is allocated.
    """

    kind: ClassVar[str] = "model"
    honours: tuple[str, ...] = ("depth", "width", "bias", "bias_init")
    image: bool = False
    size: Callable[..., ModelSize] | None = None
    # check(settings) -> (key, problem) for [model] settings it cannot build (None: fine),
    # asked when a study loads, so a depth it has no network for is exit 2, not failed cells
    check: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [key for key in self.honours if key not in MODEL_SETTINGS]
        if unknown:
            raise ValueError(
                f"model {self.name!r}: honours {unknown} are not [model] settings; choose "
                f"from {', '.join(MODEL_SETTINGS)}"
            )


def refusal(
    model: Model, settings: Mapping[str, Any], changed: Callable[[str], bool]
) -> tuple[str, str] | None:
    """(key, why) when a study's [model] ``settings`` cannot go to ``model``: a setting it
    does not honour, ``changed`` from its default (it would change nothing), or one its
    ``check`` refuses; None when they can."""
    for key in (k for k in MODEL_SETTINGS if k not in model.honours):
        if changed(key):
            return key, (
                f"model '{model.name}' does not use it (it honours "
                f"{', '.join(model.honours) or 'no [model] setting'}); remove the setting, or "
                "choose a model that reads it (benchinit list models)"
            )
    found = model.check(settings) if model.check is not None else None
    return (found[0], f"model '{model.name}': {found[1]}") if found else None


KINDS: dict[str, type[Descriptor]] = {**ELEMENT_KINDS, Model.kind: Model}
