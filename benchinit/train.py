"""``kind = "train"``: many MLPs trained as one, evaluated every epoch.

The model is input -> depth x (Linear(width) -> activation) -> Linear(outputs), where the
loss decides the outputs (classes, targets, or a mean and a variance per target). A batch
of cells that differ only in initializer and seed trains as one stacked model:

- each member draws its own minibatches (its own permutation per epoch, seeded by its
  seed), gathered as ``[G, B]`` indices from data that lives on the device once;
- the members' mean losses are **summed**, so each member's gradient is exactly its own
  (a mean over members would scale every gradient by 1/G);
- one elementwise optimizer steps all members: exact, since each entry's update depends
  only on its own gradient and state;
- metrics accumulate on the device; the host reads them once per epoch (no sync per step).

Divergence is a result: a member whose training loss (or test loss) becomes non-finite is
marked ``diverged`` with that epoch; from then on its loss is masked out of the sum, so it
contributes no gradient, and at every epoch end its weights are restored to where they were
at the start of the epoch it diverged in, so its updates stop. The rest of the stack never
sees its values: members share no arithmetic. Its curves end before that epoch.

``train_loss`` at epoch 0 is a pass over the training split (its first 10,000 samples when it
is larger); at later epochs it is the
mean of that epoch's minibatch losses (the number a training loop prints). ``test_loss``,
``test_accuracy`` (classification) and ``test_mse`` (regression: the squared error of the
point prediction, comparable across losses) are full passes over the test split after each
epoch. Layer statistics
(benchinit.probes) are taken at ``init`` and ``final`` on the first ``probe_samples``
training samples; there ``grad_norm`` is the gradient of the training loss on that batch.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from benchinit import jacobian
from benchinit.atinit import record_spectrum
from benchinit.cells import Cell
from benchinit.descriptors import Activation, Bound, Data, Loss, Optimizer
from benchinit.models import StackedMLP
from benchinit.probes import layer_statistics, theory, weight_grad_norms
from benchinit.records import Recorder
from benchinit.registry import Registry
from benchinit.schedules import make_scheduler
from benchinit.stack import (
    DTYPES,
    bind,
    build_stack,
    computing,
    derive_seed,
    device_name,
    fingerprints,
    load_data,
)

EVAL_CHUNK = 4096  # samples per evaluation forward pass (bounds memory for big stacks)
# The epoch-0 training loss is measured on at most this many training samples (the first
# ones): on 60,000 samples a full pass would add a third of an epoch's work to every run.
EPOCH0_TRAIN_SAMPLES = 10_000
# Probe inputs of the Jacobian spectrum at init and after training (signal studies use
# benchinit.jacobian.PROBES): each costs a Jacobian of the inputs' width per member.
JACOBIAN_PROBES = 4


class Task:
    """The data on the device, with targets in the form the loss expects."""

    def __init__(
        self, data: Data, loss: Bound[Loss], dtype: torch.dtype, device: torch.device
    ) -> None:
        self.classification = data.task == "classification"
        self.classes = data.outputs if self.classification else 0
        self.x_train = data.x_train.to(device=device, dtype=dtype)
        self.x_test = data.x_test.to(device=device, dtype=dtype)
        self.labels_train = data.y_train.to(device) if self.classification else None
        self.labels_test = data.y_test.to(device) if self.classification else None
        self.y_train = self._targets(data.y_train, loss, dtype, device)
        self.y_test = self._targets(data.y_test, loss, dtype, device)
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


def _member_losses(loss: Bound[Loss], pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample loss ``[G, B]``, checked once per call site (plugins can get it wrong)."""
    values = loss(pred, target)
    if values.shape != pred.shape[:2]:
        raise ValueError(
            f"loss '{loss.name}' returned shape {tuple(values.shape)}; expected "
            f"one value per sample {tuple(pred.shape[:2])}"
        )
    return values


def _wide(values: torch.Tensor) -> torch.Tensor:
    """Outputs in float32 at least: losses and metrics are reduced there (a bf16 forward)."""
    return values.float() if values.dtype in (torch.bfloat16, torch.float16) else values


@torch.no_grad()
def evaluate(
    model: StackedMLP,
    activation: Callable[[torch.Tensor], torch.Tensor],
    loss: Bound[Loss],
    task: Task,
    split: str,
    limit: int | None = None,
    numerics: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> dict[str, torch.Tensor]:
    """Metrics ``{name: [G]}`` over a split (its first ``limit`` samples) in eval mode:
    ``loss``; ``accuracy`` (classification) or ``mse`` of the point prediction
    (regression). ``numerics``: the forward's precision (benchinit.stack.computing)."""
    x, y = getattr(task, f"x_{split}")[:limit], getattr(task, f"y_{split}")[:limit]
    labels = getattr(task, f"labels_{split}")
    totals = {
        name: torch.zeros(model.members, dtype=torch.float64, device=x.device)
        for name in ("loss", "accuracy" if task.classification else "mse")
    }
    training = model.training
    model.eval()
    try:
        for start in range(0, len(x), EVAL_CHUNK):
            chunk = slice(start, start + EVAL_CHUNK)
            with numerics():
                pred = _wide(model(x[chunk], activation))
            _accumulate(
                totals,
                pred,
                y[chunk],
                labels[:limit][chunk] if labels is not None else None,
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
    totals["loss"] += _member_losses(loss, pred, target).double().sum(1)
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
    numerics: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """Layer statistics and histograms on a probe batch; grad_norm from the training loss.
    Batch norm's running statistics are left as they are; statistics are float32 or better."""
    for p in model.parameters():
        p.grad = None
    trace: list[tuple[torch.Tensor, torch.Tensor]] = []
    with numerics():
        pred = _wide(model(x, activation, trace, update=False))
    target = y.expand(model.members, *y.shape)
    _member_losses(loss, pred, target).mean(1).sum().backward()
    stats, hists = [], []
    for (pre, act), grad in zip(trace, weight_grad_norms(list(model.kernels)), strict=False):
        layer_stats, counts = layer_statistics(_wide(pre.detach()), _wide(act.detach()), activation)
        layer_stats["grad_norm"] = grad
        stats.append(layer_stats)
        hists.append(counts)
    for p in model.parameters():
        p.grad = None
    return stats, hists


def _permutations(generators: list[torch.Generator], n: int, device: torch.device) -> torch.Tensor:
    """``[G, n]``: each member's own shuffling of the training set for one epoch."""
    return torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)


@dataclass
class Trained:
    """A trained stack: ``members`` are the cells still in it (a member whose initializer
    failed is dropped and listed in ``failures``)."""

    model: StackedMLP | None
    members: list[Cell]
    failures: dict[str, str]


def run_train(
    cells: list[Cell], registry: Registry, device: torch.device, recorder: Recorder
) -> None:
    """Train the cells as one stacked model, recording into ``recorder``."""
    trained = train_stack(cells, registry, device, recorder)
    for cell in cells:
        if cell.id in trained.failures:
            recorder.run(cell, "failed", error=trained.failures[cell.id])


def train_stack(
    cells: list[Cell],
    registry: Registry,
    device: torch.device,
    recorder: Recorder | None = None,
) -> Trained:
    """Build, initialize and train one stacked model for ``cells`` (one group)."""
    recorder = recorder or Recorder(device_name(device))
    config = cells[0].config
    data = load_data(registry, config["data"])
    activation = bind(registry, "activation", config["activation"])
    loss = bind(registry, "loss", config["loss"])
    optimizer_spec = bind(registry, "optimizer", config["optimizer"])
    task = Task(data, loss, DTYPES[config["model"]["dtype"]], device)
    depth, width = config["model"]["depth"], config["model"]["width"]
    probe_n = min(config["train"]["probe_samples"], len(task.x_train))
    model, kept, failures = build_stack(
        cells,
        registry,
        [data.features] + [width] * depth + [task.outputs],
        head=True,
        activation=activation,
        device=device,
        calibration_x=data.x_train[:probe_n],
    )
    if kept:
        numerics = functools.partial(computing, config["model"], device)
        run = _Run(model, kept, task, data, activation, loss, config["train"], recorder, numerics)
        run.train(optimizer_spec, probe_n)
    return Trained(model if kept else None, kept, failures)


class _Run:
    """One stack's training: what stays fixed while it trains, and what it records."""

    def __init__(
        self,
        model: StackedMLP,
        cells: list[Cell],
        task: Task,
        data: Data,
        activation: Bound[Activation],
        loss: Bound[Loss],
        settings: Mapping[str, Any],
        recorder: Recorder,
        numerics: Callable[[], AbstractContextManager[Any]],
    ) -> None:
        self.model, self.cells, self.task, self.data = model, cells, task, data
        self.activation, self.loss, self.settings = activation, loss, settings
        self.recorder, self.numerics = recorder, numerics
        self.hashes = fingerprints(model)  # before any step
        self.hist_range = activation.descriptor.range_of(activation.params)
        self.curves: dict[tuple[int, str, str], torch.Tensor] = {}

    def probe_layers(self, phase: str, probe_n: int) -> None:
        """Record every hidden layer's statistics and the Jacobian spectrum on the first
        ``probe_n`` training samples: at init in training mode (batch norm normalizes with
        the probe batch's statistics), after training in eval mode (its running ones)."""
        model, task, activation = self.model, self.task, self.activation
        x, y = task.x_train[:probe_n], task.y_train[:probe_n]
        model.train(phase == "init")
        stats, hists = probe(model, activation, self.loss, x, y, self.numerics)
        extra = {}
        if phase == "init" and model.residual is None and model.norm == "none":
            extra["theory_std"] = theory(activation, x, model.weights, _biases(model), model.hidden)
        self.recorder.layers(self.cells, phase, stats, hists, self.hist_range, extra)
        spectrum = jacobian.probe(model, x, activation, probes=JACOBIAN_PROBES)
        record_spectrum(self.recorder, self.cells, phase, spectrum)
        model.train()

    def evaluate(self, split: str, limit: int | None = None) -> dict[str, torch.Tensor]:
        return evaluate(
            self.model, self.activation, self.loss, self.task, split, limit, self.numerics
        )

    def evaluate_epoch(self, epoch: int, train_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Test metrics after ``epoch``; stores them and ``train_loss`` as curves."""
        tested = self.evaluate("test")
        self.curves[(epoch, "train", "loss")] = train_loss
        self.curves.update({(epoch, "test", name): values for name, values in tested.items()})
        if self.track_params:
            _record_params(self.curves, self.model, epoch)
        return tested

    @property
    def track_params(self) -> bool:
        """A linear model with one input and one output: record w and b per epoch."""
        return self.model.layers == 1 and self.data.features == 1 and self.task.outputs == 1

    def train(self, optimizer_spec: Bound[Optimizer], probe_n: int) -> None:
        """Train in place (see the module docstring); record layers, curves and runs."""
        model, task, settings = self.model, self.task, self.settings
        G, epochs, batch_size = model.members, settings["epochs"], settings["batch_size"]
        device = task.x_train.device
        self.probe_layers("init", probe_n)
        train0 = self.evaluate("train", EPOCH0_TRAIN_SAMPLES)
        tested = self.evaluate_epoch(0, train0["loss"])
        if self.track_params:
            for name in ("w", "b"):
                if name in self.data.truth:
                    value = float(self.data.truth[name])
                    self.curves[(0, "truth", name)] = torch.full((G,), value)

        # alive[g]: member g has not diverged. diverged_at[g]: the epoch it did (-1: never).
        alive = torch.isfinite(train0["loss"]) & torch.isfinite(tested["loss"])
        diverged_at = torch.where(alive, -1, 0).to(device)
        params = list(model.parameters())
        optimizer = optimizer_spec(params)
        scheduler = make_scheduler(optimizer, optimizer_spec.params, epochs)
        generators = [
            torch.Generator().manual_seed(derive_seed(c.seed, "shuffle")) for c in self.cells
        ]
        frozen = [p.detach().clone() for p in params]  # where a member stays if it dies
        n = len(task.x_train)
        for epoch in range(1, epochs + 1):
            _snapshot(frozen, params, alive)
            order = _permutations(generators, n, device)
            loss_sum = torch.zeros(G, dtype=torch.float64, device=device)
            for begin in range(0, n, batch_size):
                index = order[:, begin : begin + batch_size]
                with self.numerics():
                    pred = _wide(model(task.x_train[index], self.activation))
                per_member = _member_losses(self.loss, pred, task.y_train[index]).mean(1)
                finite = torch.isfinite(per_member)
                diverged_at = torch.where(alive & ~finite, epoch, diverged_at)
                alive = alive & finite
                masked = torch.where(alive, per_member, torch.zeros_like(per_member))
                optimizer.zero_grad(set_to_none=True)
                masked.sum().backward()  # a sum: each member's gradient is its own mean loss's
                optimizer.step()
                loss_sum += masked.detach().double() * index.shape[1]
            scheduler.step()
            tested = self.evaluate_epoch(epoch, loss_sum / n)
            finite = torch.isfinite(tested["loss"])
            diverged_at = torch.where(alive & ~finite, epoch, diverged_at)
            alive = alive & finite
            _restore(params, frozen, alive)

        self.probe_layers("final", probe_n)
        self.record_results(diverged_at.cpu().tolist())

    def record_results(self, diverged_at: list[int]) -> None:
        """Curves (each ends before its member diverged) and one run row per member."""
        values = {key: v.double().cpu().tolist() for key, v in self.curves.items()}
        cells, epochs = self.cells, self.settings["epochs"]
        for (epoch, split, metric), column in values.items():
            keep = [g for g, d in enumerate(diverged_at) if d < 0 or epoch < d]
            self.recorder.curve(
                [cells[g] for g in keep], epoch, split, metric, [column[g] for g in keep]
            )
        target = self.settings["target_accuracy"]
        for g, cell in enumerate(cells):
            if diverged_at[g] >= 0:
                self.recorder.run(
                    cell,
                    "diverged",
                    diverged_epoch=diverged_at[g],
                    init_hash=self.hashes[g],
                    error=f"loss became non-finite in epoch {diverged_at[g]}",
                )
                continue
            final = {
                name: column[g]
                for (e, split, name), column in values.items()
                if e == epochs and split == "test"
            }
            reached = math.nan
            if target is not None and (0, "test", "accuracy") in values:
                hits = [
                    e for e in range(epochs + 1) if values[(e, "test", "accuracy")][g] >= target
                ]
                reached = float(hits[0]) if hits else math.nan
            self.recorder.run(
                cell,
                "ok",
                init_hash=self.hashes[g],
                train_loss=values[(epochs, "train", "loss")][g],
                test_loss=final["loss"],
                test_accuracy=final.get("accuracy", math.nan),
                test_mse=final.get("mse", math.nan),
                epochs_to_target=reached,
            )


def _biases(model: StackedMLP) -> list[torch.Tensor] | None:
    return None if model.biases is None else list(model.biases)


def _snapshot(
    frozen: Sequence[torch.Tensor], params: Sequence[torch.Tensor], alive: torch.Tensor
) -> None:
    """At an epoch start, remember the weights of every member still alive."""
    with torch.no_grad():
        for f, p in zip(frozen, params, strict=True):
            f.copy_(torch.where(alive.view(-1, *[1] * (p.dim() - 1)), p, f))


def _restore(
    params: Sequence[torch.Tensor], frozen: Sequence[torch.Tensor], alive: torch.Tensor
) -> None:
    """At an epoch end, put diverged members back where they stopped."""
    with torch.no_grad():
        for p, f in zip(params, frozen, strict=True):
            p.copy_(torch.where(alive.view(-1, *[1] * (p.dim() - 1)), p, f))


def _record_params(curves: dict, model: StackedMLP, epoch: int) -> None:
    curves[(epoch, "params", "w")] = model.weights[0].detach()[:, 0, 0].clone()
    if model.biases is not None:
        curves[(epoch, "params", "b")] = model.biases[0].detach()[:, 0].clone()
