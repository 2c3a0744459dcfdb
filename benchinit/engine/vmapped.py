"""Any plain ``torch.nn.Module`` of one member, stacked: ``stacked(TinyNet)`` is a model
plugin's ``fn`` (``Model("tinynet", stacked(TinyNet), image=True)``).

**The member module's contract.** ``factory(shape, **params)`` (a class or a function; a
:class:`ModelShape` with its ``members`` ignored) builds ONE member, of ``torch.nn`` layers:

- ``forward(x, act) -> [B, outputs]``: ``x`` is a batch of samples shaped as one sample's
  ``shape.inputs``, ``[B, *inputs]`` (images ``[B, C, H, W]`` for a model with
  ``image=True``, else ``[B, features]``); ``act`` is the study's activation, to call
  once per hidden layer, on that layer's pre-activation (each call is one traced layer);
- its ``nn.Linear`` / ``nn.Conv2d`` layers, in registration order, are the layers it
  declares (named by their qualified names: ``conv1``, ``body.0``); the last of them is the
  head when ``shape.outputs`` is not 0; a signal study asks for 0 outputs: then build no
  head and return the last hidden features (any ``[B, ...]``, flattened per sample);
- no buffers: batch norm's running statistics do not stack through ``torch.vmap`` (a
  module with one is refused at build, which fails its cells saying so); any other
  parameter (a LayerNorm's gain, a learnable scale) is stacked too and keeps the value
  the factory gives it, the same in every member; the cell's initializer draws each
  Linear / Conv2d weight (one member's, torch.nn's layout) and ``bias_init`` its bias.

The stack holds the members' parameters as its own, the member first (``kernels``:
``[G, out, in]`` / ``[G, out, in, kh, kw]``; ``biases``: ``[G, out]``, those of the layers
that have one), and computes all members as one ``torch.vmap`` over
``torch.func.functional_call`` of the module, so a stack is exactly G separate models.

**Its size** (:func:`measure`, the builder's ``measure``): one member built on the ``meta``
device and run on a ``[1, *inputs]`` meta batch, nothing allocated, sizes the model for the
memory check and the stack size with no ``size`` from the plugin.
"""

from __future__ import annotations

import inspect
import itertools
import typing
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from benchinit.engine import convnets
from benchinit.engine.models import Trace
from benchinit.plugins.descriptors import Bound
from benchinit.plugins.model_kind import Layer, ModelShape, ModelSize

DTYPES = {"float32": torch.float32, "float64": torch.float64}
LAYERS = (nn.Linear, nn.Conv2d)  # the layers a member declares; their weights the initializer's
Activation = Callable[[torch.Tensor], torch.Tensor]
Pairs = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def stacked(factory: Callable[..., nn.Module]) -> Callable[..., VmappedStack]:
    """A model plugin's ``fn`` from a member ``factory`` (see the module docstring): it
    takes the factory's keyword parameters and documentation as its own."""

    def build(shape: ModelShape, **params: Any) -> VmappedStack:
        return VmappedStack(shape, factory, **params)

    measured: dict[Any, ModelSize | None] = {}

    def sized(shape: ModelShape, **params: Any) -> ModelSize | None:
        """:func:`measure`, once per shape and parameters (the memory check asks per batch,
        the stack size per group: a big grid would build the same member many times)."""
        try:
            key = (shape, tuple(sorted(params.items())))
            hash(key)
        except TypeError:  # a parameter that is not hashable: measured every time
            return measure(factory, shape, **params)
        if key not in measured:
            measured[key] = measure(factory, shape, **params)
        return measured[key]

    # benchinit.engine.model_plugin.member_size asks it when the Model has no ``size``
    build.measure = sized  # type: ignore[attr-defined]
    build.__name__ = getattr(factory, "__name__", "stacked")
    build.__doc__ = inspect.getdoc(factory)
    build.__signature__ = inspect.signature(factory)  # type: ignore[attr-defined]
    try:
        own = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
        build.__annotations__ = typing.get_type_hints(own)
    except Exception:  # unresolvable annotations: the parameters take any value
        build.__annotations__ = {}
    return build


def measure(
    factory: Callable[..., nn.Module], shape: ModelShape, **params: Any
) -> ModelSize | None:
    """(parameters, hidden units, multiply-adds) of one member per sample, measured on the
    ``meta`` device (no memory): the member's parameters; the elements of one sample's
    activation calls, plus ``shape.outputs`` (as the built-ins count units); each Linear's
    in x out per output row and each Conv2d's output elements x in / groups x kh x kw. None
    when the member cannot be built or run there (an op without a meta kernel): the caller
    then sizes it as an MLP. Never raises."""
    units: list[int] = []
    macs: list[int] = []

    def recorded(z: torch.Tensor) -> torch.Tensor:
        units.append(z.numel() // max(z.shape[0], 1))
        return z

    def counted(module: nn.Module, _: Any, out: torch.Tensor) -> None:
        per_sample = out.numel() // max(out.shape[0], 1)
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(per_sample * module.in_channels // module.groups * kh * kw)
        elif isinstance(module, nn.Linear):
            macs.append(per_sample * module.in_features)

    try:
        with torch.device("meta"):
            base = factory(replace(shape, members=1), **params)
        for module in base.modules():
            if isinstance(module, LAYERS):
                module.register_forward_hook(counted)
        dtype = next(base.parameters(), torch.empty(0)).dtype  # the member's own, if it casts
        with torch.no_grad():
            base(torch.empty(1, *shape.inputs, device="meta", dtype=dtype), recorded)
        parameters = sum(p.numel() for p in base.parameters())
    except Exception:  # sizing is advice: whatever fails here, the MLP's arithmetic stands
        return None
    return parameters, sum(units) + shape.outputs, sum(macs)


def declared(base: nn.Module) -> list[tuple[str, nn.Module]]:
    """The member's Linear / Conv2d submodules, in registration order, by qualified name."""
    return [(name, m) for name, m in base.named_modules() if isinstance(m, LAYERS)]


class VmappedStack(nn.Module):
    """``shape.members`` copies of ``factory(shape, **params)``, computed as one vmap."""

    residual = None  # no residual blocks, no normalization the engine should know of
    norm = "none"

    def __init__(self, shape: ModelShape, factory: Callable[..., nn.Module], **params: Any) -> None:
        super().__init__()
        base = factory(replace(shape, members=1), **params)
        who = getattr(factory, "__name__", repr(factory))
        buffers = [name for name, _ in base.named_buffers()]
        if buffers:
            raise ValueError(
                f"model {who!r}: its module holds buffers ({', '.join(buffers)}); a stacked "
                "module may not (batch norm's running statistics do not stack through "
                "torch.vmap): use nn.LayerNorm or nn.GroupNorm, or no normalization"
            )
        layers = declared(base)
        if not layers:
            raise ValueError(f"model {who!r}: its module has no nn.Linear or nn.Conv2d layer")
        self.members, self.inputs = shape.members, tuple(shape.inputs)
        self.hidden = len(layers) - int(bool(shape.outputs))
        params_g, _ = stack_module_state([base] * shape.members)
        dtype = DTYPES[shape.dtype]
        own = {n: nn.Parameter(p.detach().to(dtype).clone()) for n, p in params_g.items()}
        weights = [f"{name}.weight" if name else "weight" for name, _ in layers]
        biases = [f"{name}.bias" if name else "bias" for name, _ in layers]
        self.kernels = nn.ParameterList(own[n] for n in weights)
        present = [n for n in biases if n in own]
        self.biases = nn.ParameterList(own[n] for n in present) if present else None
        self.bias_of = [present.index(n) if n in own else None for n in biases]
        taken = set(weights) | set(present)
        self.extras = nn.ParameterList(p for n, p in own.items() if n not in taken)
        self._order = [*weights, *present, *(n for n in own if n not in taken)]
        self._specs = [self._spec(i, name, m) for i, (name, m) in enumerate(layers)]
        self._base = [base.to("meta")]  # a list: not a submodule, its parameters not ours
        self._checked = False  # the layers' order against the act calls (_check_order)

    def _spec(self, index: int, name: str, module: nn.Module) -> Layer:
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
        kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        return Layer(name or "layer", kind, fan_in, fan_out, hidden=index < self.hidden)

    @property
    def layers(self) -> int:
        return len(self.kernels)

    @property
    def weights(self) -> list[torch.Tensor]:
        """Per layer, the ``[G, out, in]`` / ``[G, out, in, kh, kw]`` weights."""
        return list(self.kernels)

    def layer_specs(self) -> list[Layer]:
        """The module's Linear / Conv2d layers, with torch.nn.init's fans; the last is the
        head (not hidden) when the model has outputs."""
        return list(self._specs)

    def stacked_parameters(self) -> dict[str, torch.Tensor]:
        """functional_call's names -> the ``[G, ...]`` parameters."""
        tensors = itertools.chain(self.kernels, self.biases or [], self.extras)
        return dict(zip(self._order, tensors, strict=True))

    def run(self, params: dict[str, torch.Tensor], x: torch.Tensor, act: Activation) -> Any:
        """One member: flat rows ``[B, F]`` -> (outputs ``[B, out]``, its activation calls'
        (input, output) pairs, each flattened per sample to ``[B, units]``)."""
        calls: list[tuple[torch.Tensor, torch.Tensor]] = []

        def traced(z: torch.Tensor) -> torch.Tensor:
            h = act(z)
            calls.append((z.flatten(1), h.flatten(1)))
            return h

        base = self._base[0]
        base.train(self.training)  # not a submodule: train() / eval() reach it here (dropout)
        out = functional_call(base, params, (x.reshape(x.shape[0], *self.inputs), traced))
        return out.flatten(1), tuple(calls)

    def forward(
        self,
        x: torch.Tensor,
        activation: Activation,
        trace: Trace | None = None,
        *,
        update: bool = True,
    ) -> torch.Tensor:
        """Outputs ``[G, B, out]`` of shared ``[B, F]`` or per-member ``[G, B, F]`` rows;
        each activation call's (pre-activation, output) pair, ``[G, B, units]``, goes to
        ``trace``. ``update`` is accepted for the contract (no running statistics)."""
        per_member = 0 if x.dim() == 3 else None
        members = torch.vmap(
            lambda params, rows: self.run(params, rows, activation),
            in_dims=(0, per_member),
            randomness="different",
        )
        out, pairs = members(*self.autocast(self.stacked_parameters(), x))
        if not self._checked:
            self._check_order(pairs)
        if trace is not None:
            trace.extend((pre, post) for pre, post in pairs)
        return out

    def _check_order(self, pairs: Pairs) -> None:
        """Each act call's units fit the layer declared in its place (a Linear's outputs, a
        multiple of a Conv2d's channels): a module that registers its layers in another
        order than they run (its head first) would have its fans, heads and channels taken
        from the wrong layers. Once per stack."""
        for (pre, _), spec, kernel in zip(pairs, self._specs, self.kernels, strict=False):
            units, out = pre.shape[-1], kernel.shape[1]
            if units % out or (spec.kind == "linear" and units != out):
                raise ValueError(
                    f"layer {spec.name!r} has {out} outputs, but the act call in its place has "
                    f"{units} units a sample: register the module's nn.Linear / nn.Conv2d "
                    "layers in the order they run, the head last"
                )
        self._checked = True

    def autocast(
        self, params: dict[str, torch.Tensor], x: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Under autocast (``bf16``), the Linear / Conv2d weights, biases and the inputs
        cast to its dtype, as autocast casts them for those layers: under ``torch.vmap``
        it does not reach a convolution (torch 2.13), which would then meet bfloat16 inputs
        with float32 weights. Unchanged otherwise."""
        kind = x.device.type
        if not torch.is_autocast_enabled(kind):
            return params, x
        low = torch.get_autocast_dtype(kind)
        layers = self._order[: len(self.kernels) + len(self.biases or [])]
        cast = {n: params[n].to(low) for n in layers}
        return {**params, **cast}, x.to(low) if x.is_floating_point() else x

    @torch.no_grad()
    def initialize_member(
        self,
        g: int,
        initializer: Bound,
        bias_init: Bound,
        activation: Bound,
        generator: torch.Generator,
    ) -> None:
        """Fill member g's layers in order from one generator: each weight (torch.nn's
        layout), then its bias. Other parameters keep the factory's values."""
        for layer, weight in enumerate(self.kernels):
            initializer(weight[g], generator, activation)
            index = self.bias_of[layer]
            if self.biases is not None and index is not None:
                bias_init(self.biases[index][g], generator, activation)

    def member(self, g: int, activation: Activation) -> MemberView:
        return MemberView(self, g, activation)

    def keep(self, members: Sequence[int]) -> None:
        """Drop every member not listed (members whose initializer failed)."""
        index = torch.as_tensor(list(members), dtype=torch.long)
        for p in self.parameters():
            p.data = p.data[index.to(p.device)]
        self.members = len(members)


class MemberView(convnets.MemberView):
    """One member of the stack for a calibrating initializer: ``weights[l]`` and
    ``biases`` are views into the stack (change them in place), ``layers`` the declared
    :class:`Layer` s, ``preactivation(l, x)`` layer l's ``[B, units]`` pre-activation (the
    argument of its activation call; the head's output for the head) on rows ``x``."""

    _model: VmappedStack

    @property
    def layers(self) -> list[Layer]:
        return self._model.layer_specs()

    @torch.no_grad()
    def preactivation(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        model = self._model
        if not 0 <= layer < model.layers:
            raise IndexError(f"layer {layer} out of range")
        own = {n: p[self._g] for n, p in model.stacked_parameters().items()}
        rows = x.to(device=model.kernels[0].device, dtype=model.kernels[0].dtype)
        out, calls = model.run(own, rows, self._activation)
        return calls[layer][0] if layer < model.hidden else out
