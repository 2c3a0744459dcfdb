"""Stacked convolutional networks: G LeNet-style CNNs of one shape, computed as one.

Member g's conv layer l is a ``[out, in, k, k]`` weight exactly like ``torch.nn.Conv2d``'s,
stored as ``kernels[l][g]`` of a ``[G, out, in, k, k]`` parameter; a forward pass is one
**grouped convolution** per layer over all members (members as groups: input channels
``[B, G * in, H, W]``, ``groups = G``), so members never mix, exactly as in
benchinit.engine.models. Activations are kept channels-last (``torch.channels_last``),
the faster layout for grouped 3x3 convolutions on our 2-core CPU (one thread, forward and
backward of 12 members x 16 -> 16 channels, batch 64, on a busy machine): 33 ms against 39
ms NCHW and 54 ms as 12 separate convolutions at 8x8; 0.83 s against 1.26 s NCHW and 0.81
s separate at 28x28, where the work is compute- and cache-bound and stacking gains nothing
(tests/benchmarks/bench_cnn_stack.py measures whole training). ``torch.func``
``stack_module_state`` + ``vmap`` measured slower in an earlier prototype.

The network, for image inputs ``(C, H, W)`` (a dataset's ``Data.shape``; rows of x are that
image flattened)::

    depth x (Conv2d(width, k x k, padding k // 2) -> activation), in two stages, each
    stage ending in a 2x2 average pool (LeNet's subsampling) while the image is 2 or more
    pixels wide; then flatten -> Linear(outputs), the head (when there is one).

The first stage holds ceil(depth / 2) layers. Hidden layer l's pre-activation is the
convolution's output and its output the activation's (before the pool), each flattened per
sample to ``[G, B, width * H_l * W_l]`` in a trace: the probes see every entry of the
feature map, as they see every unit of an MLP layer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchinit.engine.models import Trace
from benchinit.plugins.descriptors import Bound
from benchinit.plugins.model_kind import Layer, ModelShape, ModelSize

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def plan_layers(shape: ModelShape, kernel: int) -> list[tuple[int, int, int, bool]]:
    """Per conv layer: (in channels, out channels, input side, pooled after), by arithmetic."""
    channels, height, _ = image_of(shape.inputs)
    if shape.depth < 1:
        raise ValueError("model 'cnn' needs model.depth of 1 or more (convolutional layers)")
    layers, side = [], height
    first = math.ceil(shape.depth / 2)
    for index in range(shape.depth):
        pooled = index + 1 in (first, shape.depth) and side >= 2
        layers.append((channels if index == 0 else shape.width, shape.width, side, pooled))
        side = side // 2 if pooled else side
    return layers


def image_of(inputs: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` of a sample; a ValueError for flat features (the CNN needs images)."""
    if len(inputs) != 3:
        raise ValueError(
            f"model 'cnn' needs image inputs (channels, height, width); the dataset gives "
            f"flat features {tuple(inputs)} (a dataset declares images with Data.shape)"
        )
    channels, height, width = (int(v) for v in inputs)
    if height != width:
        raise ValueError(f"model 'cnn' needs square images, got {height}x{width}")
    return channels, height, width


def cnn_size(shape: ModelShape, *, kernel: int = 3) -> ModelSize:
    """(parameters, hidden units, multiply-adds) of one member, per sample."""
    params = units = macs = side = 0
    for c_in, c_out, side_in, pooled in plan_layers(shape, kernel):
        weights = c_in * c_out * kernel * kernel
        params += weights + c_out * shape.bias
        units += c_out * side_in * side_in
        macs += weights * side_in * side_in
        side = side_in // 2 if pooled else side_in
    flat = shape.width * side * side
    if shape.outputs:
        params += flat * shape.outputs + shape.outputs * shape.bias
        macs += flat * shape.outputs
    return params, units + shape.outputs, macs


def as_images(x: torch.Tensor, members: int, inputs: tuple[int, int, int]) -> torch.Tensor:
    """Flat rows, shared ``[B, F]`` or per member ``[G, B, F]`` -> ``[B, G * C, H, W]``
    (channels-last: the members' channels side by side, for grouped convolutions)."""
    c, h, w = inputs
    if x.dim() == 2:
        images = x.reshape(x.shape[0], 1, c, h, w).expand(-1, members, -1, -1, -1)
    else:
        images = x.reshape(members, x.shape[1], c, h, w).transpose(0, 1)
    images = images.reshape(images.shape[0], members * c, h, w)
    return images.contiguous(memory_format=torch.channels_last)


def per_member(h: torch.Tensor, members: int) -> torch.Tensor:
    """``[B, G * C, H, W]`` -> ``[G, B, C * H * W]`` (each member's flattened map)."""
    b = h.shape[0]
    return h.reshape(b, members, -1, *h.shape[2:]).transpose(0, 1).reshape(members, b, -1)


class StackedCNN(nn.Module):
    """``depth`` x (Conv2d -> activation) with two 2x2 average pools, then a linear head."""

    residual = None  # no residual blocks, no normalization: what the MLP's callers ask
    norm = "none"

    def __init__(self, shape: ModelShape, *, kernel: int = 3, device: Any = "cpu") -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"model 'cnn': kernel must be an odd positive size, got {kernel}")
        self.members, self.kernel, self.inputs = shape.members, kernel, image_of(shape.inputs)
        self.plan = plan_layers(shape, kernel)
        self.hidden = len(self.plan)
        dtype, g = DTYPES[shape.dtype], shape.members
        side = self.plan[-1][2] // 2 if self.plan[-1][3] else self.plan[-1][2]
        self.flat = shape.width * side * side
        shapes: list[tuple[int, ...]] = [(g, o, i, kernel, kernel) for i, o, _, _ in self.plan]
        if shape.outputs:
            shapes.append((g, self.flat, shape.outputs))  # the head, [G, in, out] as the MLP's
        self.kernels = nn.ParameterList(
            nn.Parameter(torch.zeros(s, dtype=dtype, device=device)) for s in shapes
        )
        outs = [s[1] for s in shapes[: self.hidden]] + ([shape.outputs] if shape.outputs else [])
        self.biases = (
            nn.ParameterList(
                nn.Parameter(torch.zeros(g, o, dtype=dtype, device=device)) for o in outs
            )
            if shape.bias
            else None
        )

    @property
    def layers(self) -> int:
        return len(self.kernels)

    @property
    def weights(self) -> list[torch.Tensor]:
        """Per layer, ``[G, out, in, k, k]`` (conv) or ``[G, out, in]`` (head) views."""
        return [k if k.dim() == 5 else k.mT for k in self.kernels]

    def layer_specs(self) -> list[Layer]:
        """The declared layers: ``conv1..convN`` and the ``head``, with torch.nn.init's fans."""
        area = self.kernel * self.kernel
        specs = [
            Layer(f"conv{i + 1}", "conv", c_in * area, c_out * area)
            for i, (c_in, c_out, _, _) in enumerate(self.plan)
        ]
        if self.layers > self.hidden:
            head = self.kernels[-1]
            specs.append(Layer("head", "linear", head.shape[1], head.shape[2], hidden=False))
        return specs

    def conv(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s convolution of every member, as one grouped convolution."""
        weight = self.kernels[layer]
        g, out = weight.shape[:2]
        bias = None if self.biases is None else self.biases[layer].reshape(g * out)
        return F.conv2d(
            h, weight.reshape(g * out, *weight.shape[2:]), bias, padding=self.kernel // 2, groups=g
        )

    def forward(
        self,
        x: torch.Tensor,
        activation: Callable[[torch.Tensor], torch.Tensor],
        trace: Trace | None = None,
        *,
        update: bool = True,
        until: int | None = None,
    ) -> torch.Tensor:
        """Outputs ``[G, B, out]`` (the last feature map flattened without a head); hidden
        (pre-activation, output) pairs go to ``trace``. ``until``: stop at that layer and
        return its pre-activation ``[G, B, units]`` (calibrating initializers)."""
        h = as_images(x, self.members, self.inputs)
        for layer, (_, _, _, pooled) in enumerate(self.plan):
            z = self.conv(layer, h)
            if until == layer:
                return per_member(z, self.members)
            h = activation(z)
            if trace is not None:
                trace.append((per_member(z, self.members), per_member(h, self.members)))
            if pooled:
                h = F.avg_pool2d(h, 2)
        flat = per_member(h, self.members)
        if self.layers == self.hidden:
            return flat
        head = self.kernels[-1]
        if self.biases is None:
            return torch.bmm(flat, head)
        return torch.baddbmm(self.biases[-1].unsqueeze(1), flat, head)

    @torch.no_grad()
    def initialize_member(
        self,
        g: int,
        initializer: Bound,
        bias_init: Bound,
        activation: Bound,
        generator: torch.Generator,
    ) -> None:
        """Fill member g's layers in order from one generator: each weight, then its bias.
        A conv weight is ``[out, in, k, k]``, the head's ``[out, in]`` (torch.nn's layouts)."""
        for layer, weight in enumerate(self.weights):
            initializer(weight[g], generator, activation)
            if self.biases is not None:
                bias_init(self.biases[layer][g], generator, activation)

    def member(self, g: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> MemberView:
        return MemberView(self, g, activation)

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (members whose initializer failed)."""
        index = torch.as_tensor(list(members), dtype=torch.long)
        for p in itertools.chain(self.kernels, self.biases or []):
            p.data = p.data[index.to(p.device)]
        self.members = len(members)


class MemberView:
    """One member of a stacked CNN for a data-dependent initializer (LSUV): ``weights[l]``
    and ``biases[l]`` are views into the stack (torch.nn layouts; change them in place),
    ``preactivation(l, x)`` the ``[B, units]`` pre-activation of layer l (the head's output
    for the last) on inputs ``x`` ``[B, features]``."""

    def __init__(
        self, model: Any, g: int, activation: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        """``model``: a stack with ``weights``, ``biases``, ``hidden``, ``layers`` and
        ``kernels`` (StackedCNN; benchinit.engine.vmapped's stack shares this view)."""
        self._model, self._g, self._activation = model, g, activation

    @property
    def weights(self) -> list[torch.Tensor]:
        return [w.data[self._g] for w in self._model.weights]

    @property
    def biases(self) -> list[torch.Tensor] | None:
        biases = self._model.biases
        return None if biases is None else [b.data[self._g] for b in biases]

    @property
    def hidden_layers(self) -> int:
        return self._model.hidden

    @torch.no_grad()
    def preactivation(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        model = self._model
        if not 0 <= layer < model.layers:
            raise IndexError(f"layer {layer} out of range")
        h = x.to(device=model.kernels[0].device, dtype=model.kernels[0].dtype)
        until = layer if layer < model.hidden else None
        return model(h, self._activation, until=until)[self._g]
