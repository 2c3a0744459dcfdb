"""A training stack's data on the device, its per-member losses, evaluations and probes.

- :class:`Task`: the splits on the device once (train, validation when there is one,
  test), with targets in the form the loss expects;
- :func:`member_losses`: a loss plugin's per-sample values ``[G, B]``, shape-checked;
- :func:`evaluate`: metrics over a split in eval mode, accumulated on the device;
- :func:`probe`: per-layer statistics and histograms on a probe batch.

Losses and metrics are reduced in float32 or better whatever the forward's precision
(``numerics``, benchinit.engine.stack.computing).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from benchinit.engine.models import StackedMLP
from benchinit.engine.probes import (
    checked_trace,
    layer_channels,
    layer_statistics,
    weight_grad_norms,
)
from benchinit.plugins.descriptors import Activation, Bound, Data, Loss

EVAL_CHUNK = 4096  # samples per evaluation forward pass at most (bounds memory for big stacks)
EVAL_BYTES = 256 * 2**20  # activations an evaluation pass may hold: two layers of every member
Numerics = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Split:
    """One split on the device: inputs, targets as the loss expects them, class labels."""

    x: torch.Tensor
    y: torch.Tensor
    labels: torch.Tensor | None  # int64 class indices (classification), else None

    def head(self, limit: int | None) -> Split:
        """The first ``limit`` samples (all when None)."""
        if limit is None:
            return self
        labels = None if self.labels is None else self.labels[:limit]
        return Split(self.x[:limit], self.y[:limit], labels)


class Task:
    """The data on the device (``splits``: train, val when there is one, test), with
    targets in the form the loss expects."""

    def __init__(
        self,
        data: Data,
        loss: Bound[Loss],
        dtype: torch.dtype,
        device: torch.device,
        input_dtype: torch.dtype | None = None,
    ) -> None:
        """``input_dtype``: the inputs' dtype on the device when it differs from the
        parameters' (bfloat16 under ``bf16``: every forward casts them anyway, so they are
        cast once, and each minibatch gathers half the bytes); targets keep ``dtype``."""
        self.classification = data.task == "classification"
        self.classes = data.outputs if self.classification else 0
        raw = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
        if data.x_val is not None and data.y_val is not None:
            raw["val"] = (data.x_val, data.y_val)
        self.splits = {
            split: Split(
                x.to(device=device, dtype=input_dtype or dtype),
                self._targets(y, loss, dtype, device),
                y.to(device) if self.classification else None,
            )
            for split, (x, y) in raw.items()
        }
        self.train = self.splits["train"]
        # where each epoch is measured: the validation split, or the test split without one
        self.heldout = "val" if "val" in raw else "test"
        per_output = 2 if loss.descriptor.prediction == "mean_var" else 1
        self.outputs = data.outputs * per_output

    def _targets(
        self, y: torch.Tensor, loss: Bound[Loss], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        if not self.classification:
            return y.to(device=device, dtype=dtype)
        if loss.descriptor.class_targets == "one_hot":
            return F.one_hot(y, self.classes).to(device=device, dtype=dtype)
        return y.to(device)


def member_losses(loss: Bound[Loss], pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample loss ``[G, B]``, checked once per call site (plugins can get it wrong)."""
    values = loss(pred, target)
    if values.shape != pred.shape[:2]:
        raise ValueError(
            f"loss '{loss.name}' returned shape {tuple(values.shape)}; expected "
            f"one value per sample {tuple(pred.shape[:2])}"
        )
    return values


def wide(values: torch.Tensor) -> torch.Tensor:
    """Outputs in float32 at least: losses and metrics are reduced there (a bf16 forward)."""
    return values.float() if values.dtype in (torch.bfloat16, torch.float16) else values


def eval_chunk(members: int, units: int, scalar: int) -> int:
    """Samples per evaluation pass: ``EVAL_CHUNK``, fewer where two layers' activations
    (``units`` per sample and member, the widest layer's, ``scalar`` bytes each) of all
    ``members`` would exceed ``EVAL_BYTES``. An MLP of width 256 in a stack of 12 keeps 4096;
    a 12-member CNN's first 6-channel 28x28 map (4,704 units a sample) gets 594."""
    per_sample = 2 * max(members, 1) * max(units, 1) * scalar
    return max(1, min(EVAL_CHUNK, EVAL_BYTES // per_sample))


_WIDEST: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _chunk(model: Any, activation: Callable[..., Any], x: torch.Tensor, numerics: Numerics) -> int:
    """:func:`eval_chunk` for ``model``: its widest layer measured once, by a traced forward
    of one sample (any model plugin takes a trace: benchinit.plugins.model_kind)."""
    if model not in _WIDEST:
        trace: list[tuple[torch.Tensor, torch.Tensor]] = []
        with numerics():
            out = model(x[:1], activation, trace)
        _WIDEST[model] = max([out.shape[-1], *(act.shape[-1] for _, act in trace)])
    return eval_chunk(model.members, _WIDEST[model], x.element_size())


@torch.no_grad()
def evaluate(
    model: StackedMLP,
    activation: Callable[[torch.Tensor], torch.Tensor],
    loss: Bound[Loss],
    task: Task,
    split: str,
    limit: int | None = None,
    numerics: Numerics = contextlib.nullcontext,
) -> dict[str, torch.Tensor]:
    """Metrics ``{name: [G]}`` over a split (its first ``limit`` samples) in eval mode:
    ``loss``; ``accuracy`` (classification) or ``mse`` of the point prediction
    (regression). ``numerics``: the forward's precision (benchinit.engine.stack.computing)."""
    data = task.splits[split].head(limit)
    x, y, labels = data.x, data.y, data.labels
    totals = {
        name: torch.zeros(model.members, dtype=torch.float64, device=x.device)
        for name in ("loss", "accuracy" if task.classification else "mse")
    }
    training = model.training
    model.eval()
    try:
        step = _chunk(model, activation, x, numerics) if len(x) else EVAL_CHUNK
        for start in range(0, len(x), step):
            chunk = slice(start, start + step)
            with numerics():
                pred = wide(model(x[chunk], activation))
            _accumulate(
                totals,
                pred,
                y[chunk],
                labels[chunk] if labels is not None else None,
                loss,
                task,
            )
    finally:
        model.train(training)
    return {name: total / len(x) for name, total in totals.items()}


def _accumulate(
    totals: dict[str, torch.Tensor],
    pred: torch.Tensor,
    y: torch.Tensor,
    labels: torch.Tensor | None,
    loss: Bound[Loss],
    task: Task,
) -> None:
    """Add one chunk's summed losses and accuracy (or squared errors) per member."""
    target = y.expand(pred.shape[0], *y.shape)
    totals["loss"] += member_losses(loss, pred, target).double().sum(1)
    if labels is not None:
        totals["accuracy"] += (pred[..., : task.classes].argmax(-1) == labels).double().sum(1)
    else:
        point = pred[..., : target.shape[-1]]
        totals["mse"] += (point - target).double().square().mean(-1).sum(1)


def probe(
    model: StackedMLP,
    activation: Bound[Activation],
    loss: Bound[Loss],
    x: torch.Tensor,
    y: torch.Tensor,
    numerics: Numerics = contextlib.nullcontext,
) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """Layer statistics and histograms on a probe batch; grad_norm from the training loss.
    Batch norm's running statistics are left as they are; statistics are float32 or better."""
    for p in model.parameters():
        p.grad = None
    trace: list[tuple[torch.Tensor, torch.Tensor]] = []
    with numerics():
        pred = wide(model(x, activation, trace, update=False))
    target = y.expand(model.members, *y.shape)
    member_losses(loss, pred, target).mean(1).sum().backward()
    stats, hists = [], []
    checked_trace(model, trace)
    grads, channels = weight_grad_norms(list(model.kernels)), layer_channels(model, len(trace))
    for (pre, act), grad, units in zip(trace, grads, channels, strict=False):
        layer_stats, counts = layer_statistics(
            wide(pre.detach()), wide(act.detach()), activation, units
        )
        layer_stats["grad_norm"] = grad
        stats.append(layer_stats)
        hists.append(counts)
    for p in model.parameters():
        p.grad = None
    return stats, hists
