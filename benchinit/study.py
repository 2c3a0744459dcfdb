"""Study files: TOML (plus ``--set`` overrides) -> a validated :class:`Study` -> cells.

A study names the four parts of deep learning (data, model, loss, optimizer) plus the
initializer and activation, and the grid of choices to compare::

    [study]  name, title, kind ("signal" | "train"), seeds, description, plugins, metric
    [data]   name = a dataset plugin, and its parameters
    [model]  depth, width, bias, bias_init, dtype
    [train]  epochs, batch_size, target_accuracy, probe_samples      (kind = "train" only)
    [grid]   initializer, activation, loss, optimizer: a spec or a list of specs; and dotted
             keys such as "model.depth" = [5, 30] over the other sections

Every combination of the grid's values times every seed is one cell. Everything is checked
here, before anything runs; errors name the file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from benchinit.descriptors import Bound
from benchinit.errors import StudyError, choices_text, did_you_mean
from benchinit.metrics import METRICS, default_metric
from benchinit.registry import Registry
from benchinit.specs import SpecError

PLUGIN_AXES = ("initializer", "activation", "loss", "optimizer")
TRAIN_ONLY_AXES = ("loss", "optimizer")
DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse"}
DEFAULT_OPTIMIZER = "adam"
CELL_FORMAT = 1  # bump when the engine's meaning of a cell changes: every cell id changes


class _Invalid(ValueError):
    """A value failed its check; the message completes 'key ...'."""


# --- value checks ------------------------------------------------------------------------


def _integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be an integer, got {value!r}")
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}, got {value}")
        return value

    return check


def _fraction(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise _Invalid(f"must be a number in (0, 1], got {value!r}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise _Invalid(
            f"must be a folder-safe name (letters, digits, '_', '.', '-'), got {value!r}"
        )
    return value


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            hint = did_you_mean(value, options) if isinstance(value, str) else ""
            raise _Invalid(
                f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}.{hint}"
            )
        return value

    return check


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise _Invalid(f"must be a positive number of seeds or a list of seeds, got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise _Invalid(f"must list non-negative integers, got {value!r}")
        if len(set(value)) != len(value):
            raise _Invalid(f"lists a seed twice: {value!r}")
        return tuple(value)
    raise _Invalid(f"must be a number of seeds or a non-empty list of seeds, got {value!r}")


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"must be a list of file paths, got {value!r}")
    return tuple(value)


def _spec(value: Any) -> Any:
    if not isinstance(value, str | dict):
        raise _Invalid(f'must be a spec such as "zeros" or an inline table, got {value!r}')
    return value


# (default, check) per key. A default of None for metric/title means "derived".
SCHEMA: dict[str, dict[str, tuple[Any, Callable[[Any], Any]]]] = {
    "study": {
        "name": (None, _name),
        "title": (None, _text),
        "kind": ("train", _choice("train", "signal")),
        "seeds": (3, _seeds),
        "description": ("", _text),
        "plugins": ([], _strings),
        "metric": (None, _text),
    },
    "model": {
        "depth": (2, _integer(0)),
        "width": (100, _integer(1)),
        "bias": (True, _boolean),
        "bias_init": ("zeros", _spec),
        "dtype": ("float32", _choice("float32", "float64")),
    },
    "train": {
        "epochs": (10, _integer(0)),
        "batch_size": (128, _integer(1)),
        "target_accuracy": (None, _fraction),
        "probe_samples": (512, _integer(1)),  # layer statistics at init and final
    },
}
SECTIONS = ("study", "data", "model", "train", "grid")


# --- the resolved study ------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One fully resolved configuration and one seed.

    ``config`` is plain JSON data (plugin names, parameters and versions; data, model and
    train settings; the seed); ``id`` is a hash of it, so a rerun recognises finished cells
    and any change makes a new cell. ``labels`` are the grid columns of the results tables.
    """

    id: str
    config: Mapping[str, Any]
    labels: Mapping[str, Any]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def kind(self) -> str:
        return str(self.config["kind"])

    def group_key(self) -> str:
        """Cells with equal keys may train as one stacked model (all but init and seed)."""
        rest = {k: v for k, v in self.config.items() if k not in ("initializer", "seed")}
        return canonical_json(rest)


@dataclass
class Study:
    """A validated study; :meth:`cells` expands its grid."""

    name: str
    title: str
    kind: str
    seeds: tuple[int, ...]
    description: str
    metric: str
    task: str
    source: str  # the study file, or "builtin:<name>"
    document: dict[str, Any]  # the study as loaded, overrides applied (saved with results)
    registry: Registry
    axes: dict[str, list[Any]]  # grid axis -> its values, as written
    settings: dict[str, dict[str, Any]]  # [model] and [train], checked, defaults filled in
    data: dict[str, Any]  # [data]: the dataset's name and parameters

    def cells(self) -> list[Cell]:
        """Every combination of the grid's values times every seed."""
        return expand(self)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cell_id(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


# --- loading ----------------------------------------------------------------------------


def builtin_studies() -> dict[str, str]:
    """Built-in study names -> their TOML text."""
    folder = resources.files("benchinit") / "studies"
    return {
        entry.name[: -len(".toml")]: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def load_study(
    study: str | Path,
    overrides: Sequence[str] = (),
    *,
    plugins: Sequence[str | Path] = (),
    seeds: int | None = None,
    registry: Registry | None = None,
) -> Study:
    """Load and validate a study: a path to a TOML file, or a built-in study's name.

    ``overrides`` are ``"key=value"`` strings (``"model.depth=30"``, value in TOML syntax,
    bare words as strings); ``plugins`` are extra plugin files; ``seeds`` replaces
    ``study.seeds`` with ``range(seeds)``. Raises :class:`StudyError` (or PluginError).
    """
    path = Path(study)
    builtins = builtin_studies()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise StudyError(str(path), "", "no such file")
        source, text, base = str(path), path.read_text(encoding="utf-8"), path.parent
    elif str(study) in builtins:
        source, text, base = f"builtin:{study}", builtins[str(study)], Path.cwd()
    else:
        raise StudyError(
            str(study),
            "",
            f"no study file or built-in study of that name.{did_you_mean(str(study), builtins)} "
            f"Built-in studies: {choices_text(builtins)}.",
        )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(source, "", f"is not valid TOML: {exc}") from None
    set_keys = _apply_overrides(document, overrides, source)
    if seeds is not None:
        document.setdefault("study", {})["seeds"] = seeds
        set_keys.add("study.seeds")
    return _validate(document, source, base, plugins, registry, set_keys)


def _apply_overrides(document: dict, overrides: Sequence[str], source: str) -> set[str]:
    keys = set()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StudyError(source, item, "an override must look like key=value (--set)")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: a string, e.g. --set data.name=digits
        section, _, rest = key.partition(".")
        if not rest:
            raise StudyError(
                source, key, f"an override needs section.key, e.g. model.{key}=... (--set)"
            )
        target = document.setdefault(section, {})
        if not isinstance(target, dict):
            raise StudyError(source, section, "is not a table")
        # grid keys may be dotted themselves: grid.model.depth=[5,30] or grid."model.depth"=...
        target[rest.strip('"')] = value
        keys.add(key)
    return keys


def _validate(
    document: dict,
    source: str,
    base: Path,
    extra_plugins: Sequence[str | Path],
    registry: Registry | None,
    set_keys: set[str],
) -> Study:
    def fail(key: str, message: str) -> StudyError:
        note = " (set on the command line)" if key in set_keys else ""
        return StudyError(source, key + note, message)

    for section, value in document.items():
        if section not in SECTIONS:
            raise fail(
                section,
                f"unknown section.{did_you_mean(section, SECTIONS)} "
                f"Valid sections: {', '.join(SECTIONS)}.",
            )
        if not isinstance(value, dict):
            raise fail(section, f"must be a table ([{section}]), got {value!r}")

    values = {s: _section(document.get(s, {}), s, fail) for s in ("study", "model", "train")}
    meta = values["study"]
    kind = meta["kind"]
    name = meta["name"] or (
        Path(source).stem if not source.startswith("builtin:") else source.split(":", 1)[1]
    )
    if kind == "signal" and document.get("train"):
        raise fail(
            "train", "a signal study does not train; remove [train] or set study.kind = 'train'"
        )

    plugin_files = [str(p) for p in extra_plugins]
    plugin_files += [str((base / p).resolve()) for p in meta["plugins"]]
    for p in meta["plugins"]:
        if not (base / p).is_file():
            raise fail("study.plugins", f"plugin file '{base / p}' does not exist")
    if registry is None:
        registry = Registry(plugin_files)

    data_doc = dict(document.get("data", {}))
    data_doc.setdefault("name", "gaussian")
    grid = _flatten(document.get("grid", {}))
    axes: dict[str, list[Any]] = {}
    for axis, raw in grid.items():
        axes[axis] = _axis_values(axis, raw, kind, fail)
    for axis in ("initializer", "activation"):
        if axis not in axes:
            raise fail(
                f"grid.{axis}",
                f"is missing: name at least one {axis}, "
                f'e.g. {axis} = ["{"kaiming_normal" if axis == "initializer" else "relu"}"]',
            )

    # Bind every plugin value and every dotted value once: errors surface before any run.
    try:
        dataset = registry.get("dataset", data_doc["name"]).descriptor
    except SpecError as exc:
        raise fail("data.name", str(exc)) from None
    task = dataset.task  # type: ignore[attr-defined]
    if "data.name" in axes:
        raise fail(
            "grid.data.name",
            "datasets cannot vary within a study (their metrics "
            "differ); write one study per dataset",
        )
    if kind == "train":
        axes.setdefault("loss", [DEFAULT_LOSS[task]])
        axes.setdefault("optimizer", [DEFAULT_OPTIMIZER])
    study = Study(
        name=name,
        title=meta["title"] or name,
        kind=kind,
        seeds=meta["seeds"],
        description=meta["description"],
        metric="",
        task=task,
        source=source,
        document=document,
        registry=registry,
        axes=axes,
        settings={"model": values["model"], "train": values["train"]},
        data=data_doc,
    )
    metric = meta["metric"] or default_metric(kind, task)
    if metric not in METRICS[kind]:
        raise fail(
            "study.metric",
            f"unknown metric '{metric}' for a {kind} study."
            f"{did_you_mean(metric, METRICS[kind])} Valid choices: "
            f"{', '.join(METRICS[kind])}.",
        )
    study.metric = metric
    resolver = _Resolver(study, fail)
    for axis, axis_values in axes.items():
        labels = [resolver.label(axis, v) for v in axis_values]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1}, key=str)
        if dupes:
            raise fail(f"grid.{axis}", f"lists the same configuration twice: {dupes[0]!r}")
    expand(study, resolver)  # resolves every combination: cross-checks (loss vs data) run here
    return study


def _section(table: dict, section: str, fail: Callable[[str, str], StudyError]) -> dict:
    schema = SCHEMA[section]
    out = {}
    for key, value in table.items():
        if key not in schema:
            raise fail(
                f"{section}.{key}",
                f"unknown key.{did_you_mean(key, schema)} "
                f"Valid keys in [{section}]: {', '.join(schema)}.",
            )
        try:
            out[key] = schema[key][1](value)
        except _Invalid as exc:
            raise fail(f"{section}.{key}", str(exc)) from None
    for key, (default, check) in schema.items():
        if key not in out:
            out[key] = check(default) if default is not None else None
    return out


def _flatten(grid: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in grid.items():
        if isinstance(value, dict) and (prefix or key in ("model", "train", "data")):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _axis_values(
    axis: str, raw: Any, kind: str, fail: Callable[[str, str], StudyError]
) -> list[Any]:
    key = f"grid.{axis}"
    section, _, sub = axis.partition(".")
    if axis in PLUGIN_AXES:
        if kind == "signal" and axis in TRAIN_ONLY_AXES:
            raise fail(key, f"a signal study has no {axis}; remove it or set study.kind = 'train'")
    elif section in ("model", "train", "data") and sub:
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


class _Resolver:
    """Turns grid values into resolved, JSON-able cell configuration."""

    def __init__(self, study: Study, fail: Callable[[str, str], StudyError]) -> None:
        self.study, self.fail = study, fail
        self.registry = study.registry
        self._bound: dict[tuple[str, str], Bound] = {}

    def bind(self, kind: str, value: Any, key: str) -> Bound:
        memo = (kind, canonical_json(value))
        if memo not in self._bound:
            try:
                self._bound[memo] = self.registry.bind(kind, value)
            except SpecError as exc:
                raise self.fail(key, str(exc)) from None
        return self._bound[memo]

    def label(self, axis: str, value: Any) -> Any:
        if axis in PLUGIN_AXES:
            return self.bind(axis, value, f"grid.{axis}").label
        section, _, sub = axis.partition(".")
        if section == "data":
            return self.bind("dataset", {**self.study.data, sub: value}, f"grid.{axis}").params[sub]
        try:
            return SCHEMA[section][sub][1](value)
        except KeyError:
            raise self.fail(
                f"grid.{axis}",
                f"unknown key '{sub}' in [{section}].{did_you_mean(sub, SCHEMA[section])}",
            ) from None
        except _Invalid as exc:
            raise self.fail(f"grid.{axis}", str(exc)) from None

    def plugin(self, kind: str, bound: Bound) -> dict[str, Any]:
        return {
            "name": bound.name,
            "params": dict(bound.params),
            "version": self.registry.version(kind, bound.name),
        }

    def config(self, combo: Mapping[str, Any], seed: int) -> dict[str, Any]:
        study = self.study
        sections = {s: dict(values) for s, values in study.settings.items()}
        data_doc = dict(study.data)
        for axis, value in combo.items():
            section, _, sub = axis.partition(".")
            if section == "data":
                data_doc[sub] = value
            elif sub:
                sections[section][sub] = value
        key = "grid" if any(a.startswith("data.") for a in combo) else "data"
        data = self.bind("dataset", data_doc, key)
        model = sections["model"]
        if study.kind == "signal" and model["depth"] < 1:
            raise self.fail("model.depth", "a signal study needs at least one hidden layer")
        bias_init = self.bind("initializer", model["bias_init"], "model.bias_init")
        config: dict[str, Any] = {
            "format": CELL_FORMAT,
            "kind": study.kind,
            "data": self.plugin("dataset", data),
            "model": {**model, "bias_init": self.plugin("initializer", bias_init)},
            "seed": seed,
        }
        for axis in PLUGIN_AXES:
            if axis in combo:
                config[axis] = self.plugin(axis, self.bind(axis, combo[axis], f"grid.{axis}"))
        if study.kind == "train":
            config["train"] = sections["train"]
            loss = self.bind("loss", combo["loss"], "grid.loss").descriptor
            if study.task not in loss.tasks:  # type: ignore[attr-defined]
                raise self.fail(
                    "grid.loss",
                    f"loss '{loss.name}' does not fit {study.task} data (dataset "
                    f"'{data.name}'); it fits {', '.join(loss.tasks)}.",  # type: ignore[attr-defined]
                )
        return config


def expand(study: Study, resolver: _Resolver | None = None) -> list[Cell]:
    """The study's cells: grid combinations (in file order) times seeds."""
    resolver = resolver or _Resolver(study, lambda key, msg: StudyError(study.source, key, msg))
    axes = list(study.axes)
    cells = []
    for values in itertools.product(*(study.axes[a] for a in axes)):
        combo = dict(zip(axes, values, strict=True))
        labels = {axis: resolver.label(axis, value) for axis, value in combo.items()}
        for seed in study.seeds:
            config = resolver.config(combo, seed)
            cells.append(Cell(cell_id(config), config, labels))
    return cells


def resolved_document(study: Study) -> dict[str, dict[str, Any]]:
    """The study with every default filled in, as saved beside the results.

    Running the saved file again gives the same cells (plugin files become absolute paths).
    """
    data = study.registry.bind("dataset", study.data)
    model = dict(study.settings["model"])
    model["bias_init"] = study.registry.bind("initializer", model["bias_init"]).label
    document: dict[str, dict[str, Any]] = {
        "study": {
            "name": study.name,
            "title": study.title,
            "kind": study.kind,
            "seeds": list(study.seeds),
            "metric": study.metric,
            "description": study.description,
            "plugins": list(study.registry.files),
        },
        "data": {"name": data.name, **data.params},
        "model": model,
    }
    if study.kind == "train":
        document["train"] = dict(study.settings["train"])
    document["grid"] = {axis: list(values) for axis, values in study.axes.items()}
    return document
