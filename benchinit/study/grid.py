"""Grid expansion: a study's axes x seeds -> cells, each a fully resolved configuration.

Every grid value is bound once (plugins against their signatures, dotted settings against
their section's checks), so an error names the key before anything runs. A cell's config is
plain JSON (see benchinit.study.cells); its ``labels`` are the grid columns of the result tables.

Settings with no effect in a configuration are reset to their defaults before its id is
computed (benchinit.study.inert); grid values that become one configuration that way are refused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

from benchinit.errors import did_you_mean
from benchinit.plugins.descriptors import SCHEDULE_PARAMS, Bound
from benchinit.plugins.model_kind import Model, refusal
from benchinit.plugins.registry import Registry
from benchinit.plugins.specs import SpecError
from benchinit.study import inert, settings
from benchinit.study.cells import CELL_FORMAT, Cell, canonical_json
from benchinit.study.parametrization import lr_scaling_problem
from benchinit.study.validation import validation_fraction

PLUGIN_AXES = ("initializer", "activation", "loss", "optimizer")
DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse"}
DEFAULT_OPTIMIZER = "adam"
# benchinit's own [data] key (the held-out share, benchinit.study.validation): an axis over it
# varies the split, never a parameter of the dataset plugin
VALIDATION_AXIS = "data.validation"
TRAIN_ONLY_AXES = ("loss", "optimizer")
SETTING_SECTIONS = ("model", "train", "data")

Fail = Callable[[str, str], Exception]


def count(axes: Mapping[str, Sequence[Any]], seeds: Sequence[int]) -> int:
    """How many cells a grid makes, without making them."""
    return math.prod(len(values) for values in axes.values()) * len(seeds)


class Resolver:
    """Turns grid values into labels and resolved, JSON-able cell configurations."""

    def __init__(
        self,
        registry: Registry,
        *,
        kind: str,
        task: str,
        sections: Mapping[str, Mapping[str, Any]],
        data: Mapping[str, Any],
        validation: float | None = None,
        tuned: Collection[str] = (),
        fail: Fail,
    ) -> None:
        """``sections``: the checked [model] (and [train]) values; ``data``: [data] (the
        plugin's name and parameters); ``validation``: the held-out share (train studies);
        ``tuned``: the [tune] keys (``optimizer.lr``)."""
        self.registry, self.kind, self.task = registry, kind, task
        self.sections, self.data, self.fail = sections, data, fail
        self.validation, self.tuned = validation, tuple(tuned)
        self._bound: dict[tuple[str, str], Bound[Any]] = {}
        # What configure() found: key -> why, for keys with no effect in some configuration
        # (whatever their value), and for the settings it reset (the study warns of them).
        self.no_effect: dict[str, str] = {}
        self.ignored: dict[str, str] = {}

    def bind(self, kind: str, value: Any, key: str) -> Bound[Any]:
        memo = (kind, canonical_json(value))
        if memo not in self._bound:
            try:
                self._bound[memo] = self.registry.bind(kind, value)
            except SpecError as exc:
                raise self.fail(key, str(exc)) from None
        return self._bound[memo]

    def label(self, axis: str, value: Any) -> Any:
        """The value as shown in tables: a spec's label, or the checked setting."""
        kind = plugin_kind(axis)
        if kind is not None:
            return self.bind(kind, value, f"grid.{axis}").label
        section, _, sub = axis.partition(".")
        if axis == VALIDATION_AXIS:
            return self._validation(value)
        if section == "data":
            return self.bind("dataset", {**self.data, sub: value}, f"grid.{axis}").params[sub]
        try:
            return settings.check_value(section, sub, value)
        except KeyError:
            raise self.fail(
                f"grid.{axis}",
                f"unknown key '{sub}' in [{section}].{did_you_mean(sub, settings.keys(section))}",
            ) from None
        except settings.Invalid as exc:
            raise self.fail(f"grid.{axis}", str(exc)) from None

    def _validation(self, value: Any) -> float:
        key = f"grid.{VALIDATION_AXIS}"
        if self.validation is None:
            raise self.fail(key, "a signal study does not train: it has no use for it")
        clash = validation_clash(self.registry, self.data["name"])
        if clash:
            raise self.fail(key, clash)
        try:
            return validation_fraction(value)
        except settings.Invalid as exc:
            raise self.fail(key, str(exc)) from None

    def plugin(self, kind: str, bound: Bound[Any]) -> dict[str, Any]:
        return {
            "name": bound.name,
            "params": dict(bound.params),
            "version": self.registry.version(kind, bound.name),
        }

    def configure(self, combo: Mapping[str, Any]) -> tuple[dict[str, Any], list[inert.Ignored]]:
        """The configuration of one grid combination (seed 0), and the settings it reset
        because they have no effect in it (benchinit.study.inert)."""
        sections = {s: dict(values) for s, values in self.sections.items()}
        data_doc = dict(self.data)
        validation = self.validation
        for axis, value in combo.items():
            section, _, sub = axis.partition(".")
            if axis == VALIDATION_AXIS:
                validation = self._validation(value)
            elif section == "data":
                data_doc[sub] = value
            elif sub:
                sections[section][sub] = value
        key = (
            "grid" if any(a.startswith("data.") and a != VALIDATION_AXIS for a in combo) else "data"
        )
        data = self.bind("dataset", data_doc, key)
        plugins = {
            axis: self.bind(axis, combo[axis], f"grid.{axis}")
            for axis in PLUGIN_AXES
            if axis in combo
        }
        model_plugin = self._model(sections, combo)
        ignored = self._reset(sections, plugins)
        try:
            model = settings.model_config(sections["model"])
        except settings.Invalid as exc:
            raise self.fail("model.precision", str(exc)) from None
        model.pop("name", None)  # the default model stays out of the id (LATER_MODEL_KEYS)
        if model_plugin != self.bind("model", "mlp", "model.name"):
            model["name"] = self.plugin("model", model_plugin)
        if self.kind == "signal" and model["depth"] < 1:
            raise self.fail("model.depth", "a signal study needs at least one hidden layer")
        where = "grid.model.bias_init" if "model.bias_init" in combo else "model.bias_init"
        bias_init = self.bind("initializer", model["bias_init"], where)
        data_config = self.plugin("dataset", data)
        if validation is not None:
            data_config["validation"] = validation
        config: dict[str, Any] = {
            "format": CELL_FORMAT,
            "kind": self.kind,
            "data": data_config,
            "model": {**model, "bias_init": self.plugin("initializer", bias_init)},
            "seed": 0,
        }
        for axis, bound in plugins.items():
            config[axis] = self.plugin(axis, bound)
        if self.kind == "train":
            config["train"] = settings.train_config(sections["train"])
            self._check_batch_norm(sections, combo)
            self._check_lr_scaling(model, plugins["optimizer"])
            loss = plugins["loss"].descriptor
            if self.task not in loss.tasks:
                raise self.fail(
                    "grid.loss",
                    f"loss '{loss.name}' does not fit {self.task} data (dataset "
                    f"'{data.name}'); it fits {', '.join(loss.tasks)}.",
                )
        return config, ignored

    def _model(self, sections: Mapping[str, Mapping[str, Any]], combo: Any) -> Bound[Model]:
        """The configuration's model plugin, bound; a [model] setting it does not honour,
        set to anything but its default, is refused (it would change nothing)."""
        where = "grid.model.name" if "model.name" in combo else "model.name"
        plugin: Bound[Model] = self.bind("model", sections["model"]["name"], where)
        model = sections["model"]
        found = refusal(
            plugin.descriptor,
            model,
            lambda key: self._differs(f"model.{key}", model[key], settings.default("model", key)),
        )
        if found:
            key, problem = found
            raise self.fail(
                f"grid.model.{key}" if f"model.{key}" in combo else f"model.{key}", problem
            )
        return plugin

    def _reset(
        self, sections: dict[str, dict[str, Any]], plugins: dict[str, Bound[Any]]
    ) -> list[inert.Ignored]:
        """Reset, in place, what has no effect in this configuration to its default; return
        what was not at its default already."""
        optimizer = plugins.get("optimizer")
        params = dict(optimizer.params) if optimizer is not None else None
        own = optimizer.call_params if optimizer is not None else ()
        train = sections.get("train") if self.kind == "train" else None  # signal: no [train]
        keys = inert.inert_keys(
            sections["model"], train, self.task, params, own=own, tuned=self.tuned
        )
        ignored = []
        for key, reason in keys.items():
            self.no_effect.setdefault(key, reason)
            section, _, name = key.partition(".")
            if section in settings.SECTIONS:
                default = settings.default(section, name)
                if self._differs(key, sections[section][name], default):
                    sections[section][name] = default
                    ignored.append(inert.Ignored(key, reason))
            elif key == "optimizer":
                default_optimizer = self.bind("optimizer", DEFAULT_OPTIMIZER, "grid.optimizer")
                if plugins["optimizer"] != default_optimizer:
                    plugins["optimizer"] = default_optimizer
                    ignored.append(inert.Ignored(key, reason))
            elif params is not None and params[name] != SCHEDULE_PARAMS[name].default:
                params[name] = SCHEDULE_PARAMS[name].default  # a schedule parameter
                ignored.append(inert.Ignored(key, reason))
        if optimizer is not None and params is not None and params != dict(optimizer.params):
            plugins["optimizer"] = Bound(optimizer.descriptor, params, optimizer.label)
        for note in ignored:
            self.ignored.setdefault(note.key, note.reason)
        return ignored

    def _differs(self, key: str, value: Any, default: Any) -> bool:
        """Whether a setting's value is not its default (specs compared bound: two
        spellings of one spec are one value)."""
        section, _, name = key.partition(".")
        kind = settings.plugin_kind(section, name)
        if kind is None:
            return bool(value != default)
        return self.bind(kind, value, key) != self.bind(kind, default, key)

    def _check_lr_scaling(self, model: Mapping[str, Any], optimizer: Bound[Any]) -> None:
        """muP scales learning rates per layer: the optimizer must declare how."""
        problem = lr_scaling_problem(self.registry, model, optimizer)
        if problem:
            raise self.fail("grid.optimizer", problem)

    def _check_batch_norm(self, sections: Mapping[str, Mapping[str, Any]], combo: Any) -> None:
        """Batch norm normalizes over a batch, in training mode: a minibatch or probe batch
        of one sample has no statistics (every unit would be its shift)."""
        if sections["model"]["norm"] != "batch":
            return
        for name in ("batch_size", "probe_samples"):
            if sections["train"][name] == 1:
                axis = f"train.{name}"
                key = f"grid.{axis}" if axis in combo else axis
                if axis not in combo and "model.norm" in combo:
                    key = "grid.model.norm"
                raise self.fail(
                    key,
                    f"train.{name} = 1 with model.norm = 'batch': batch norm normalizes "
                    "over a batch and needs 2 or more samples (with one, every unit would "
                    f"be its shift); set train.{name} to 2 or more, or use model.norm = "
                    "'layer'",
                )


def validation_clash(registry: Registry, dataset: str) -> str | None:
    """Why ``data.validation`` cannot be benchinit's for ``dataset`` (None when it can): the
    plugin has a parameter of that name, which the split would hide."""
    try:
        parameters = registry.get("dataset", dataset).descriptor.parameters()
    except SpecError:  # an unknown dataset is reported where data.name is checked
        return None
    if "validation" not in parameters:
        return None
    return (
        f"dataset '{dataset}' has a parameter of that name, and benchinit's validation split "
        "would hide it; rename the plugin's parameter"
    )


def plugin_kind(axis: str) -> str | None:
    """The plugin kind an axis's values are specs of: a plugin axis's own, or a setting's
    (``model.bias_init``: initializer); None for other settings. Spec values are bound and
    labelled alike, so two spellings of one configuration are one configuration."""
    if axis in PLUGIN_AXES:
        return axis
    section, _, sub = axis.partition(".")
    return settings.plugin_kind(section, sub) if section in settings.SECTIONS else None


def plugins_of(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(kind, name)`` of every plugin a cell configuration names: the plugin axes, the
    dataset (``data``) and plugin-valued settings such as ``model.bias_init``."""
    for key, value in config.items():
        if not isinstance(value, Mapping):
            continue
        path = prefix + key
        if {"name", "params", "version"} <= value.keys():
            kind = "dataset" if path == "data" else plugin_kind(path)
            if kind is not None:
                yield kind, str(value["name"])
        else:
            yield from plugins_of(value, f"{path}.")


def labels_of(resolver: Resolver, axis: str, values: Sequence[Any]) -> list[Any]:
    """An axis's labels, as text when they mix kinds (``false``, ``1.0`` and
    ``"1/sqrt(depth)"`` for ``model.residual``), so a table column has one type."""
    labels = [resolver.label(axis, v) for v in values]
    kinds = {
        "number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v)
        for v in labels
    }
    return [str(v) for v in labels] if len(kinds) > 1 else labels


def expand(
    resolver: Resolver, axes: Mapping[str, Sequence[Any]], seeds: Sequence[int]
) -> list[Cell]:
    """The cells: grid combinations (in file order) times seeds. Two combinations that make
    one configuration (a setting with no effect in it, benchinit.study.inert) are refused."""
    names = list(axes)
    shown = {
        a: dict(zip(map(canonical_json, axes[a]), labels_of(resolver, a, axes[a]), strict=True))
        for a in names
    }
    cells = []
    # a configuration -> the labels of the combination that made it, and what it reset
    made: dict[str, tuple[dict[str, Any], list[inert.Ignored]]] = {}
    for values in itertools.product(*(axes[a] for a in names)):
        combo = dict(zip(names, values, strict=True))
        labels = {axis: shown[axis][canonical_json(value)] for axis, value in combo.items()}
        config, ignored = resolver.configure(combo)
        first = made.setdefault(canonical_json(config), (labels, ignored))
        if first[0] is not labels:
            raise _collapsed(resolver, first[0], labels, [*first[1], *ignored])
        for seed in seeds:
            cells.append(Cell.of({**config, "seed": seed}, labels))
    return cells


def by_configuration(cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells grouped by configuration (everything but the seed), in the order given."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        key = canonical_json({k: v for k, v in cell.config.items() if k != "seed"})
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


def reseed(cell: Cell, seeds: Sequence[int]) -> list[Cell]:
    """``cell``'s configuration at other seeds: the very cells :func:`expand` makes for
    them (the seed is the only part of a config that differs), so their ids are too."""
    return [Cell.of({**cell.config, "seed": seed}, cell.labels) for seed in seeds]


def _collapsed(
    resolver: Resolver,
    first: Mapping[str, Any],
    second: Mapping[str, Any],
    ignored: Sequence[inert.Ignored],
) -> Exception:
    """The error for two grid combinations that make one configuration: it names the axis
    whose values differ, and the setting with no effect that made them one."""
    differ = [a for a in first if first[a] != second[a]]
    why = {f"{n.key} {n.reason}": n.key for n in ignored if any(_of(n.key, a) for a in differ)}
    axis = next((a for a in differ for key in why.values() if _of(key, a)), differ[0])
    return resolver.fail(
        f"grid.{axis}",
        f"{first[axis]!r} and {second[axis]!r} make one configuration: "
        f"{'; '.join(why) or 'they resolve to the same cell'}. One cell would run under "
        "two labels; remove one of the values, or split the study so that the setting has "
        "an effect in every configuration",
    )


def _of(key: str, axis: str) -> bool:
    """Whether a setting's key is the axis or one of its parameters (``optimizer.gamma``)."""
    return key == axis or key.startswith(f"{axis}.")


def axis_values(axis: str, raw: Any, kind: str, fail: Fail) -> list[Any]:
    """A grid axis's values as a list, after checking that the axis exists for ``kind``."""
    key = f"grid.{axis}"
    section, _, sub = axis.partition(".")
    if axis in PLUGIN_AXES:
        if kind == "signal" and axis in TRAIN_ONLY_AXES:
            raise fail(key, f"a signal study has no {axis}; remove it or set study.kind = 'train'")
    elif section in SETTING_SECTIONS and sub:
        if kind == "signal" and section == "train":
            raise fail(key, "a signal study does not train; set study.kind = 'train'")
    else:
        valid = [*PLUGIN_AXES, "model.<key>", "train.<key>", "data.<key>"]
        raise fail(
            key,
            f"unknown grid axis.{did_you_mean(axis, PLUGIN_AXES)} Valid axes: {', '.join(valid)}.",
        )
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise fail(key, "is an empty list: give at least one value")
    return values
