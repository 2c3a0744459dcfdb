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
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from benchinit.descriptors import Bound

Trace = list[tuple[torch.Tensor, torch.Tensor]]  # per hidden layer: (pre-activation, activation)


class StackedMLP(nn.Module):
    """``depth`` x (Linear -> activation), then an optional linear head, for G members."""

    def __init__(
        self,
        members: int,
        sizes: Sequence[int],
        *,
        head: bool,
        bias: bool,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        """``sizes`` = [inputs, hidden..., outputs if head]."""
        super().__init__()
        self.members = members
        self.hidden = len(sizes) - 1 - int(head)
        shapes = list(itertools.pairwise(sizes))  # (in, out) per layer
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

    @property
    def weights(self) -> list[torch.Tensor]:
        """Per layer, ``[G, out, in]`` views of the kernels (``torch.nn.Linear`` layout)."""
        return [k.mT for k in self.kernels]

    @property
    def layers(self) -> int:
        return len(self.kernels)

    def forward(
        self,
        x: torch.Tensor,
        activation: Callable[[torch.Tensor], torch.Tensor],
        trace: Trace | None = None,
    ) -> torch.Tensor:
        """Outputs ``[G, B, out]``; hidden (pre-activation, activation) pairs go to ``trace``."""
        h = x
        for layer in range(self.layers):
            z = self.affine(layer, h)
            if layer < self.hidden:
                h = activation(z)
                if trace is not None:
                    trace.append((z, h))
            else:
                h = z
        return h

    def affine(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """``h @ W^T + b`` for every member; ``h`` is ``[B, in]`` or ``[G, B, in]``."""
        k = self.kernels[layer]
        if self.biases is None:
            return torch.matmul(h, k)
        b = self.biases[layer].unsqueeze(1)
        if h.dim() == 3:
            return torch.baddbmm(b, h, k)
        return torch.matmul(h, k) + b

    @torch.no_grad()
    def initialize_member(
        self,
        g: int,
        initializer: Bound,
        bias_init: Bound,
        activation: Bound,
        generator: torch.Generator,
    ) -> None:
        """Fill member g's layers in order from one generator: weights, then biases."""
        for layer in range(self.layers):
            initializer(self.kernels[layer][g].mT, generator, activation)
            if self.biases is not None:
                bias_init(self.biases[layer][g], generator, activation)

    def member(self, g: int, activation: Callable[[torch.Tensor], torch.Tensor]) -> ModelView:
        return ModelView(self, g, activation)

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (members whose initializer failed)."""
        index = torch.as_tensor(list(members), dtype=torch.long)
        for p in [*self.kernels, *(self.biases or [])]:
            p.data = p.data[index.to(p.device)]
        self.members = len(members)


class ModelView:
    """One member of a stacked model: what a data-dependent initializer works on.

    ``weights[l]`` and ``biases[l]`` are views into the stack (change them in place);
    ``preactivation(l, x)`` runs ``x`` (``[B, in]``) through this member up to layer l and
    returns that layer's pre-activation ``[B, out]``. Layers count from 0 and include the
    linear head of a training model as the last one.
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
        weights, biases = self.weights, self.biases
        h = x.to(device=weights[0].device, dtype=weights[0].dtype)
        for index in range(layer + 1):
            z = h @ weights[index].T
            if biases is not None:
                z = z + biases[index]
            if index == layer:
                return z
            h = self._activation(z) if index < self.hidden_layers else z
        raise IndexError(f"layer {layer} out of range")
