"""A conformance kit for plugin authors: ``check_plugin`` tests a plugin the way benchinit
will use it, and raises one ``AssertionError`` listing every problem it found.

Use it in your plugin's tests::

    import my_plugin
    from benchinit.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin(my_plugin)                  # a module, or any object with hooks
        check_plugin("benchinit-my-plugin")      # or an installed distribution, by name

What it checks, for every descriptor the plugin provides:

- it loads: hooks exist, names are valid and clash with no built-in;
- parameters are introspectable: the kind's positional arguments, then keyword-only
  parameters with annotations, whose defaults pass their own annotation; a one-line doc;
- it is deterministic: an initializer fills the same finite weights from the same seed; an
  activation is elementwise
  and finite with a positive gain and a histogram range; a loss returns one finite value per
  sample, repeatably; an optimizer that declares itself elementwise updates a stack of two
  parameter vectors exactly as it updates each alone, and one that declares
  ``lr_scaling`` takes torch parameter groups and honours each group's ``lr`` (a group at
  half the rate takes half the first step); a dataset returns the same valid data twice;
  a model builds a stack of two whose members never mix (changing one member's weights
  changes no other member's outputs), declares its layers and traces each hidden one;
- a tiny CPU smoke study that uses it runs without a failed cell.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchinit.conformance import Problems, check_lr_groups, check_model, default, seeded
from benchinit.errors import BenchinitError, error_text, plugin_failed
from benchinit.plugins.descriptors import (
    Activation,
    Dataset,
    Descriptor,
    Initializer,
    Loss,
    Optimizer,
)
from benchinit.plugins.guard import plugin_code
from benchinit.plugins.registry import ENTRY_POINT_GROUP, Registry
from benchinit.plugins.specs import SpecError, coerce

POSITIONAL = {
    "initializer": 3,
    "activation": 1,
    "loss": 2,
    "optimizer": 1,
    "dataset": 0,
    "model": 1,
}


def _plugins_of(plugin: object | str) -> list[tuple[object, str]]:
    """(plugin object, name) pairs: the object itself, or a distribution's entry points."""
    if not isinstance(plugin, str):
        return [(plugin, getattr(plugin, "__name__", type(plugin).__name__))]
    try:
        dist = importlib.metadata.distribution(plugin)
    except importlib.metadata.PackageNotFoundError:
        raise AssertionError(f"distribution '{plugin}' is not installed") from None
    points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if not points:
        raise AssertionError(
            f"distribution '{plugin}' declares no entry point in group '{ENTRY_POINT_GROUP}'"
        )
    pairs = []
    for ep in points:
        try:
            with plugin_code():
                pairs.append((ep.load(), ep.name))
        except BaseException as exc:  # sys.exit and os._exit too
            if not plugin_failed(exc):
                raise
            raise AssertionError(
                f"entry point '{ep.name}' of '{plugin}' does not load: {error_text(exc)}"
            ) from exc
    return pairs


def check_plugin(plugin: object | str, *, smoke: bool = True) -> list[str]:
    """Check a plugin module/object, or an installed distribution by name.

    Returns the checked descriptors as ``"kind name"``; raises AssertionError with every
    problem found. ``smoke=False`` skips the smoke studies (for datasets too big to train
    on in a test).
    """
    pairs = _plugins_of(plugin)
    try:
        registry = Registry(autoload=False, objects=pairs)
    except BenchinitError as exc:
        raise AssertionError(f"the plugin does not load: {exc}") from exc
    names = {name for _, name in pairs}
    entries = [e for e in registry.entries() if e.plugin.name in names]
    problems = Problems()
    problems.check(bool(entries), "the plugin provides no descriptor")
    for entry in entries:
        try:
            with plugin_code():  # an exit of any kind is a problem found, not the end
                _check_signature(entry.descriptor, problems)
                CHECKS[entry.kind](entry.descriptor, registry, problems)
        except BaseException as exc:
            if not plugin_failed(exc):
                raise
            problems.items.append(
                f"{entry.kind} '{entry.descriptor.name}' raised {error_text(exc)}"
            )
        if smoke and not problems.items:
            _smoke(entry.descriptor, registry, problems)
    if problems.items:
        raise AssertionError("plugin check failed:\n- " + "\n- ".join(problems.items))
    return [f"{e.kind} {e.descriptor.name}" for e in entries]


def _check_signature(descriptor: Descriptor, problems: Problems) -> None:
    who = f"{descriptor.kind} '{descriptor.name}'"
    problems.check(bool(descriptor.doc), f"{who} has no doc (a one-line docstring)")
    try:
        signature = inspect.signature(descriptor.fn)
    except (TypeError, ValueError):  # a builtin: its contract is checked by the smoke run
        return
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    problems.check(
        len(positional) == POSITIONAL[descriptor.kind],
        f"{who}: fn takes {len(positional)} positional arguments, the contract of "
        f"a {descriptor.kind} is {POSITIONAL[descriptor.kind]}; make parameters "
        "keyword-only (after '*')",
    )
    for param in descriptor.parameters().values():
        if (
            param.name in ("schedule", "step_size", "gamma", "eta_min")
            and descriptor.kind == "optimizer"
        ):
            continue
        problems.check(
            param.annotation is not inspect.Parameter.empty,
            f"{who}: parameter '{param.name}' has no annotation",
        )
    for param in descriptor.parameters().values():
        if param.required or param.annotation is inspect.Parameter.empty:
            continue
        try:
            coerce(param.default, param, descriptor)
        except SpecError as exc:
            problems.items.append(
                f"{who}: the default of '{param.name}' fails its own annotation: {exc}"
            )


def _check_initializer(d: Initializer, registry: Registry, problems: Problems) -> None:
    who = f"initializer '{d.name}'"
    init, act = default(d, registry), registry.bind("activation", "tanh")
    draws = []
    for seed in (0, 0):
        weight = torch.full((16, 8), float("nan"))
        try:
            init(weight, seeded(seed), act)
        except Exception as exc:
            problems.items.append(f"{who} on a [16, 8] weight raised {type(exc).__name__}: {exc}")
            return
        draws.append(weight)
    problems.check(bool(torch.isfinite(draws[0]).all()), f"{who} left non-finite entries")
    problems.check(
        torch.equal(draws[0], draws[1]),
        f"{who} is not deterministic: the same "
        "seed gave different weights (draw from the generator argument)",
    )


def _check_activation(d: Activation, registry: Registry, problems: Problems) -> None:
    who = f"activation '{d.name}'"
    act = default(d, registry)
    x = torch.linspace(-10, 10, 401).reshape(1, 401)
    y = problems.run(who, act, x)
    if y is None:
        return
    problems.check(
        y.shape == x.shape, f"{who} changed the shape {tuple(x.shape)} to {tuple(y.shape)}"
    )
    problems.check(bool(torch.isfinite(y).all()), f"{who} is not finite on [-10, 10]")
    alone = act(x.reshape(401, 1)).reshape(1, 401)  # each value in a row of its own
    problems.check(
        torch.allclose(alone, y),
        f"{who} is not elementwise: its value at an entry depends on the other entries",
    )
    problems.check(torch.equal(act(x), y), f"{who} is not deterministic")
    gain = problems.run(f"{who} gain", lambda: d.gain_of(act.params))
    problems.check(gain is not None and gain > 0, f"{who} has no positive gain ({gain})")
    lo, hi = d.range_of(act.params)
    problems.check(lo < hi, f"{who}: histogram range ({lo}, {hi}) is empty")


def _check_loss(d: Loss, registry: Registry, problems: Problems) -> None:
    who = f"loss '{d.name}'"
    loss = default(d, registry)
    g = seeded(0)
    for task in d.tasks:
        outputs = 3 * (2 if d.prediction == "mean_var" else 1)
        pred = torch.randn(2, 5, outputs, generator=g)
        if task == "classification":
            labels = torch.randint(3, (2, 5), generator=g)
            target = (
                labels
                if d.class_targets == "index"
                else torch.nn.functional.one_hot(labels, 3).float()
            )
        else:
            target = torch.randn(2, 5, 3, generator=g)
        values = problems.run(f"{who} on {task} data", loss, pred, target)
        if values is None:
            continue
        problems.check(
            tuple(values.shape) == (2, 5),
            f"{who} on {task} data returned shape "
            f"{tuple(values.shape)}; it must return one value per sample, (2, 5)",
        )
        problems.check(bool(torch.isfinite(values).all()), f"{who} is not finite")
        problems.check(torch.equal(values, loss(pred, target)), f"{who} is not deterministic")


def _check_optimizer(d: Optimizer, registry: Registry, problems: Problems) -> None:
    who = f"optimizer '{d.name}'"
    spec = default(d, registry)
    g = seeded(0)
    start = torch.randn(2, 6, generator=g, dtype=torch.float64)
    grads = [torch.randn(2, 6, generator=g, dtype=torch.float64) for _ in range(3)]

    def steps(rows: slice) -> torch.Tensor | None:
        param = torch.nn.Parameter(start[rows].clone())
        optimizer = problems.run(f"{who} construction", spec, [param])
        if optimizer is None:
            return None
        for grad in grads:
            param.grad = grad[rows].clone()
            optimizer.step()
        return param.detach()

    stacked = steps(slice(0, 2))
    if stacked is None:
        return
    problems.check(not torch.equal(stacked, start), f"{who} did not change the parameters")
    again = steps(slice(0, 2))
    problems.check(again is not None and torch.equal(stacked, again), f"{who} is not deterministic")
    first, second = steps(slice(0, 1)), steps(slice(1, 2))
    if d.elementwise and first is not None and second is not None:
        alone = torch.cat([first, second])
        problems.check(
            torch.allclose(stacked, alone, rtol=0, atol=1e-12),
            f"{who} declares elementwise=True, but stepping two rows together "
            "differs from stepping each alone; declare elementwise=False",
        )
    if d.lr_scaling is not None:
        check_lr_groups(who, spec, start[0], grads[0][0], problems)


def _check_dataset(d: Dataset, registry: Registry, problems: Problems) -> None:
    from benchinit.engine.stack import check_data

    who = f"dataset '{d.name}'"
    bound = default(d, registry)
    made = problems.run(who, bound)
    if made is None:
        return
    first = problems.run(f"{who} returned data that", check_data, made, bound)
    if first is None:
        return
    second = check_data(bound(), bound)
    problems.check(
        torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test),
        f"{who} is not deterministic: two calls gave different data",
    )


CHECKS: dict[str, Callable[[Any, Registry, Problems], None]] = {
    "initializer": _check_initializer,
    "activation": _check_activation,
    "loss": _check_loss,
    "optimizer": _check_optimizer,
    "dataset": _check_dataset,
    "model": check_model,
}


def _smoke(descriptor: Descriptor, registry: Registry, problems: Problems) -> None:
    """Train a tiny model that uses the descriptor, on the CPU; no cell may fail."""
    from benchinit import load_study, run

    grid = {"initializer": '"xavier_normal"', "activation": '"relu"', "optimizer": '"adam"'}
    model = "depth = 2\nwidth = 8"
    data = 'name = "blobs"\nsamples = 64\nfeatures = 4'
    if descriptor.kind == "dataset":
        data = f'name = "{descriptor.name}"'
    elif descriptor.kind == "loss":
        grid["loss"] = f'"{descriptor.name}"'
        if "classification" not in descriptor.tasks:  # type: ignore[attr-defined]
            data = 'name = "linear"\nsamples = 64'
    elif descriptor.kind == "model":
        model = f'name = "{descriptor.name}"\n' + "\n".join(
            line
            for key, line in (("depth", "depth = 2"), ("width", "width = 8"))
            if key in descriptor.honours  # type: ignore[attr-defined]
        )
        if descriptor.image:  # type: ignore[attr-defined]
            data = 'name = "digits"'
    else:
        grid[descriptor.kind] = f'"{descriptor.name}"'
    text = textwrap.dedent("""
        [study]
        name = "smoke"
        kind = "train"
        seeds = 2
        [data]
        {data}
        [model]
        {model}
        [train]
        epochs = 1
        batch_size = 16
        probe_samples = 32
        [grid]
        {grid}
    """).format(data=data, model=model, grid="\n".join(f"{k} = {v}" for k, v in grid.items()))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "smoke.toml"
        path.write_text(text)
        try:
            outcome = run(
                load_study(path, registry=registry),
                Path(folder) / "out",
                device="cpu",
                report=False,
                progress=False,
            )
        except BenchinitError as exc:
            problems.items.append(f"smoke study with {descriptor.kind} '{descriptor.name}': {exc}")
            return
        failed = outcome.results.runs[outcome.results.runs["status"] == "failed"]
        problems.check(
            failed.empty,
            f"smoke study with {descriptor.kind} '{descriptor.name}' "
            f"failed: {'; '.join(failed['error'].unique())}",
        )
