"""Settings that have no effect in a configuration, reset to their defaults before a cell's
id is computed.

A setting that cannot change what a cell computes in its configuration (``model.residual``
at depth 1: there is no block to skip) would otherwise make a new cell id with identical
results: rerun work, and two labels for one computation. benchinit.study.grid resets every such
setting to its default while it builds a cell's configuration, so the cell is the same cell
as without it, and the study warns once per setting (:class:`Ignored`). When a grid axis's
values become one configuration that way, the study is refused: one cell under two labels
would be a silent duplicate. A ``[tune]`` parameter with no effect is refused too: every
trial would be the same run.

The rules (each holds whatever the value of the setting):

- ``model.residual`` at depth 0 or 1: residual blocks are layers 2..depth;
- ``model.norm``, ``model.width`` and ``model.parametrization`` at depth 0: a linear model
  has no hidden layer;
- ``model.parametrization`` in a signal study (at initialization its hidden layers are the
  standard ones; it changes the head and the learning rates); ``model.base_width`` under
  the standard parametrization, ``model.mup_output`` but under muP
  (benchinit.study.parametrization);
- ``model.bias_init`` with ``model.bias = false``: no bias to fill;
- ``train.batch_size`` and the optimizer at ``train.epochs = 0``: no training step (the
  optimizer becomes the default one, benchinit.study.grid.DEFAULT_OPTIMIZER);
- ``train.target_accuracy`` on regression data: there is no accuracy to reach;
- the optimizer's schedule parameters that its schedule does not read, and a schedule whose
  learning rate never changes within the run (benchinit.study.schedules.inert).

A grid column keeps the value as written (the warning says it was ignored); the cell's
configuration holds the default, so what runs is what the id says: a "residual" network of
depth 1 is computed as the plain one it is, mean-field theory included. ``target_accuracy``
without a validation split is not inert: it is then read on the test split.

Only rules that hold whatever the data are here. Settings that stop mattering at the size
of a dataset (a ``batch_size`` or ``probe_samples`` past the training split) would need
the data, which loading a study never reads, and stay as written. So do a plugin's own
parameters (``sgd``'s ``dampening`` without momentum): a plugin's meaning is its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from benchinit.study import schedules


@dataclass(frozen=True)
class Ignored:
    """A setting reset to its default in one configuration, and why."""

    key: str  # "model.residual", "optimizer.step_size"
    reason: str  # completes "<key> ...": "has no effect at depth 1 (no block to skip)"

    def __str__(self) -> str:
        return f"{self.key} {self.reason}: ignored"


def setting_rules(
    model: Mapping[str, Any], train: Mapping[str, Any] | None, task: str
) -> Iterator[tuple[str, str]]:
    """``(key, reason)`` for each [model] and [train] setting with no effect here, whatever
    its value (``train`` is None in a signal study)."""
    depth = model["depth"]
    if depth < 2:
        yield "model.residual", f"has no effect at depth {depth} (no block to skip)"
    if depth == 0:
        yield "model.norm", "has no effect at depth 0 (no hidden layer to normalize)"
        yield "model.width", "has no effect at depth 0 (a linear model has no hidden layer)"
        yield "model.parametrization", "has no effect at depth 0 (a linear model has no width)"
    if train is None:  # equal hidden layers at init; the head and the rates are training's
        yield "model.parametrization", "has no effect in a signal study (no head, no training)"
    if depth == 0 or train is None or model.get("parametrization", "standard") == "standard":
        yield "model.base_width", "has no effect under the standard parametrization"
    if depth == 0 or train is None or model.get("parametrization", "standard") != "mup":
        yield "model.mup_output", "has no effect but under model.parametrization = 'mup'"
    if not model["bias"]:
        yield "model.bias_init", "has no effect with model.bias = false (no bias to fill)"
    if train is not None:
        if train["epochs"] == 0:
            yield "train.batch_size", "has no effect at train.epochs = 0 (no training step)"
            yield "train.coord_steps", "has no effect at train.epochs = 0 (no training step)"
        if task != "classification":
            yield "train.target_accuracy", f"has no effect on {task} data (no accuracy to reach)"


def inert_keys(
    model: Mapping[str, Any],
    train: Mapping[str, Any] | None,
    task: str,
    optimizer: Mapping[str, Any] | None = None,
    *,
    own: Collection[str] = (),
    tuned: Collection[str] = (),
) -> dict[str, str]:
    """Every key with no effect in one configuration, whatever its value, with why (each
    reason completes "<key> ..."): the settings' (``model.residual``), ``optimizer`` itself
    at 0 epochs, and the schedule parameters of the ``optimizer``'s params
    (``optimizer.gamma``) but those in ``own`` (the optimizer's own parameters, which it
    reads). ``tuned``: the [tune] keys (``optimizer.step_size``), tried at other values."""
    keys = dict(setting_rules(model, train, task))
    if train is None or optimizer is None:
        return keys
    if train["epochs"] == 0:
        keys["optimizer"] = "has no effect at train.epochs = 0 (no training step)"
        return keys
    tried = {key.partition(".")[2] for key in tuned if key.startswith("optimizer.")}
    found = schedules.inert(optimizer, train["epochs"], tried)
    keys.update({f"optimizer.{k}": v for k, v in found.items() if k not in own})
    return keys
