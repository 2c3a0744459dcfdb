"""Stacked MLPs: G independent models of one shape, computed as one.

Layer l of member g is ``weights[l][g]``, a ``[out, in]`` matrix exactly like
``torch.nn.Linear.weight``; a forward pass is one batched matmul per layer over all members.

The parameters themselves are stored transposed, as ``kernels[l]`` of shape ``[G, in, out]``
(``h @ kernel``), and ``weights`` are views of them. With ``[G, out, in]`` parameters used as
``h @ W^T``, autograd produces each weight gradient transposed and copies it into the
parameter's layout on every step: 19% of a 784-256-256-10 training step on a CPU (measured:
22.1 ms against 16.6 ms per step of 8 stacked models, batch 128).
Members never mix: member g's outputs, gradients and (under an elementwise optimizer)
updates depend only on member g's weights and inputs. So a stack is exactly G separate
models, and a batch of cells of one shape costs one set of kernel launches instead of G.

Inputs are either shared, ``[B, in]`` (every member sees the same batch: signal studies,
evaluation), or per member, ``[G, B, in]`` (each member's own shuffled minibatch).

Hidden layer l (1-based, l = 1..depth; the linear head, if any, is plain ``W h + b``)::

    z_l   = W_l h_{l-1} + b_l                       the affine map
    pre_l = N(z_l)                                  its normalization (z_l itself without one)
    h_l   = phi(pre_l)                              plain layer
    h_l   = h_{l-1} + alpha * phi(pre_l)            residual layer (He et al. 2016), l >= 2

The **pre-activation** of a layer is ``pre_l``, the argument of phi (what saturation is about),
and its **output** is ``h_l``, what the next layer sees: for a residual layer that is the
stream h_{l-1} + alpha phi(pre_l), not the branch. ``trace`` receives (pre_l, h_l) per hidden
layer, and ``ModelView.preactivation`` returns ``pre_l``. With ``residual = alpha``, layers
2..depth are residual (their input and output widths must be equal); layer 1 (inputs to
width) and the head stay plain.

Normalization N (Ba et al. 2016; Ioffe & Szegedy 2015), eps = 1e-5 as in torch::

    layer: per sample over the layer's units   N(z) = gain * (z - mean) / sqrt(var + eps) + shift
    batch: per member and unit over the batch, in training mode; in eval mode from running
           statistics, updated by each training-mode forward (momentum 0.1, unbiased variance)

like ``torch.nn.LayerNorm`` / ``BatchNorm1d``, with a learnable elementwise ``gain`` (1) and
``shift`` (0) per member: the torch defaults, and at those values the network at
initialization is the un-parametrized normalized one, so signal studies see no difference;
without the shift, batch norm would pin every unit's threshold at its batch mean for good,
and the layer's bias, which the normalization subtracts, could not move it. Batch
statistics are each member's own, so a stack is still exactly G separate models. Switch
between batch and running statistics with ``model.train()`` / ``model.eval()``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from benchinit.plugins.descriptors import Bound
from benchinit.plugins.model_kind import Layer

Trace = list[tuple[torch.Tensor, torch.Tensor]]  # per hidden layer: (pre-activation, output)
Norm = Literal["none", "layer", "batch"]
Statistics = tuple[torch.Tensor, torch.Tensor]  # (mean, var) that normalize z
NORMS: tuple[str, ...] = ("none", "layer", "batch")
EPS = 1e-5  # added to the variance, as torch.nn.LayerNorm and BatchNorm1d do
MOMENTUM = 0.1  # running statistics: new = (1 - MOMENTUM) * old + MOMENTUM * batch


def mlp_size(features: int, width: int, depth: int, outputs: int) -> tuple[int, int]:
    """(weights, biases) of one MLP ``features -> depth x width -> outputs`` (``outputs``
    0: no head), counted from the numbers alone: a study may ask for any depth, and its
    size is checked before anything is built (benchinit.engine.memory), so nothing here is made
    per layer."""
    if depth == 0:
        return features * outputs, outputs
    weights = features * width + (depth - 1) * width * width + width * outputs
    return weights, depth * width + outputs


@dataclass(frozen=True)
class Step:
    """One hidden layer's computation on a batch (see the module docstring)."""

    z: torch.Tensor  # W h + b, [G, B, out]
    statistics: Statistics | None  # the (mean, var) that normalized z; None without a norm
    pre: torch.Tensor  # phi's argument
    out: torch.Tensor  # the layer's output h_l


class StackedMLP(nn.Module):
    """``depth`` x (Linear -> [norm] -> activation [+ skip]), then an optional linear head."""

    def __init__(
        self,
        members: int,
        sizes: Sequence[int],
        *,
        head: bool,
        bias: bool,
        residual: float | None = None,
        norm: Norm = "none",
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        multipliers: Sequence[float] | None = None,
    ) -> None:
        """``sizes`` = [inputs, hidden..., outputs if head]; ``residual`` the branch scale;
        ``multipliers``: per layer, the factor on ``h @ W`` (benchinit.study.parametrization;
        default 1: the standard parametrization)."""
        super().__init__()
        self.multipliers = [float(m) for m in multipliers or [1.0] * (len(sizes) - 1)]
        if len(self.multipliers) != len(sizes) - 1:
            raise ValueError(f"{len(self.multipliers)} multipliers for {len(sizes) - 1} layers")
        if norm not in NORMS:
            raise ValueError(f"norm {norm!r} is not one of {', '.join(map(repr, NORMS))}")
        self.members = members
        self.hidden = len(sizes) - 1 - int(head)
        self.residual = residual
        self.norm = norm
        shapes = list(itertools.pairwise(sizes))  # (in, out) per layer
        odd = [i + 1 for i in range(1, self.hidden) if shapes[i][0] != shapes[i][1]]
        if residual is not None and odd:
            raise ValueError(f"residual layers need equal input and output widths; layers {odd}")
        self.kernels = nn.ParameterList(
            nn.Parameter(torch.zeros(members, i, o, dtype=dtype, device=device)) for i, o in shapes
        )
        self.biases = (
            nn.ParameterList(
                nn.Parameter(torch.zeros(members, o, dtype=dtype, device=device)) for _, o in shapes
            )
            if bias
            else None
        )
        widths = [o for _, o in shapes[: self.hidden]]

        def per_unit(fill: float) -> list[torch.Tensor]:
            return [torch.full((members, o), fill, dtype=dtype, device=device) for o in widths]

        self.gains = nn.ParameterList(map(nn.Parameter, per_unit(1.0))) if norm != "none" else None
        self.shifts = nn.ParameterList(map(nn.Parameter, per_unit(0.0))) if norm != "none" else None
        if norm == "batch":
            for layer, (mean, var) in enumerate(zip(per_unit(0.0), per_unit(1.0), strict=True)):
                self.register_buffer(f"running_mean{layer}", mean)
                self.register_buffer(f"running_var{layer}", var)

    @property
    def weights(self) -> list[torch.Tensor]:
        """Per layer, the effective ``[G, out, in]`` weights (``torch.nn.Linear`` layout):
        views of the kernels, times the layer's multiplier where it is not 1."""
        return [
            k.mT if m == 1 else k.mT * m
            for k, m in zip(self.kernels, self.multipliers, strict=True)
        ]

    @property
    def layers(self) -> int:
        return len(self.kernels)

    def layer_specs(self) -> list[Layer]:
        """The declared layers (benchinit.plugins.model_kind): ``layer1..layerL``, linear, and
        the ``head``; fans as ``torch.nn.init`` computes them for ``[out, in]`` weights."""
        names = [f"layer{i + 1}" if i < self.hidden else "head" for i in range(self.layers)]
        return [
            Layer(name, "linear", k.shape[1], k.shape[2], hidden=i < self.hidden)
            for i, (name, k) in enumerate(zip(names, self.kernels, strict=True))
        ]

    def is_residual(self, layer: int) -> bool:
        """Whether hidden layer ``layer`` (0-based) adds its input back: layers 1..hidden-1."""
        return self.residual is not None and 1 <= layer < self.hidden

    def forward(
        self,
        x: torch.Tensor,
        activation: Callable[[torch.Tensor], torch.Tensor],
        trace: Trace | None = None,
        *,
        update: bool = True,
    ) -> torch.Tensor:
        """Outputs ``[G, B, out]``; hidden (pre-activation, output) pairs go to ``trace``.
        ``update=False``: a training-mode batch norm leaves its running statistics alone
        (a probe looks without changing what evaluation will see)."""
        h = x
        for step in self.steps(x, activation, update=update):
            h = step.out
            if trace is not None:
                trace.append((step.pre, step.out))
        return self.affine(self.hidden, h) if self.hidden < self.layers else h

    def steps(
        self,
        x: torch.Tensor,
        activation: Callable[[torch.Tensor], torch.Tensor],
        *,
        member: int | None = None,
        statistics: Sequence[Statistics] | None = None,
        update: bool = True,
    ) -> Iterator[Step]:
        """Each hidden layer's :class:`Step`, in order: the one definition of a forward pass.

        ``member``: compute only that member (outputs ``[1, B, out]``). ``statistics``: per
        hidden layer, the (mean, var) to normalize with instead of the batch's or the
        running ones. ``update``: whether a training-mode batch norm updates its running
        statistics (only for the whole stack).
        """
        h, alpha = x, self.residual or 0.0
        for layer in range(self.hidden):
            z = self.affine(layer, h, member)
            if statistics is not None:
                stats: Statistics | None = statistics[layer]
            else:
                stats = self._statistics(layer, z, member, update and member is None)
            pre = self._normalize(layer, z, stats, member)
            branch = activation(pre)
            h = h + alpha * branch if self.is_residual(layer) else branch
            yield Step(z, stats, pre, h)

    def affine(self, layer: int, h: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """``h @ W^T + b`` for every member (or one); ``h`` is ``[B, in]`` or ``[G, B, in]``."""
        k, m = self._of(self.kernels[layer], member), self.multipliers[layer]
        if self.biases is None:
            return torch.matmul(h, k) if m == 1 else torch.matmul(h, k) * m
        b = self._of(self.biases[layer], member).unsqueeze(1)
        if h.dim() == 3:
            return torch.baddbmm(b, h, k) if m == 1 else torch.baddbmm(b, h, k, alpha=m)
        return (torch.matmul(h, k) if m == 1 else torch.matmul(h, k) * m) + b

    @staticmethod
    def _of(tensor: torch.Tensor, member: int | None) -> torch.Tensor:
        return tensor if member is None else tensor[member : member + 1]

    def running(self, layer: int) -> Statistics:
        """Batch norm's running (mean, var) of hidden layer ``layer``, each ``[G, out]``."""
        return getattr(self, f"running_mean{layer}"), getattr(self, f"running_var{layer}")

    def _statistics(
        self, layer: int, z: torch.Tensor, member: int | None, update: bool
    ) -> Statistics | None:
        if self.norm == "none":
            return None
        if self.norm == "layer":
            return z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
        if not self.training:
            mean, var = self.running(layer)
            return self._of(mean, member).unsqueeze(1), self._of(var, member).unsqueeze(1)
        batch = z.shape[1]
        if batch < 2:
            raise ValueError(
                f"batch norm in training mode needs batches of 2 or more samples, got {batch}"
            )
        mean, var = z.mean(1, keepdim=True), z.var(1, unbiased=False, keepdim=True)
        if update:
            with torch.no_grad():
                running_mean, running_var = self.running(layer)
                running_mean.lerp_(mean.squeeze(1), MOMENTUM)
                running_var.lerp_(var.squeeze(1) * (batch / (batch - 1)), MOMENTUM)
        return mean, var

    def _normalize(
        self, layer: int, z: torch.Tensor, stats: Statistics | None, member: int | None
    ) -> torch.Tensor:
        if stats is None or self.gains is None or self.shifts is None:
            return z
        mean, var = stats
        gain = self._of(self.gains[layer], member).unsqueeze(1)
        shift = self._of(self.shifts[layer], member).unsqueeze(1)
        return (z - mean) * torch.rsqrt(var + EPS) * gain + shift

    @torch.no_grad()
    def initialize_member(
        self,
        g: int,
        initializer: Bound,
        bias_init: Bound,
        activation: Bound,
        generator: torch.Generator,
    ) -> None:
        """Fill member g's layers in order from one generator: weights, then biases.

        Normalization gains and shifts keep their values (1 and 0): not the initializer's.
        """
        for layer in range(self.layers):
            initializer(self.kernels[layer][g].mT, generator, activation)
            if self.biases is not None:
                bias_init(self.biases[layer][g], generator, activation)

    def member(self, g: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> ModelView:
        return ModelView(self, g, activation)

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (members whose initializer failed)."""
        index = torch.as_tensor(list(members), dtype=torch.long)
        lists = (self.kernels, self.biases, self.gains, self.shifts)
        for p in itertools.chain.from_iterable(params or [] for params in lists):
            p.data = p.data[index.to(p.device)]
        for name, buffer in list(self.named_buffers()):
            setattr(self, name, buffer[index.to(buffer.device)])
        self.members = len(members)


class ModelView:
    """One member of a stacked model: what a data-dependent initializer works on.

    ``weights[l]`` and ``biases[l]`` are views into the stack (change them in place);
    ``preactivation(l, x)`` runs ``x`` (``[B, in]``) through this member up to layer l and
    returns that layer's pre-activation ``[B, out]``: for a hidden layer the argument of phi
    (after normalization, if any), for the head its output. Layers count from 0 and include
    the linear head of a training model as the last one. It never updates batch norm's
    running statistics.
    """

    def __init__(
        self, model: StackedMLP, g: int, activation: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self._model, self._g, self._activation = model, g, activation

    @property
    def weights(self) -> list[torch.Tensor]:
        return [k.data[self._g].mT for k in self._model.kernels]

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
        for index, step in enumerate(model.steps(h, self._activation, member=self._g)):
            if index == layer:
                return step.pre[0]
            h = step.out
        return model.affine(layer, h, self._g)[0]
