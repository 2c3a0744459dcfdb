"""``[tune]``: which plugin parameters are tuned, their checks, and the values tried.

A study may tune any numeric parameter of a grid axis's plugins, per grid configuration,
on the validation split (DeepOBS's protocol: tune, then rerun the best value over fresh
seeds)::

    [tune]
    "optimizer.lr" = [1e-4, 1e-3, 1e-2, 1e-1]              # an explicit list, or
    "initializer.gain" = {range = [0.5, 2.0], trials = 7}   # a range with a budget
    select = "val_accuracy"   # default: the study's main metric, on the validation split
    seeds = 2                 # tuning seeds per trial
    transfer = {"model.width" = 64}   # optional: reuse width 64's choice (study.transfer)

The trials (:func:`trials`): explicit lists combine as a Cartesian product (first key
slowest); ranges are drawn **jointly** as one deterministic quasi-random sequence in the
unit hypercube (scipy's unscrambled Halton sequence without its first point, the corner
where every parameter sits at its lower bound), so every range must give the same
``trials``. Each point is mapped onto ``[lo, hi]`` linearly (``range``) or in log space
(``log_range``) and rounded to 4 significant digits (integer parameters to integers;
points that then coincide are tried once, and a range whose every point rounds to one
value is refused: it would tune nothing). In one dimension the first ``2^k - 1`` points
are the regular interior grid ``lo + (hi - lo) i / 2^k``: ``trials = 7`` on
``log_range = [1e-4, 1]`` tries 3.162e-4, 1e-3, ..., 0.3162 (the bounds themselves are not
tried). Lists and ranges together: every combination of the lists times every range point.

Tuning seeds are ``TUNE_SEED_BASE + i``, disjoint from the study's seeds, so the final
runs of the chosen value never repeat a run it was chosen on (that would bias the final
numbers towards the seeds that made it win). The tuning and final cells, and the choice
between them, live downstream in benchinit.execution.stages.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchinit.errors import did_you_mean
from benchinit.lazy import lazy
from benchinit.metrics import TRAIN_METRICS, Direction
from benchinit.plugins.descriptors import Param
from benchinit.plugins.registry import Registry
from benchinit.plugins.specs import SpecError, coerce, describe_type, format_value, parse_spec
from benchinit.results.schema import TUNED_PREFIX
from benchinit.study.grid import PLUGIN_AXES
from benchinit.study.transfer import KEY, parse_transfer

Fail = Callable[[str, str], Exception]
Value = int | float

RESERVED = ("select", "seeds", "transfer")
RANGE_KEYS = ("range", "log_range", "trials")
MAX_TRIALS = 10_000  # per range: every point is drawn and checked when the study loads
DEFAULT_SEEDS = 2
# Tuning seed i is TUNE_SEED_BASE + i: disjoint from any study's own seeds (0, 1, ...).
TUNE_SEED_BASE = 1_000_000
MAX_SEEDS = 2**63 - TUNE_SEED_BASE  # tuning seeds are stored as int64, like every seed
DIGITS = 4  # significant digits of a value drawn from a range (readable, platform-stable)

# The validation metrics: one per test metric, same direction. Which fit which task.
VALIDATION_METRICS: dict[str, Direction] = {
    "val_" + name.removeprefix("test_"): d
    for name, d in TRAIN_METRICS.items()
    if name.startswith("test_")
}
TASK_METRICS = {
    "classification": ("val_accuracy", "val_loss"),
    "regression": ("val_mse", "val_loss"),
}


@dataclass(frozen=True)
class Tuned:
    """One tuned parameter: an explicit list of values, or a range with a budget."""

    axis: str  # a plugin axis: "initializer", "activation", "loss" or "optimizer"
    param: str  # the parameter of every plugin on that axis, e.g. "lr"
    values: tuple[Value, ...] = ()  # the explicit values tried, in file order (or empty)
    low: float = 0.0  # a range's lower bound (0 for a list)
    high: float = 0.0  # a range's upper bound (0 for a list)
    log: bool = False  # True: the range is drawn in log space (log_range)
    trials: int = 0  # a range's number of points (0 for a list)
    integer: bool = False  # the parameter takes integers: drawn values are rounded

    @property
    def key(self) -> str:
        return f"{self.axis}.{self.param}"

    @property
    def column(self) -> str:
        return TUNED_PREFIX + self.key

    @property
    def is_range(self) -> bool:
        return not self.values

    @property
    def log_scale(self) -> bool:
        """Whether a figure should draw this parameter on a log axis."""
        if self.is_range:
            return self.log
        return min(self.values) > 0 and max(self.values) >= 10 * min(self.values)


@dataclass(frozen=True)
class TuneSpec:
    """A validated ``[tune]`` table."""

    params: tuple[Tuned, ...]  # the tuned parameters, in file order
    select: str  # the validation metric that chooses, e.g. "val_accuracy"
    direction: Direction  # "max": higher select is better; "min": lower
    # the tuning seeds every trial runs (TUNE_SEED_BASE + i), a lazy range when parsed
    # (like study.seeds): a count is checked before anything is built from it
    seeds: Sequence[int]
    axes: tuple[str, ...]  # the grid columns that name a configuration, in study order
    # (axis, value as written): final runs use the choice made at that value of the axis
    transfer: tuple[str, Any] | None = None  # benchinit.study.transfer

    @property
    def columns(self) -> tuple[str, ...]:
        """The runs columns of the tuned values: ``tuned.<axis>.<param>``."""
        return tuple(p.column for p in self.params)


# --- parsing --------------------------------------------------------------------------


def parse_tune(
    table: Mapping[str, Any],
    axes: Mapping[str, Sequence[Any]],
    registry: Registry,
    *,
    kind: str,
    task: str,
    metric: str,
    fail: Fail,
) -> TuneSpec:
    """The ``[tune]`` table checked against the study's grid ``axes`` (values as written).

    ``metric`` is the study's main metric (the default ``select`` is its validation twin);
    ``fail(key, message)`` makes the error to raise, as in settings.parse_section.
    """
    if kind != "train":
        raise fail("tune", "only a train study can tune (it selects on the validation split)")
    transfer = parse_transfer(table.get(KEY), axes, fail)
    flat = _flatten({k: v for k, v in table.items() if k != KEY})
    params: list[Tuned] = []
    plugins: dict[str, dict[str, Param]] = {}  # tuned key -> plugin name -> its Param
    for key, raw in flat.items():
        if key in RESERVED:
            continue
        tuned, plugins[key] = _tuned(key, raw, axes, registry, fail)
        params.append(tuned)
    if not params:
        raise fail(
            "tune",
            'names no parameter to tune; add one, e.g. "optimizer.lr" = [1e-3, 1e-2, 1e-1]',
        )
    budgets = {p.key: p.trials for p in params if p.is_range}
    if len(set(budgets.values())) > 1:
        listed = ", ".join(f"{k}: {n}" for k, n in budgets.items())
        raise fail(
            f"tune.{next(iter(budgets))}",
            f"ranges are drawn jointly as one sequence, so they share one budget; give "
            f"every range the same trials ({listed})",
        )
    ranges = [p for p in params if p.is_range]
    for p, drawn in zip(ranges, zip(*draw(ranges), strict=True), strict=True):
        _check_values(p, drawn, plugins[p.key], registry, fail)
    select = _select(flat.get("select"), metric, task, fail)
    count = flat.get("seeds", DEFAULT_SEEDS)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEEDS:
        raise fail(
            "tune.seeds",
            f"must be a number of seeds per trial, at least 1 (and at most {MAX_SEEDS:,}), "
            f"got {count!r}",
        )
    return TuneSpec(
        params=tuple(params),
        select=select,
        direction=VALIDATION_METRICS[select],
        seeds=range(TUNE_SEED_BASE, TUNE_SEED_BASE + count),
        axes=tuple(axes),
        transfer=transfer,
    )


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optimizer": {"lr": ...}}`` (TOML dotted keys) -> ``{"optimizer.lr": ...}``.

    A later key wins, as in [grid]: ``--set tune.optimizer.lr=...`` replaces the file's.
    """
    flat: dict[str, Any] = {}
    for key, value in table.items():
        nested = isinstance(value, dict) and not set(value) & set(RANGE_KEYS)
        flat.update({f"{key}.{k}": v for k, v in value.items()} if nested else {key: value})
    return flat


def _tuned(
    key: str, raw: Any, axes: Mapping[str, Sequence[Any]], registry: Registry, fail: Fail
) -> tuple[Tuned, dict[str, Param]]:
    where = f"tune.{key}"
    axis, dot, param = key.partition(".")
    if not dot or not param:
        raise fail(
            where,
            f"unknown key.{did_you_mean(key, RESERVED)} Valid keys in [tune]: "
            f"{', '.join(RESERVED)}, and '<axis>.<parameter>' with axis one of "
            f"{', '.join(PLUGIN_AXES)}.",
        )
    if axis not in PLUGIN_AXES:
        raise fail(
            where,
            f"cannot tune '{axis}': only plugin parameters can be tuned."
            f"{did_you_mean(axis, PLUGIN_AXES)} Valid axes: {', '.join(PLUGIN_AXES)} "
            "(settings such as model.depth go in [grid]).",
        )
    plugins = _plugin_params(axis, param, axes.get(axis, ()), registry, where, fail)
    integer = any(_integer_only(p.annotation) for p in plugins.values())
    tuned = _values(raw, axis, param, integer, where, fail)
    _check_values(tuned, tuned.values, plugins, registry, fail)
    return tuned, plugins


def _check_values(
    tuned: Tuned,
    values: Sequence[Value],
    plugins: Mapping[str, Param],
    registry: Registry,
    fail: Fail,
) -> None:
    """Each value tried is valid for each plugin, and a range's rounded values stay inside it."""
    outside = sorted({v for v in values if tuned.is_range and not tuned.low <= v <= tuned.high})
    if outside:
        kind, low, high = "log_range" if tuned.log else "range", tuned.low, tuned.high
        fix = f"give integer bounds such as {kind} = [{math.ceil(low)}, {math.floor(high)}], or "
        raise fail(
            f"tune.{tuned.key}",
            f"{kind} = [{format_value(low)}, {format_value(high)}] takes integers, and rounding "
            f"puts {', '.join(map(str, outside))} outside it; "
            f"{fix if math.ceil(low) < math.floor(high) else ''}list the values to try",
        )
    if tuned.is_range and tuned.trials > 1 and len(set(values)) == 1:
        kind = "log_range" if tuned.log else "range"
        rounded = "integers" if tuned.integer else f"{DIGITS} significant digits"
        raise fail(
            f"tune.{tuned.key}",
            f"{kind} = [{format_value(tuned.low)}, {format_value(tuned.high)}] with trials = "
            f"{tuned.trials} tries only {values[0]!r}: every point rounds to it ({rounded}), "
            "so nothing would be tuned; widen the range, or list the values to try",
        )
    for value in values:
        for plugin, param in plugins.items():
            try:
                coerce(value, param, registry.get(tuned.axis, plugin).descriptor)
            except SpecError as exc:
                raise fail(f"tune.{tuned.key}", f"tries {value!r}: {exc}") from None


def _plugin_params(
    axis: str, param: str, values: Sequence[Any], registry: Registry, where: str, fail: Fail
) -> dict[str, Param]:
    """Plugin name -> its parameter ``param``, for every plugin on the grid's axis.

    Fails unless every plugin has ``param``, it is numeric, and no grid value sets it
    (the tried values replace it: two grid values differing only in it would collide).
    """
    if not values:
        raise fail(where, f"the grid has no {axis} axis to tune")
    found: dict[str, Param] = {}
    for value in values:
        try:
            name, args, kwargs = parse_spec(value)
            descriptor = registry.get(axis, name).descriptor
        except SpecError as exc:
            raise fail(f"grid.{axis}", str(exc)) from None
        params = descriptor.parameters()
        numeric = [n for n, p in params.items() if _numeric(p)]
        if param not in params:
            every = f" Every {axis} in the grid must have it." if len(values) > 1 else ""
            raise fail(
                where,
                f"{axis} '{name}' has no parameter '{param}'.{did_you_mean(param, params)} "
                f"Its numeric parameters: {', '.join(numeric) or 'none'}.{every}",
            )
        if not _numeric(params[param]):
            kind = describe_type(params[param].annotation)
            raise fail(
                where,
                f"parameter '{param}' of {axis} '{name}' is not numeric ({kind}); only "
                f"numbers can be tuned. Its numeric parameters: {', '.join(numeric) or 'none'}.",
            )
        if param in kwargs or param in list(params)[: len(args)]:
            raise fail(
                f"grid.{axis}",
                f"{value!r} sets {param}, which [tune] tunes; leave it out of the grid "
                "(the tried values replace it)",
            )
        found[name] = params[param]
    return found


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _numeric(param: Param) -> bool:
    """A parameter that takes numbers: annotated float or int (or a union with one), or
    unannotated with a number as its default."""
    if param.annotation in (inspect.Parameter.empty, typing.Any):
        return _number(param.default)
    return any(m in (int, float) for m in _members(param.annotation))


def _integer_only(annotation: Any) -> bool:
    members = _members(annotation)
    return int in members and float not in members


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _values(raw: Any, axis: str, param: str, integer: bool, where: str, fail: Fail) -> Tuned:
    """A list or range, checked: numbers, non-empty, distinct; ranges ordered with a budget."""
    if isinstance(raw, list):
        if not raw:
            raise fail(where, "is an empty list: give at least one value to try")
        bad = [v for v in raw if not _number(v)]
        if bad:
            raise fail(where, f"must list finite numbers, got {bad[0]!r}")
        values = tuple(v if integer else float(v) for v in raw)  # int -> float as specs do
        if len(set(values)) != len(values):
            raise fail(where, f"lists a value twice: {list(raw)!r}")
        return Tuned(axis, param, values=values, integer=integer)
    if not isinstance(raw, dict):
        raise fail(
            where,
            f"must be a list of values or a range such as {{log_range = [1e-4, 1.0], "
            f"trials = 8}}, got {raw!r}",
        )
    for k in raw:
        if k not in RANGE_KEYS:
            raise fail(
                where,
                f"unknown key '{k}' in a range.{did_you_mean(k, RANGE_KEYS)} "
                f"Valid keys: {', '.join(RANGE_KEYS)}.",
            )
    kinds = [k for k in ("range", "log_range") if k in raw]
    if len(kinds) != 1:
        raise fail(where, "a range needs exactly one of range = [lo, hi] or log_range = [lo, hi]")
    bounds, log = raw[kinds[0]], kinds[0] == "log_range"
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(_number(b) for b in bounds)):
        raise fail(where, f"{kinds[0]} must be two finite numbers [lo, hi], got {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if not low < high:
        raise fail(where, f"{kinds[0]} must have lo < hi, got {bounds!r}")
    if log and low <= 0:
        raise fail(where, f"log_range needs positive bounds, got {bounds!r}; use range instead")
    budget = raw.get("trials")
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_TRIALS:
        raise fail(where, f"a range needs trials = 1 to {MAX_TRIALS:,} values, got {budget!r}")
    return Tuned(axis, param, low=low, high=high, log=log, trials=budget, integer=integer)


def _select(value: Any, metric: str, task: str, fail: Fail) -> str:
    valid = TASK_METRICS[task]
    if value is None:
        twin = "val_" + metric.removeprefix("test_")
        return twin if metric.startswith("test_") and twin in valid else valid[0]
    if not isinstance(value, str) or value not in valid:
        if isinstance(value, str) and value.startswith("test_"):
            reason = (
                "tuning selects on the validation split only: the test split is read for "
                f"the final numbers alone. Use '{'val_' + value.removeprefix('test_')}'"
                f" or another of: {', '.join(valid)}."
            )
        else:
            hint = did_you_mean(value, valid) if isinstance(value, str) else ""
            reason = f"unknown validation metric {value!r} for {task}.{hint} Valid choices: "
            reason += f"{', '.join(valid)}."
        raise fail("tune.select", reason)
    return value


# --- trials -----------------------------------------------------------------------


def draw(tuned: Sequence[Tuned]) -> list[tuple[Value, ...]]:
    """The ranges' joint points (see the module docstring), rounded, duplicates dropped."""
    if not tuned:
        return [()]
    sequence = lazy("scipy.stats").qmc.Halton(len(tuned), scramble=False)
    sequence.fast_forward(1)  # skip the origin: every parameter at its lower bound
    points = []
    for unit in sequence.random(tuned[0].trials):
        point = []
        for u, p in zip(unit, tuned, strict=True):
            if p.log:
                x = math.exp(math.log(p.low) + float(u) * (math.log(p.high) - math.log(p.low)))
            else:
                x = p.low + float(u) * (p.high - p.low)
            point.append(round(x) if p.integer else float(f"{x:.{DIGITS}g}"))
        points.append(tuple(point))
    return list(dict.fromkeys(points))
