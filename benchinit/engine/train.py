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

Divergence is a result: a member whose training loss (or held-out loss) becomes non-finite
is marked ``diverged`` with that epoch; from then on its loss is masked out of the sum, so it
contributes no gradient, and at every epoch end its weights are restored to where they were
at the start of the epoch it diverged in, so its updates stop. The rest of the stack never
sees its values: members share no arithmetic. Its curves end before that epoch.

Each epoch is measured on the held-out split: the validation split (benchinit.study.validation),
or the test split when there is none; the test split is otherwise read once, after the last
epoch, for the final numbers. ``train_loss`` is the mean of an epoch's minibatch losses
(the number a training loop prints; with batch norm a last batch of one sample is dropped,
see :func:`steps_end`); at epoch 0, before training, the training and held-out
metrics are passes over the first ``EPOCH0_SAMPLES`` samples of their splits (the curve's
first point needs no more). ``*_loss``, ``*_accuracy`` (classification) and ``*_mse``
(regression: the squared error of the point prediction, comparable across losses) are full
passes over their split. Layer statistics
(benchinit.engine.probes) are taken at ``init`` and ``final`` on the first ``probe_samples``
training samples; there ``grad_norm`` is the gradient of the training loss on that batch.
The input-output Jacobian's moments (benchinit.engine.jacobian) are taken at both phases at
``JACOBIAN_PROBES`` probe inputs, its singular-value histogram at ``init`` only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchinit.engine import jacobian
from benchinit.engine.atinit import record_spectrum
from benchinit.engine.coordinates import SPLIT as COORD_SPLIT
from benchinit.engine.coordinates import CoordinateCheck
from benchinit.engine.evaluation import Numerics, Task, evaluate, member_losses, probe, wide
from benchinit.engine.models import StackedMLP
from benchinit.engine.parametrize import model_scales, param_groups, scale_groups
from benchinit.engine.probes import theory
from benchinit.engine.recorder import Recorder, declared
from benchinit.engine.stack import (
    DTYPES,
    bind,
    build_stack,
    computing,
    derive_seed,
    device_name,
    fingerprints,
    init_scales,
    load_data,
)
from benchinit.plugins.descriptors import Activation, Bound, Data, Loss, Optimizer
from benchinit.plugins.registry import Registry
from benchinit.study.cells import Cell
from benchinit.study.parametrization import needs_rule
from benchinit.study.schedules import lr_factor
from benchinit.study.settings import precision_of

# Epoch 0 (before training) is measured on at most this many samples of the training and
# held-out splits (the first ones): on 60,000 samples full passes would add a third of an
# epoch's work to every run, and the curve's first point needs no more.
EPOCH0_SAMPLES = 1024
# What every ok run records from the last epoch: validation (when there is a validation
# split) and test metrics; NaN where the task has none.
FINAL_METRICS = ("val_loss", "val_accuracy", "val_mse", "test_loss", "test_accuracy", "test_mse")
# Probe inputs of the Jacobian spectrum at init and after training (signal studies use
# benchinit.engine.jacobian.PROBES): each costs a Jacobian of the inputs' width per member.
JACOBIAN_PROBES = 2


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    params: Mapping[str, Any],
    epochs: int,
    base_lr: float | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The optimizer's schedule (benchinit.study.schedules.lr_factor), stepped once per epoch;
    ``base_lr``: the rate before per-layer factors (default: the first group's)."""
    if base_lr is None:
        base_lr = float(optimizer.param_groups[0]["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(params, base_lr, epochs))


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
    bf16 = precision_of(config["model"]) == "bf16"
    task = Task(
        data, loss, DTYPES[config["model"]["dtype"]], device, torch.bfloat16 if bf16 else None
    )
    depth, width = config["model"]["depth"], config["model"]["width"]
    if config["model"].get("norm") == "batch" and len(task.train.x) < 2:
        raise ValueError(  # its statistics need two samples, in every step and probe
            f"batch norm needs 2 or more training samples to normalize over; dataset "
            f"'{config['data']['name']}' has {len(task.train.x)} in its training split"
        )
    probe_n = min(config["train"]["probe_samples"], len(task.train.x))
    model, kept, failures = build_stack(
        cells,
        registry,
        [data.features] + [width] * depth + [task.outputs],
        head=True,
        activation=activation,
        device=device,
        calibration_x=data.x_train[:probe_n],
        shape=data.shape,
    )
    recorder.layer_names = declared(model)
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
        numerics: Numerics,
    ) -> None:
        self.model, self.cells, self.task, self.data = model, cells, task, data
        self.activation, self.loss, self.settings = activation, loss, settings
        self.recorder, self.numerics = recorder, numerics
        self.hashes = fingerprints(model)  # before any step
        self.scales: dict[str, Any] = init_scales(model) if model.hidden else {}
        self.hist_range = activation.descriptor.range_of(activation.params)
        self.curves: dict[tuple[int, str, str], torch.Tensor] = {}
        self.step = 0  # optimizer steps so far
        self.coord: CoordinateCheck | None = None  # the coordinate check, if asked for

    def probe_layers(self, phase: str, probe_n: int) -> None:
        """Record every hidden layer's statistics and the Jacobian spectrum on the first
        ``probe_n`` training samples: at init in training mode (batch norm normalizes with
        the probe batch's statistics), after training in eval mode (its running ones)."""
        model, task, activation = self.model, self.task, self.activation
        x, y = task.train.x[:probe_n], task.train.y[:probe_n]
        model.train(phase == "init")
        stats, hists = probe(model, activation, self.loss, x, y, self.numerics)
        extra = {}
        mlp = isinstance(model, StackedMLP)  # theory and spectra are the MLP's (else skipped)
        if mlp and phase == "init" and model.residual is None and model.norm == "none":
            extra["theory_std"] = theory(activation, x, model.weights, _biases(model), model.hidden)
        self.recorder.layers(self.cells, phase, stats, hists, self.hist_range, extra)
        if mlp:
            spectrum = jacobian.probe(  # the spectrum's histogram at init; moments after
                model, x, activation, probes=JACOBIAN_PROBES, singular_values=phase == "init"
            )
            record_spectrum(self.recorder, self.cells, phase, spectrum)
        model.train()

    def evaluate(self, split: str, limit: int | None = None) -> dict[str, torch.Tensor]:
        return evaluate(
            self.model, self.activation, self.loss, self.task, split, limit, self.numerics
        )

    def measure_epoch(self, epoch: int, train_loss: torch.Tensor) -> torch.Tensor:
        """Held-out metrics after ``epoch`` (at epoch 0 on a subset), stored as curves with
        ``train_loss``; returns the held-out loss (non-finite: the member diverged)."""
        held = self.task.heldout
        heldout = self.evaluate(held, EPOCH0_SAMPLES if epoch == 0 else None)
        self.curves[(epoch, "train", "loss")] = train_loss
        self.curves.update({(epoch, held, name): values for name, values in heldout.items()})
        if self.track_params:
            _record_params(self.curves, self.model, epoch)
        return heldout["loss"]

    def measure_test(self, epochs: int) -> torch.Tensor:
        """The final test metrics (the only pass over the test split when there is a
        validation split); returns the test loss."""
        if self.task.heldout == "test" and epochs > 0:
            return self.curves[(epochs, "test", "loss")]  # measured after the last epoch
        tested = self.evaluate("test")
        self.curves.update({(epochs, "test", name): values for name, values in tested.items()})
        return tested["loss"]

    @property
    def track_params(self) -> bool:
        """A linear model with one input and one output: record w and b per epoch."""
        return self.model.layers == 1 and self.data.features == 1 and self.task.outputs == 1

    def train(self, optimizer_spec: Bound[Optimizer], probe_n: int) -> None:
        """Train in place (see the module docstring); record layers, curves and runs."""
        model, task, settings = self.model, self.task, self.settings
        epochs, device = settings["epochs"], task.train.x.device
        self.probe_layers("init", probe_n)
        if settings.get("coord_steps", 0) > 0:
            x = task.train.x[:probe_n]
            self.coord = CoordinateCheck(
                model, self.activation, x, self.numerics, settings["coord_steps"]
            )
            self.coord.record(0, self.curves)
        train0 = self.evaluate("train", EPOCH0_SAMPLES)["loss"]
        held0 = self.measure_epoch(0, train0)
        if self.track_params:
            for name in ("w", "b"):
                if name in self.data.truth:
                    value = float(self.data.truth[name])
                    self.curves[(0, "truth", name)] = torch.full((model.members,), value)
        # alive[g]: member g has not diverged. diverged_at[g]: the epoch it did (-1: never).
        alive = torch.isfinite(train0) & torch.isfinite(held0)
        diverged_at = torch.where(alive, -1, 0).to(device)
        optimizer, base_lr = build_optimizer(optimizer_spec, model, self.cells[0].config["model"])
        scheduler = make_scheduler(optimizer, optimizer_spec.params, epochs, base_lr)
        generators = [
            torch.Generator().manual_seed(derive_seed(c.seed, "shuffle")) for c in self.cells
        ]
        for epoch in range(1, epochs + 1):
            alive, diverged_at = self.train_epoch(epoch, optimizer, generators, alive, diverged_at)
            scheduler.step()
        finite = torch.isfinite(self.measure_test(epochs))
        diverged_at = torch.where(alive & ~finite, epochs, diverged_at)
        self.probe_layers("final", probe_n)
        self.record_results(diverged_at.cpu().tolist())

    def train_epoch(
        self,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        generators: list[torch.Generator],
        alive: torch.Tensor,
        diverged_at: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass over the training split, each member on its own permutation; then the
        held-out measurement. Returns the updated ``alive`` and ``diverged_at``."""
        model, task = self.model, self.task
        params = list(model.parameters())
        frozen = [p.detach().clone() for p in params]  # where a member stays if it dies
        n, batch_size = len(task.train.x), self.settings["batch_size"]
        order = _permutations(generators, n, task.train.x.device)
        loss_sum = torch.zeros(model.members, dtype=torch.float64, device=task.train.x.device)
        stop = steps_end(n, batch_size, model.norm)
        for begin in range(0, stop, batch_size):
            index = order[:, begin : min(begin + batch_size, stop)]
            with self.numerics():
                pred = wide(model(task.train.x[index], self.activation))
            per_member = member_losses(self.loss, pred, task.train.y[index]).mean(1)
            finite = torch.isfinite(per_member)
            diverged_at = torch.where(alive & ~finite, epoch, diverged_at)
            alive = alive & finite
            masked = torch.where(alive, per_member, torch.zeros_like(per_member))
            optimizer.zero_grad(set_to_none=True)
            masked.sum().backward()  # a sum: each member's gradient is its own mean loss's
            optimizer.step()
            self.step += 1
            if self.coord is not None and self.coord.wants(self.step):
                self.coord.record(self.step, self.curves)
            loss_sum += masked.detach().double() * index.shape[1]
        finite = torch.isfinite(self.measure_epoch(epoch, loss_sum / stop))
        diverged_at = torch.where(alive & ~finite, epoch, diverged_at)
        alive = alive & finite
        _restore(params, frozen, alive)
        return alive, diverged_at

    def record_results(self, diverged_at: list[int]) -> None:
        """Curves (each ends before its member diverged) and one run row per member."""
        values = {key: v.double().cpu().tolist() for key, v in self.curves.items()}
        cells, epochs = self.cells, self.settings["epochs"]
        for (epoch, split, metric), column in values.items():
            keep = [  # the coordinate check's "epoch" is a step: kept whole
                g for g, d in enumerate(diverged_at) if d < 0 or epoch < d or split == COORD_SPLIT
            ]
            self.recorder.curve(
                [cells[g] for g in keep], epoch, split, metric, [column[g] for g in keep]
            )
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
                f"{'val' if split == 'val' else 'test'}_{name}": column[g]
                for (e, split, name), column in values.items()
                if e == epochs and split in ("val", "test")
            }
            self.recorder.run(
                cell,
                "ok",
                init_hash=self.hashes[g],
                **{name: values[g] for name, values in self.scales.items()},
                train_loss=values[(epochs, "train", "loss")][g],
                epochs_to_target=self._reached(values, g),
                **{m: final.get(m, math.nan) for m in FINAL_METRICS},
            )

    def _reached(self, values: Mapping[tuple[int, str, str], list[float]], g: int) -> float:
        """The first epoch whose held-out accuracy reached ``target_accuracy`` (or NaN)."""
        target, held = self.settings["target_accuracy"], self.task.heldout
        if target is None or (0, held, "accuracy") not in values:
            return math.nan
        epochs = self.settings["epochs"]
        hits = [e for e in range(epochs + 1) if values[(e, held, "accuracy")][g] >= target]
        return float(hits[0]) if hits else math.nan


def build_optimizer(
    spec: Bound[Optimizer], model: StackedMLP, model_cfg: Mapping[str, Any]
) -> tuple[torch.optim.Optimizer, float]:
    """The optimizer over the stack and its base rate. A parametrization that scales
    learning rates (muP) gets one group per layer tensor, its rate scaled after the
    optimizer is built (benchinit.engine.parametrize); otherwise one plain list, as always."""
    rule = spec.descriptor.lr_scaling
    if not needs_rule(model_cfg.get("parametrization", "standard")) or model.hidden == 0:
        optimizer = spec(list(model.parameters()))
        return optimizer, float(optimizer.param_groups[0]["lr"])
    if rule is None:  # the study refuses it (benchinit.study.grid); a direct call, too
        raise ValueError(f"optimizer '{spec.name}' declares no lr_scaling")
    scales = model_scales(model_cfg, model.layers, model.hidden, rule)
    optimizer = spec(param_groups(model, scales))
    base_lr = float(optimizer.param_groups[0]["lr"])
    scale_groups(optimizer)
    return optimizer, base_lr


def steps_end(n: int, batch_size: int, norm: str) -> int:
    """How many samples of an epoch's permutation are trained on: all of them, but for
    batch norm a last minibatch of one sample is dropped. Batch norm in training mode has
    no statistics of one sample (every unit would be its shift), so the sample is left for
    another epoch, as ``DataLoader(drop_last=True)`` would leave it, rather than merged into
    the batch before (which would make one step of a different size). Each member's own
    permutation decides which sample that is; the batch boundaries depend only on ``n``
    and ``batch_size``, so a stack still equals its members trained alone."""
    if norm == "batch" and n > 1 and n % batch_size == 1:
        return n - 1
    return n


def _biases(model: StackedMLP) -> list[torch.Tensor] | None:
    return None if model.biases is None else list(model.biases)


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
