"""Stacked CIFAR-style ResNets (He et al. 2016, section 4.2): G residual networks as one.

For image inputs ``(C, H, W)``, depth = 6n + 2 (8, 14, 20, 32...)::

    stem   Conv3x3(width) -> [BN] -> phi
    3 stages of n BasicBlocks, width, 2 width, 4 width channels (stride 2 entering stages 2, 3):
           s = shortcut(h) + scale * [BN](Conv3x3([phi([BN](Conv3x3(h)))]))     h' = phi(s)
    head   global average pool -> Linear(outputs)

Shortcuts are option A by default (identity; entering a stage, every second pixel and the new
channels zero), so they have no parameters and the network's weights are exactly its
convolutions; option B (``resnet(shortcut="B")``) projects entering a stage with a 1x1
convolution of stride 2 (no bias, then [BN]; He et al.'s option B), declared as the layer
``block{b}.shortcut`` (not hidden: no activation follows it) after the head, and initialized
by the cell's initializer after every other layer, so option A's draws are unchanged.
Each block's branch is multiplied by a learnable scalar ``scale`` (1 at initialization: the
plain ResNet), the multiplier Fixup (Zhang et al. 2019) adds and that SkipInit (De & Smith
2020) and ReZero (Bachlechner et al. 2020) start at 0. ``norm = "batch"``: batch norm after
every convolution (per member and channel; running statistics in eval mode, as
``torch.nn.BatchNorm2d``); ``"none"``: no normalization (what Fixup is for).

Members are groups of grouped convolutions, as in benchinit.engine.convnets, and batch
norm's channels are per member, so a stack is exactly G separate networks. Each conv layer
is a declared layer (``block`` and ``last_in_block`` tell an initializer the structure);
its trace is (the argument of phi, phi's output): for a block's second convolution the
argument is the sum s, the stream after the skip.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchinit.engine.convnets import DTYPES, as_images, image_of, per_member
from benchinit.engine.models import EPS, MOMENTUM, Trace
from benchinit.plugins.descriptors import Bound
from benchinit.plugins.model_kind import Layer, ModelShape, ModelSize


def blocks_per_stage(depth: int) -> int:
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"model 'resnet' needs model.depth = 6n + 2 (8, 14, 20, 32...), got {depth}"
        )
    return (depth - 2) // 6


def plan_convs(shape: ModelShape) -> list[tuple[int, int, int, int, int, bool]]:
    """Per conv layer: (in, out channels, input side, stride, block (0: the stem), last in
    its block)."""
    channels, side, _ = image_of(shape.inputs)
    n, width = blocks_per_stage(shape.depth), shape.width
    convs = [(channels, width, side, 1, 0, False)]
    c_in, block = width, 0
    for stage in range(3):
        c_out = width * 2**stage
        for index in range(n):
            stride = 2 if stage and not index else 1
            block += 1
            convs.append((c_in, c_out, side, stride, block, False))
            side = (side + 1) // 2 if stride == 2 else side
            convs.append((c_out, c_out, side, 1, block, True))
            c_in = c_out
    return convs


def resnet_size(shape: ModelShape, shortcut: str = "A") -> ModelSize:
    """(parameters, hidden units, multiply-adds) of one member, per sample."""
    params = units = macs = 0
    for c_in, c_out, side, stride, _, _ in plan_convs(shape):
        out_side = (side + stride - 1) // stride
        params += c_in * c_out * 9 + c_out * (shape.bias + 2 * (shape.norm == "batch"))
        units += c_out * out_side * out_side
        macs += c_in * c_out * 9 * out_side * out_side
        if shortcut == "B" and stride == 2:  # the 1x1 projection entering a stage
            params += c_in * c_out + 2 * c_out * (shape.norm == "batch")
            macs += c_in * c_out * out_side * out_side
    flat = 4 * shape.width
    params += flat * shape.outputs + shape.outputs * shape.bias + blocks_per_stage(shape.depth) * 3
    return params, units + shape.outputs, macs + flat * shape.outputs


SHORTCUTS = ("A", "B")


class StackedResNet(nn.Module):
    """A CIFAR ResNet of BasicBlocks, option-A (or B) shortcuts, [batch norm], per member."""

    residual = None  # the MLP's residual and norm attributes: this model's are its own
    norm = "none"

    def __init__(self, shape: ModelShape, device: Any = "cpu", shortcut: str = "A") -> None:
        super().__init__()
        if shape.norm not in ("none", "batch"):
            raise ValueError(f"model 'resnet': norm must be 'none' or 'batch', got {shape.norm!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"model 'resnet': shortcut must be 'A' or 'B', got {shortcut!r}")
        g, dtype = shape.members, DTYPES[shape.dtype]
        self.members, self.inputs, self.plan = g, image_of(shape.inputs), plan_convs(shape)
        self.batch_norm, self.norm = shape.norm == "batch", shape.norm
        self.hidden = len(self.plan)
        self.blocks = self.plan[-1][4]
        sizes: list[tuple[int, ...]] = [(g, o, i, 3, 3) for i, o, *_ in self.plan]
        outs = [s[1] for s in sizes]
        if shape.outputs:
            sizes.append((g, 4 * shape.width, shape.outputs))
            outs.append(shape.outputs)

        def zeros(*size: int, fill: float = 0.0) -> nn.Parameter:
            return nn.Parameter(torch.full(size, fill, dtype=dtype, device=device))

        self.kernels = nn.ParameterList(zeros(*s) for s in sizes)
        self.biases = nn.ParameterList(zeros(g, o) for o in outs) if shape.bias else None
        self.scales = zeros(g, self.blocks, fill=1.0)  # each block's branch multiplier
        if self.batch_norm:
            self.gains = nn.ParameterList(zeros(g, o, fill=1.0) for o in outs[: self.hidden])
            self.shifts = nn.ParameterList(zeros(g, o) for o in outs[: self.hidden])
            for layer, o in enumerate(outs[: self.hidden]):
                self.register_buffer(f"running_mean{layer}", torch.zeros(g * o, dtype=dtype))
                self.register_buffer(f"running_var{layer}", torch.ones(g * o, dtype=dtype))
        # option B: per stage entered, (block, in, out channels) of its 1x1 projection
        self.projected = (
            [(block, i, o) for i, o, _, stride, block, _ in self.plan if stride == 2]
            if shortcut == "B"
            else []
        )
        self.projections = nn.ParameterList(zeros(g, o, i, 1, 1) for _, i, o in self.projected)
        if self.batch_norm:
            self.projection_gains = nn.ParameterList(
                zeros(g, o, fill=1.0) for _, _, o in self.projected
            )
            self.projection_shifts = nn.ParameterList(zeros(g, o) for _, _, o in self.projected)
            for k, (_, _, o) in enumerate(self.projected):
                self.register_buffer(f"running_mean_projection{k}", torch.zeros(g * o, dtype=dtype))
                self.register_buffer(f"running_var_projection{k}", torch.ones(g * o, dtype=dtype))

    @property
    def layers(self) -> int:
        return len(self.kernels)

    @property
    def weights(self) -> list[torch.Tensor]:
        """The kernels (conv layers, the head as ``[G, out, in]``), then the projections."""
        return [k if k.dim() == 5 else k.mT for k in self.kernels] + list(self.projections)

    def layer_specs(self) -> list[Layer]:
        """``stem``, ``block{b}.conv{1,2}`` and the ``head``, with torch.nn.init's fans."""
        specs = [
            Layer(
                "stem" if not block else f"block{block}.conv{2 if last else 1}",
                "conv",
                c_in * 9,
                c_out * 9,
                block=block,
                last_in_block=last,
            )
            for c_in, c_out, _, _, block, last in self.plan
        ]
        if self.layers > self.hidden:
            head = self.kernels[-1]
            specs.append(Layer("head", "linear", head.shape[1], head.shape[2], hidden=False))
        specs += [
            Layer(f"block{block}.shortcut", "conv", c_in, c_out, hidden=False, block=block)
            for block, c_in, c_out in self.projected
        ]
        return specs

    def _conv(self, layer: int, h: torch.Tensor, update: bool) -> torch.Tensor:
        weight, (_, _, _, stride, _, _) = self.kernels[layer], self.plan[layer]
        g, out = weight.shape[:2]
        bias = None if self.biases is None else self.biases[layer].reshape(g * out)
        z = F.conv2d(h, weight.reshape(g * out, *weight.shape[2:]), bias, stride, 1, groups=g)
        if not self.batch_norm:
            return z
        return self._norm(z, f"running_mean{layer}", f"running_var{layer}", layer, update)

    def _norm(self, z: torch.Tensor, mean: str, var: str, k: int, update: bool) -> torch.Tensor:
        """Batch norm of a conv's output with buffers ``mean``/``var`` and the gains and
        shifts of conv ``k`` (a projection's when the buffers are a projection's)."""
        projection = mean.endswith(f"projection{k}")
        gains = self.projection_gains if projection else self.gains
        shifts = self.projection_shifts if projection else self.shifts
        running = (getattr(self, mean), getattr(self, var))
        if self.training and not update:  # a probe: batch statistics, running ones untouched
            running = (None, None)
        return F.batch_norm(
            z, *running, gains[k].reshape(-1), shifts[k].reshape(-1), self.training, MOMENTUM, EPS
        )

    def _shortcut(
        self, h: torch.Tensor, c_out: int, stride: int, block: int, update: bool
    ) -> torch.Tensor:
        """Option A: identity; entering a stage, every second pixel and zero new channels.
        Option B: entering a stage, the block's 1x1 projection of stride 2 [and BN]."""
        if stride == 1:
            return h
        if self.projected:
            k = [b for b, _, _ in self.projected].index(block)
            weight = self.projections[k]
            g, out = weight.shape[:2]
            z = F.conv2d(h, weight.reshape(g * out, *weight.shape[2:]), None, 2, 0, groups=g)
            z = z.contiguous(memory_format=torch.channels_last)
            if not self.batch_norm:
                return z
            return self._norm(
                z, f"running_mean_projection{k}", f"running_var_projection{k}", k, update
            )
        h = h[:, :, ::2, ::2]
        b, _, side, _ = h.shape
        grouped = h.reshape(b, self.members, -1, side, side)
        padded = F.pad(grouped, (0, 0, 0, 0, 0, c_out - grouped.shape[2]))
        return padded.reshape(b, -1, side, side).contiguous(memory_format=torch.channels_last)

    def forward(
        self,
        x: torch.Tensor,
        activation: Callable[[torch.Tensor], torch.Tensor],
        trace: Trace | None = None,
        *,
        update: bool = True,
        until: int | None = None,
    ) -> torch.Tensor:
        """Outputs ``[G, B, out]``; per conv layer (argument of phi, phi's output) pairs go
        to ``trace``; ``until``: return that layer's pre-activation ``[G, B, units]``."""
        h = as_images(x, self.members, self.inputs)
        stream = h
        for layer, (_, c_out, _, _, block, last) in enumerate(self.plan):
            z = self._conv(layer, h, update)
            if last:
                scale = self.scales[:, block - 1].repeat_interleave(c_out).view(1, -1, 1, 1)
                skip = self._shortcut(stream, c_out, self.plan[layer - 1][3], block, update)
                z = skip + scale * z
            if until == layer:
                return per_member(z, self.members)
            h = activation(z)
            if trace is not None:
                trace.append((per_member(z, self.members), per_member(h, self.members)))
            if last or not block:
                stream = h  # a block's input: the stem's output or the last block's
        pooled = per_member(h.mean((2, 3)), self.members)
        if self.layers == self.hidden:
            return pooled
        if self.biases is None:
            return torch.bmm(pooled, self.kernels[-1])
        return torch.baddbmm(self.biases[-1].unsqueeze(1), pooled, self.kernels[-1])

    @torch.no_grad()
    def initialize_member(
        self, g: int, initializer: Bound, bias_init: Bound, activation: Bound, generator: Any
    ) -> None:
        """Fill member g's weights in order from one generator, each followed by its bias
        (the projections, last, have none); batch norm's gains and shifts and the branch
        scales keep their values (1, 0, 1)."""
        for layer, weight in enumerate(self.weights):
            initializer(weight[g], generator, activation)
            if self.biases is not None and layer < len(self.biases):
                bias_init(self.biases[layer][g], generator, activation)

    def member(self, g: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> ResNetView:
        return ResNetView(self, g, activation)

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (members whose initializer failed)."""
        index = torch.as_tensor(list(members), dtype=torch.long)
        lists = (
            self.kernels,
            self.biases,
            self.projections,
            *(getattr(self, name, None) for name in ("gains", "shifts")),
            *(getattr(self, name, None) for name in ("projection_gains", "projection_shifts")),
        )
        for p in itertools.chain([self.scales], *(params or [] for params in lists)):
            p.data = p.data[index.to(p.device)]
        for name, buffer in list(self.named_buffers()):
            per = buffer.view(self.members, -1)[index.to(buffer.device)]
            setattr(self, name, per.reshape(-1))
        self.members = len(members)


class ResNetView:
    """One member of a stacked ResNet for a calibrating initializer: ``weights``,
    ``biases``, ``layers`` (the declared :class:`Layer` s, block structure included),
    ``scales`` (its ``[blocks]`` branch multipliers), ``preactivation(l, x)``."""

    def __init__(
        self, model: StackedResNet, g: int, activation: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self._model, self._g, self._activation = model, g, activation

    @property
    def weights(self) -> list[torch.Tensor]:
        return [w.data[self._g] for w in self._model.weights]

    @property
    def biases(self) -> list[torch.Tensor] | None:
        biases = self._model.biases
        return None if biases is None else [b.data[self._g] for b in biases]

    @property
    def layers(self) -> list[Layer]:
        return self._model.layer_specs()

    @property
    def scales(self) -> torch.Tensor:
        return self._model.scales.data[self._g]

    @property
    def hidden_layers(self) -> int:
        return self._model.hidden

    @torch.no_grad()
    def preactivation(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        model = self._model
        h = x.to(device=model.kernels[0].device, dtype=model.kernels[0].dtype)
        until = layer if layer < model.hidden else None
        return model(h, self._activation, update=False, until=until)[self._g]
