"""A cell's model plugin: bound from its configuration, the shape it builds, its size.

``[model] name`` is absent from a cell's configuration for the default ``mlp`` (so cell ids
from before models were plugins stay valid), else the plugin's {name, params, version}.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from benchinit.engine.models import mlp_size
from benchinit.plugins.descriptors import Bound
from benchinit.plugins.model_kind import Model, ModelShape, ModelSize
from benchinit.plugins.registry import Registry


def model_of(registry: Registry, model: Mapping[str, Any]) -> Bound[Model]:
    """A cell's model plugin, bound (``mlp`` when its configuration names none)."""
    plugin = model.get("name")
    if plugin is None:
        return registry.bind("model", "mlp")
    return registry.bind("model", {"name": plugin["name"], **plugin["params"]})


def model_shape(
    model: Mapping[str, Any],
    members: int,
    inputs: tuple[int, ...],
    outputs: int,
    *,
    residual: float | None = None,
) -> ModelShape:
    """What a model plugin builds: ``members`` models of a cell's [model] settings
    (``residual``: the branch scale, benchinit.engine.stack.branch_scale)."""
    return ModelShape(
        members=members,
        inputs=tuple(inputs),
        outputs=outputs,
        depth=int(model["depth"]),
        width=int(model["width"]),
        bias=bool(model["bias"]),
        residual=residual,
        norm=str(model.get("norm", "none")),
        dtype=str(model["dtype"]),
    )


def inputs_of(plugin: Bound[Model], features: int, shape: Sequence[int] | None) -> tuple[int, ...]:
    """One sample's shape as the model sees it: the image shape where the model asks for
    one and the dataset gives it, else flat features."""
    return tuple(shape) if plugin.descriptor.image and shape else (features,)


def member_size(
    registry: Registry,
    model: Mapping[str, Any],
    features: int,
    shape: Sequence[int] | None,
    outputs: int,
) -> ModelSize:
    """(parameters, hidden units, multiply-adds per sample) of one member of a cell's model,
    by arithmetic (the plugin's ``size``; without one, what its ``fn``'s ``measure`` finds,
    benchinit.engine.vmapped.stacked's; failing that, the MLP's of the same settings)."""
    plugin = model_of(registry, model)
    size = plugin.descriptor.size
    measure = getattr(plugin.descriptor.fn, "measure", None)
    if size is None and callable(measure):
        shaped = model_shape(model, 1, inputs_of(plugin, features, shape), outputs)
        measured: ModelSize | None = measure(shaped, **plugin.call_params)
        if measured is not None:
            return measured
    if size is None:
        weights, biases = mlp_size(features, int(model["width"]), int(model["depth"]), outputs)
        return weights + biases, int(model["depth"]) * int(model["width"]) + outputs, weights
    inputs = inputs_of(plugin, features, shape)
    params = {k: v for k, v in plugin.call_params.items() if k in _keywords(size)}
    return size(model_shape(model, 1, inputs, outputs), **params)


def _keywords(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters) - {"shape"}
