"""The built-in models, registered like any third-party model plugin (``[model] name``).

- ``mlp`` (the default): benchinit.engine.models.StackedMLP, every [model] setting;
- ``cnn``: benchinit.engine.convnets.StackedCNN, a LeNet-style convolutional network for
  image datasets (``digits`` 8x8, ``mnist_5k`` and ``mnist`` 28x28);
- ``resnet``: benchinit.engine.resnets.StackedResNet, a CIFAR-style ResNet of BasicBlocks
  (depth 8, 14, 20, ...; ``norm`` batch or none).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from benchinit.engine.convnets import DTYPES, StackedCNN, cnn_size
from benchinit.engine.models import StackedMLP, mlp_size
from benchinit.engine.resnets import StackedResNet, resnet_size
from benchinit.plugins.hookspecs import hookimpl
from benchinit.plugins.model_kind import MODEL_SETTINGS, Model, ModelShape, ModelSize


def mlp(shape: ModelShape) -> StackedMLP:
    """Multilayer perceptron: depth x (Linear -> [norm] -> activation [+ skip]) -> Linear."""
    features = math.prod(shape.inputs)
    head = [shape.outputs] if shape.outputs else []
    return StackedMLP(
        shape.members,
        [features] + [shape.width] * shape.depth + head,
        head=bool(shape.outputs),
        bias=shape.bias,
        residual=shape.residual,
        norm=shape.norm,  # type: ignore[arg-type]
        dtype=DTYPES[shape.dtype],
    )


def mlp_sizes(shape: ModelShape) -> ModelSize:
    weights, biases = mlp_size(math.prod(shape.inputs), shape.width, shape.depth, shape.outputs)
    units = shape.depth * shape.width + shape.outputs
    return weights + biases, units, weights


def cnn(shape: ModelShape, *, kernel: int = 3) -> StackedCNN:
    """LeNet-style CNN: depth x (Conv2d(width, k x k) -> activation), 2 average pools, Linear."""
    return StackedCNN(shape, kernel=kernel)


def resnet(shape: ModelShape, *, shortcut: Literal["A", "B"] = "A") -> StackedResNet:
    """CIFAR ResNet (He et al. 2016): depth = 6n + 2, BasicBlocks; shortcuts entering a stage
    by option A (identity, zero-padded channels) or B (a 1x1 projection of stride 2)."""
    return StackedResNet(shape, shortcut=shortcut)


def cnn_check(settings: Mapping[str, Any]) -> tuple[str, str] | None:
    if settings["depth"] < 1:
        return "depth", "needs 1 or more convolutional layers"
    return None


def resnet_check(settings: Mapping[str, Any]) -> tuple[str, str] | None:
    depth = settings["depth"]
    if depth < 8 or (depth - 2) % 6:
        return "depth", f"needs depth = 6n + 2 (8, 14, 20, 32...), got {depth}"
    if settings["norm"] not in ("none", "batch"):
        return "norm", f"has norm 'none' or 'batch', not {settings['norm']!r}"
    return None


@hookimpl
def benchinit_models() -> list[Model]:
    return [
        Model("mlp", mlp, honours=MODEL_SETTINGS, size=mlp_sizes),
        Model(
            "cnn",
            cnn,
            honours=("depth", "width", "bias", "bias_init"),
            image=True,
            size=cnn_size,
            check=cnn_check,
        ),
        Model(
            "resnet",
            resnet,
            honours=("depth", "width", "bias", "bias_init", "norm"),
            image=True,
            size=resnet_size,
            check=resnet_check,
        ),
    ]
