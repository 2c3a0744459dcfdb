"""Study files: TOML (plus ``--set`` overrides) -> a validated :class:`Study` with its cells.

A study names the four parts of deep learning (data, model, loss, optimizer) plus the
initializer and activation, and the grid of choices to compare::

    [study]  name, title, kind ("signal" | "train"), seeds (a count, a list, or seeds until
             decided: "auto" | {half_width, min, max}), description, plugins, metric
    [data]   name = a dataset plugin, and its parameters
    [model]  depth, width, bias, bias_init, dtype                   (benchinit.study.settings)
    [train]  epochs, batch_size, target_accuracy, probe_samples      (kind = "train" only)
    [grid]   initializer, activation, loss, optimizer: a spec or a list of specs; and dotted
             keys such as "model.depth" = [5, 30] over the other sections
    [tune]   plugin parameters tuned per configuration on the validation split
             (kind = "train" only; benchinit.study.tuning)

``[data] validation`` (train studies; default 0.1) is the share of the training split that
benchinit holds out as a validation split (benchinit.study.validation); the dataset plugin never
sees it.

Every combination of the grid's values times every seed is one cell. Everything is checked
here, before anything runs, and the grid is expanded once; errors name the file and the key.
A grid larger than ``max_cells`` is refused before it is expanded.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchinit.errors import BenchinitWarning, StudyError, did_you_mean
from benchinit.metrics import METRICS, default_metric, metric_info
from benchinit.plugins.registry import Registry
from benchinit.plugins.specs import SpecError
from benchinit.study import grid, settings, trials, tuning
from benchinit.study.cells import Cell
from benchinit.study.settings import AUTO, ModelSettings, SeedRule, StudySettings, TrainSettings
from benchinit.study.sources import apply_overrides, read_study
from benchinit.study.tuning import TuneSpec
from benchinit.study.validation import DEFAULT_FRACTION, validation_fraction

DEFAULT_LOSS = grid.DEFAULT_LOSS
DEFAULT_OPTIMIZER = grid.DEFAULT_OPTIMIZER
SECTIONS = ("study", "data", "model", "train", "grid", "tune")
# More cells than this are refused before the grid is expanded (each cell costs memory
# before it runs); pass max_cells=None to allow any number.
MAX_CELLS = 100_000

Fail = Callable[[str, str], StudyError]


@dataclass(frozen=True)
class Study:
    """A validated study and its cells (the grid expanded once)."""

    name: str  # the default results folder is reports/<name>
    title: str
    kind: str  # "signal" | "train"
    seeds: tuple[int, ...]  # every configuration's seeds (with a seed rule: its first round)
    description: str  # Markdown
    metric: str  # the main metric: ranks the leaderboard, compare's default
    task: str  # the dataset's task: "classification" | "regression"
    source: str  # the study file, or "builtin:<name>"
    document: dict[str, Any]  # the study as loaded, overrides applied
    overrides: tuple[str, ...]  # the overrides applied, as given (recorded with results)
    registry: Registry
    axes: dict[str, list[Any]]  # grid axis -> its values, as written
    model: ModelSettings
    train: TrainSettings
    data: dict[str, Any]  # [data]: the dataset's name and parameters, as written
    validation: float  # share of the training split held out (train studies; 0: none)
    tune: TuneSpec | None  # [tune], or None: the grid's values are run as given
    grid_cells: tuple[Cell, ...]
    seeding: SeedRule | None = None  # seeds until decided (target resolved), or fixed seeds

    def cells(self) -> list[Cell]:
        """Every combination of the grid's values times every seed."""
        return list(self.grid_cells)

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        """[model] and [train], checked, defaults filled in."""
        return {"model": settings.as_dict(self.model), "train": settings.as_dict(self.train)}


# --- loading ----------------------------------------------------------------------------


def load_study(
    study: str | Path,
    overrides: Sequence[str] = (),
    *,
    plugins: Sequence[str | Path] = (),
    seeds: int | str | None = None,
    registry: Registry | None = None,
    max_cells: int | None = MAX_CELLS,
) -> Study:
    """Load and validate a study: a path to a TOML file, or a built-in study's name.

    ``overrides`` are ``"key=value"`` strings (``"model.depth=30"``, value in TOML syntax,
    bare words as strings); ``plugins`` are extra plugin files; ``seeds`` replaces
    ``study.seeds`` with ``range(seeds)``, or ``"auto"``: seeds until decided, by the study's
    own ``seeds = {...}`` rule if it has one; ``max_cells`` refuses bigger grids (None: no
    limit). Raises :class:`StudyError` (or PluginError).
    """
    source, text, base = read_study(study)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(source, "", f"is not valid TOML: {exc}") from None
    applied = list(overrides)
    set_keys = apply_overrides(document, overrides, source)
    if seeds is not None:
        table = document.setdefault("study", {})
        if not (seeds == AUTO and isinstance(table, dict) and isinstance(table.get("seeds"), dict)):
            table["seeds"] = seeds
        set_keys.add("study.seeds")
        applied.append(f"study.seeds={seeds}")

    def fail(key: str, message: str) -> StudyError:
        on_line = key in set_keys or key.rpartition(".")[0] in set_keys  # or a part of it
        note = " (set on the command line)" if on_line else ""
        return StudyError(source, key + note, message)

    _check_not_an_axis(set_keys, _grid_table(document, fail), fail)
    return _validate(document, source, base, plugins, registry, fail, tuple(applied), max_cells)


def _check_not_an_axis(set_keys: set[str], axes: dict[str, Any], fail: Fail) -> None:
    """Refuse ``--set model.depth=3`` when ``model.depth`` is a grid axis: the axis's values
    would win and the override would be silently ignored."""
    clashes = sorted(set_keys & set(axes))
    if clashes:
        key = clashes[0]
        raise fail(
            key,
            f"is a grid axis of this study (grid.{key} = {axes[key]!r}), so one value set "
            f"here would be ignored; to run other values set grid.{key}=[...] instead",
        )


# --- validation -------------------------------------------------------------------------


def _validate(
    document: dict,
    source: str,
    base: Path,
    extra_plugins: Sequence[str | Path],
    registry: Registry | None,
    fail: Fail,
    overrides: tuple[str, ...],
    max_cells: int | None,
) -> Study:
    _check_sections(document, fail)
    meta: StudySettings = settings.parse_section("study", document.get("study", {}), fail)
    model: ModelSettings = settings.parse_section("model", document.get("model", {}), fail)
    train: TrainSettings = settings.parse_section("train", document.get("train", {}), fail)
    if meta.kind == "signal" and document.get("train"):
        raise fail(
            "train", "a signal study does not train; remove [train] or set study.kind = 'train'"
        )
    registry = registry or Registry(_plugin_files(meta, base, extra_plugins, fail))
    data = dict(document.get("data", {}))
    data.setdefault("name", "gaussian")
    validation = _validation(data, meta.kind, registry, fail)
    try:
        task = registry.get("dataset", data["name"]).descriptor.task
    except SpecError as exc:
        raise fail("data.name", str(exc)) from None
    axes = _axes(document, meta.kind, task, fail)
    metric = _metric(meta, task, fail)
    rule, seeds, most = settings.seed_plan(meta.seeds, metric_info(metric, meta.kind).bounds)
    tune = _tune(document, axes, registry, meta.kind, task, metric, validation, most, fail)
    resolver = grid.Resolver(
        registry,
        kind=meta.kind,
        task=task,
        sections={"model": settings.as_dict(model), "train": settings.as_dict(train)},
        data=data,
        validation=validation if meta.kind == "train" else None,
        tuned=[p.key for p in tune.params] if tune else (),
        fail=fail,
    )
    _check_labels(resolver, axes, fail)
    total = cell_count(axes, most, tune)
    if max_cells is not None and total > max_cells:
        raise StudyError(
            source,
            "grid",
            f"makes {total:,} cells (the grid's combinations x {'up to ' * bool(rule)}"
            f"{len(most):,} seeds{', and the tuning trials' if tune else ''}), "
            f"more than the limit of {max_cells:,}; shrink the grid or the seeds, or lift "
            "the limit with {max_cells}",
            options={"max_cells": "max_cells=None"},
        )
    name = meta.name or (
        Path(source).stem if not source.startswith("builtin:") else source.split(":", 1)[1]
    )
    cells = tuple(grid.expand(resolver, axes, seeds))
    _check_inert(resolver, tune, fail)
    return Study(
        name=name,
        title=meta.title or name,
        kind=meta.kind,
        seeds=tuple(seeds),
        description=meta.description,
        metric=metric,
        task=task,
        source=source,
        document=document,
        overrides=overrides,
        registry=registry,
        axes=axes,
        model=model,
        train=train,
        data=data,
        validation=validation,
        tune=tune,
        grid_cells=cells,
        seeding=rule,
    )


def cell_count(
    axes: Mapping[str, Sequence[Any]], seeds: Sequence[int], tune: TuneSpec | None
) -> int:
    """How many cells a study makes, counted from its numbers alone: every combination of
    the grid's values x every seed, and for a tuned study every configuration x trial x
    tuning seed. Nothing is built (seeds are lazy ranges, trials are counted from their
    lists' lengths): this is where a study's size is counted, and it is checked before
    anything is expanded."""
    total = grid.count(axes, seeds)
    if tune is not None:
        total += grid.count(axes, tune.seeds) * trials.trial_count(tune)
    return total


def _tune(
    document: dict,
    axes: dict[str, list[Any]],
    registry: Registry,
    kind: str,
    task: str,
    metric: str,
    validation: float,
    seeds: Sequence[int],
    fail: Fail,
) -> TuneSpec | None:
    if "tune" not in document:
        return None
    if kind != "train":
        raise fail("tune", "a signal study does not train, so it has nothing to tune")
    axis = axes.get(grid.VALIDATION_AXIS)
    if (0 in axis) if axis is not None else validation == 0:
        raise fail(
            f"grid.{grid.VALIDATION_AXIS}" if axis is not None else "data.validation",
            "is 0, but [tune] selects on the validation split; set it above 0 (a dataset's "
            "own validation split is used as given, whatever the share)",
        )
    if (seeds[-1] if isinstance(seeds, range) else max(seeds)) >= tuning.TUNE_SEED_BASE:
        raise fail(
            "study.seeds",
            f"a tuned study's seeds must be below {tuning.TUNE_SEED_BASE:,}: tuning seeds are "
            f"numbered from there, and a final run must never repeat a tuning run",
        )
    return tuning.parse_tune(
        document["tune"], axes, registry, kind=kind, task=task, metric=metric, fail=fail
    )


def _check_inert(resolver: grid.Resolver, tune: TuneSpec | None, fail: Fail) -> None:
    """Refuse tuning a parameter with no effect (every trial would be the same run), and
    warn once per setting that was reset because it has none (benchinit.study.inert)."""
    for param in tune.params if tune else ():
        for key, reason in resolver.no_effect.items():
            if param.key == key or param.key.startswith(f"{key}."):
                raise fail(
                    f"tune.{param.key}",
                    f"{key} {reason} in some configuration of this grid, so every trial "
                    "there would be the same run; tune it only where it has an effect",
                )
    for key, reason in resolver.ignored.items():
        warnings.warn(f"{key} {reason}: ignored", BenchinitWarning, stacklevel=4)


def _validation(data: dict[str, Any], kind: str, registry: Registry, fail: Fail) -> float:
    """Pop ``validation`` from [data] (benchinit's key, not the plugin's) and check it."""
    if "validation" not in data:
        return DEFAULT_FRACTION if kind == "train" else 0.0
    if kind != "train":
        raise fail("data.validation", "a signal study does not train: it has no use for it")
    clash = grid.validation_clash(registry, data["name"])
    if clash:
        raise fail("data.validation", clash)
    try:
        return validation_fraction(data.pop("validation"))
    except settings.Invalid as exc:
        raise fail("data.validation", str(exc)) from None


def _check_sections(document: dict, fail: Fail) -> None:
    for section, value in document.items():
        if section not in SECTIONS:
            raise fail(
                section,
                f"unknown section.{did_you_mean(section, SECTIONS)} "
                f"Valid sections: {', '.join(SECTIONS)}.",
            )
        if not isinstance(value, dict):
            raise fail(section, f"must be a table ([{section}]), got {value!r}")


def _plugin_files(
    meta: StudySettings, base: Path, extra: Sequence[str | Path], fail: Fail
) -> list[str]:
    files = [str(p) for p in extra]
    for p in meta.plugins:
        if not (base / p).is_file():
            raise fail("study.plugins", f"plugin file '{base / p}' does not exist")
        files.append(str((base / p).resolve()))
    return files


class DuplicateAxis(ValueError):
    """One grid axis written twice (``"model.depth" = ...`` and ``model.depth = ...``)."""

    def __init__(self, axis: str) -> None:
        self.axis = axis
        super().__init__(axis)


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"depth": [..]}}`` -> ``{"model.depth": [..]}`` (TOML dotted keys).
    DuplicateAxis when two spellings name one axis (TOML itself cannot tell)."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and (prefix or key in grid.SETTING_SECTIONS):
            items = flatten(value, f"{prefix}{key}.").items()
        else:
            items = {prefix + key: value}.items()
        for axis, values in items:
            if axis in flat:
                raise DuplicateAxis(axis)
            flat[axis] = values
    return flat


def _grid_table(document: dict, fail: Fail) -> dict[str, Any]:
    """``[grid]`` with dotted axes flattened; an axis written twice is refused."""
    try:
        return flatten(document.get("grid", {}))
    except DuplicateAxis as exc:
        raise fail(
            f"grid.{exc.axis}",
            f'is given twice (as "{exc.axis}" = [...] and as a nested {exc.axis} = [...]); '
            "keep one",
        ) from None


def _axes(document: dict, kind: str, task: str, fail: Fail) -> dict[str, list[Any]]:
    axes = {
        axis: grid.axis_values(axis, raw, kind, fail)
        for axis, raw in _grid_table(document, fail).items()
    }
    for axis in ("initializer", "activation"):
        if axis not in axes:
            example = "kaiming_normal" if axis == "initializer" else "relu"
            raise fail(
                f"grid.{axis}",
                f'is missing: name at least one {axis}, e.g. {axis} = ["{example}"]',
            )
    if "data.name" in axes:
        raise fail(
            "grid.data.name",
            "datasets cannot vary within a study (their metrics differ); write one study "
            "per dataset",
        )
    if kind == "train":
        axes.setdefault("loss", [DEFAULT_LOSS[task]])
        axes.setdefault("optimizer", [DEFAULT_OPTIMIZER])
    return axes


def _metric(meta: StudySettings, task: str, fail: Fail) -> str:
    metric = meta.metric or default_metric(meta.kind, task)
    if metric not in METRICS[meta.kind]:
        raise fail(
            "study.metric",
            f"unknown metric '{metric}' for a {meta.kind} study."
            f"{did_you_mean(metric, METRICS[meta.kind])} Valid choices: "
            f"{', '.join(METRICS[meta.kind])}.",
        )
    return metric


def _check_labels(resolver: grid.Resolver, axes: dict[str, list[Any]], fail: Fail) -> None:
    """Bind every value once (errors surface here) and refuse one configuration twice."""
    for axis, values in axes.items():
        labels = [resolver.label(axis, v) for v in values]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1}, key=str)
        if dupes:
            raise fail(f"grid.{axis}", f"lists the same configuration twice: {dupes[0]!r}")
