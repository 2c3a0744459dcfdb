"""Grid expansion: a study's axes x seeds -> cells, each a fully resolved configuration.

Every grid value is bound once (plugins against their signatures, dotted settings against
their section's checks), so an error names the key before anything runs. A cell's config is
plain JSON (see benchinit.cells); its ``labels`` are the grid columns of the result tables.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from benchinit import settings
from benchinit.cells import CELL_FORMAT, Cell, canonical_json
from benchinit.descriptors import Bound
from benchinit.errors import did_you_mean
from benchinit.registry import Registry
from benchinit.specs import SpecError

PLUGIN_AXES = ("initializer", "activation", "loss", "optimizer")
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
        fail: Fail,
    ) -> None:
        """``sections``: the checked [model] (and [train]) values; ``data``: [data] (the
        plugin's name and parameters); ``validation``: the held-out share (train studies)."""
        self.registry, self.kind, self.task = registry, kind, task
        self.sections, self.data, self.fail = sections, data, fail
        self.validation = validation
        self._bound: dict[tuple[str, str], Bound[Any]] = {}

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

    def plugin(self, kind: str, bound: Bound[Any]) -> dict[str, Any]:
        return {
            "name": bound.name,
            "params": dict(bound.params),
            "version": self.registry.version(kind, bound.name),
        }

    def config(self, combo: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The cell configuration of one grid combination and seed."""
        sections = {s: dict(values) for s, values in self.sections.items()}
        data_doc = dict(self.data)
        for axis, value in combo.items():
            section, _, sub = axis.partition(".")
            if section == "data":
                data_doc[sub] = value
            elif sub:
                sections[section][sub] = value
        key = "grid" if any(a.startswith("data.") for a in combo) else "data"
        data = self.bind("dataset", data_doc, key)
        try:
            model = settings.model_config(sections["model"])
        except settings.Invalid as exc:
            raise self.fail("model.precision", str(exc)) from None
        if self.kind == "signal" and model["depth"] < 1:
            raise self.fail("model.depth", "a signal study needs at least one hidden layer")
        where = "grid.model.bias_init" if "model.bias_init" in combo else "model.bias_init"
        bias_init = self.bind("initializer", model["bias_init"], where)
        data_config = self.plugin("dataset", data)
        if self.validation is not None:
            data_config["validation"] = self.validation
        config: dict[str, Any] = {
            "format": CELL_FORMAT,
            "kind": self.kind,
            "data": data_config,
            "model": {**model, "bias_init": self.plugin("initializer", bias_init)},
            "seed": seed,
        }
        for axis in PLUGIN_AXES:
            if axis in combo:
                config[axis] = self.plugin(axis, self.bind(axis, combo[axis], f"grid.{axis}"))
        if self.kind == "train":
            config["train"] = sections["train"]
            loss = self.bind("loss", combo["loss"], "grid.loss").descriptor
            if self.task not in loss.tasks:
                raise self.fail(
                    "grid.loss",
                    f"loss '{loss.name}' does not fit {self.task} data (dataset "
                    f"'{data.name}'); it fits {', '.join(loss.tasks)}.",
                )
        return config


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
    """The cells: grid combinations (in file order) times seeds."""
    names = list(axes)
    shown = {
        a: dict(zip(map(canonical_json, axes[a]), labels_of(resolver, a, axes[a]), strict=True))
        for a in names
    }
    cells = []
    for values in itertools.product(*(axes[a] for a in names)):
        combo = dict(zip(names, values, strict=True))
        labels = {axis: shown[axis][canonical_json(value)] for axis, value in combo.items()}
        for seed in seeds:
            cells.append(Cell.of(resolver.config(combo, seed), labels))
    return cells


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


class DuplicateAxis(ValueError):
    """One grid axis written twice (``"model.depth" = ...`` and ``model.depth = ...``)."""

    def __init__(self, axis: str) -> None:
        self.axis = axis
        super().__init__(axis)


def flatten(grid: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"depth": [..]}}`` -> ``{"model.depth": [..]}`` (TOML dotted keys).
    DuplicateAxis when two spellings name one axis (TOML itself cannot tell)."""
    flat: dict[str, Any] = {}
    for key, value in grid.items():
        if isinstance(value, dict) and (prefix or key in SETTING_SECTIONS):
            items = flatten(value, f"{prefix}{key}.").items()
        else:
            items = {prefix + key: value}.items()
        for axis, values in items:
            if axis in flat:
                raise DuplicateAxis(axis)
            flat[axis] = values
    return flat
