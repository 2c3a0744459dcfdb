"""The sections of a study file: one frozen dataclass per section, a comment on every field.

Each field's ``check`` (in its metadata) validates a value as written in TOML and returns it
in its resolved form; :func:`parse_section` applies them, rejects unknown keys with a "did
you mean", and fills defaults. ``[data]`` is free-form (a dataset plugin's parameters,
checked against its signature) and ``[grid]`` is checked by benchinit.study.load.

Numbers are finite: no setting needs inf or NaN, and refusing them keeps ``meta.json`` valid
JSON (JSON has no Infinity or NaN; ``JSON.parse`` rejects Python's spelling of them).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchinit.errors import did_you_mean
from benchinit.study import parametrization as pz


class Invalid(ValueError):
    """A value failed its check; the message completes "key ...". ``part``: the key inside
    a table value that is wrong (``half_width`` of ``study.seeds``), named in the error."""

    def __init__(self, message: str, part: str = "") -> None:
        super().__init__(message)
        self.part = part


Check = Callable[[Any], Any]


def setting(default: Any, check: Check, *, plugin: str | None = None) -> Any:
    """A field checked by ``check``; ``plugin``: its value is a spec of that plugin kind."""
    return field(default=default, metadata={"check": check, "plugin": plugin})


# --- value checks ------------------------------------------------------------------------


def integer(minimum: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be an integer, got {value!r}")
        if value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}")
        return value

    return check


def fraction(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise Invalid(f"must be a number in (0, 1], got {value!r}")
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {value!r}")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {value!r}")
    return value


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def folder_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise Invalid(f"must be a folder-safe name (letters, digits, '_', '.', '-'), got {value!r}")
    return value


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            hint = did_you_mean(value, options) if isinstance(value, str) else ""
            raise Invalid(
                f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}.{hint}"
            )
        return value

    return check


MAX_SEED = 2**63 - 1  # seeds are stored as int64


def seed_list(value: Any) -> Sequence[int] | SeedRule:
    """An int n (seeds 0..n-1, kept as a lazy ``range``), a list of distinct seeds, or a
    :class:`SeedRule`: ``"auto"`` or a table ``{half_width = ..., min = ..., max = ...}``."""
    if isinstance(value, SeedRule):  # already resolved
        return value
    if value == AUTO or isinstance(value, dict):
        return SeedRule.parse(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise Invalid(f"must be a positive number of seeds or a list of seeds, got {value}")
        return range(value)
    if isinstance(value, list) and value:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise Invalid(f"must list non-negative integers, got {value!r}")
        if max(value) > MAX_SEED:
            raise Invalid(f"must list seeds of at most {MAX_SEED:,} (2^63 - 1), got {max(value)}")
        if len(set(value)) != len(value):
            raise Invalid(f"lists a seed twice: {value!r}")
        return tuple(value)
    if isinstance(value, range | tuple):  # already resolved
        return value
    hint = did_you_mean(value, [AUTO]) if isinstance(value, str) else ""
    raise Invalid(
        'must be a number of seeds, a non-empty list of seeds, "auto", or a table such as '
        f"{{half_width = 0.005, min = 3, max = 20}} (seeds until decided), got {value!r}.{hint}"
    )


AUTO = "auto"


@dataclass(frozen=True)
class SeedRule:
    """``[study] seeds = "auto"`` or ``{half_width = 0.005, min = 3, max = 20}``: seeds
    until decided (benchinit.execution.seeding). A first round runs seeds 0..min-1 of every
    configuration; each later round doubles the seeds of the configurations whose 95%
    interval on the main metric is still wider than the target, up to ``max``.

    The target is ``half_width`` (the metric's units) or ``relative_half_width`` (a share
    of the configuration's |mean|); with neither, :meth:`resolved` picks the metric's
    default: 0.5% of its range for metrics bounded on both sides (half a point of
    accuracy), else 1% of |mean| (compare's default tolerances, benchinit.gate.verdicts).
    """

    half_width: float | None = None  # stop when the interval's half-width is at most this
    relative_half_width: float | None = None  # ... or at most this share of |mean|
    min: int = 3  # seeds of the first round (an interval needs 2; 3 is the usual count)
    max: int = 20  # seeds per configuration, at most

    KEYS = ("half_width", "relative_half_width", "min", "max")
    MAX = 1000  # a larger max is refused: every seed is one cell per configuration
    RANGE_SHARE = 0.005  # default target of a bounded metric: this share of its range
    RELATIVE = 0.01  # default target of an unbounded metric: this share of |mean|

    @classmethod
    def parse(cls, value: Any) -> SeedRule:
        """``"auto"`` (every default) or a table; Invalid names the wrong key."""
        table = {} if value == AUTO else dict(value)
        for key in table:
            if key not in cls.KEYS:
                raise Invalid(
                    f"unknown key.{did_you_mean(key, cls.KEYS)} Valid keys: "
                    f"{', '.join(cls.KEYS)} (e.g. {{half_width = 0.005, min = 3, max = 20}}).",
                    key,
                )
        for key in ("half_width", "relative_half_width"):
            if key in table:
                table[key] = _positive(table[key], key)
        if "half_width" in table and "relative_half_width" in table:
            raise Invalid("gives both half_width and relative_half_width; give one target")
        low = table["min"] = _count(table.get("min", cls.min), "min", 2)
        table["max"] = _count(table.get("max", max(cls.max, low)), "max", low)
        return cls(**table)

    def resolved(self, bounds: tuple[float, float]) -> SeedRule:
        """The rule with its default target filled in, for a metric with these bounds."""
        if self.half_width is not None or self.relative_half_width is not None:
            return self
        low, high = bounds
        if math.isfinite(low) and math.isfinite(high):
            return dataclasses.replace(self, half_width=self.RANGE_SHARE * (high - low))
        return dataclasses.replace(self, relative_half_width=self.RELATIVE)

    def table(self) -> dict[str, Any]:
        """The rule as written in a study file (unset targets left out)."""
        return {k: getattr(self, k) for k in self.KEYS if getattr(self, k) is not None}

    def target_text(self) -> str:
        """'±0.005' or '±1% of the mean'."""
        if self.half_width is not None:
            return f"±{self.half_width:.3g}"
        return f"±{100 * (self.relative_half_width or 0):.3g}% of the mean"


def seed_plan(
    seeds: Sequence[int] | SeedRule, bounds: tuple[float, float]
) -> tuple[SeedRule | None, Sequence[int], Sequence[int]]:
    """(the seed rule, its target resolved for a metric with these ``bounds``, or None; the
    seeds every configuration runs first; the most seeds a configuration may reach)."""
    if not isinstance(seeds, SeedRule):
        return None, seeds, seeds
    rule = seeds.resolved(bounds)
    return rule, range(rule.min), range(rule.max)


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise Invalid(
            "must be a positive finite number (the half-width of the 95% interval to stop "
            f"at{', as a share of |mean|' if key.startswith('relative') else ''}), got {value!r}",
            key,
        )
    return float(value)


def _count(value: Any, key: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= SeedRule.MAX:
        least = f"min ({low})" if key == "max" else f"{low} (an interval needs two seeds)"
        raise Invalid(f"must be an integer from {least} to {SeedRule.MAX}, got {value!r}", key)
    return value


def branch_scale(value: Any) -> float | str | bool:
    """A residual branch's scale alpha: a positive number, "1/sqrt(depth)", or false (a
    plain network; false rather than none, so tables and labels can show it)."""
    if value is None or value is False:
        return False
    if value == SQRT_DEPTH:
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < math.inf  # inf is no scale, and meta.json has no Infinity
    ):
        raise Invalid(
            f'must be a positive finite number (the branch scale alpha), "{SQRT_DEPTH}" or '
            f"false, got {value!r}"
        )
    return float(value)


def paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"must be a list of file paths, got {value!r}")
    return tuple(value)


def spec(value: Any) -> Any:
    if not isinstance(value, str | dict):
        raise Invalid(f'must be a spec such as "zeros" or an inline table, got {value!r}')
    return value


# --- sections ----------------------------------------------------------------------------

SQRT_DEPTH = "1/sqrt(depth)"
PRECISIONS = ("float32", "float64", "bf16", "tf32")


@dataclass(frozen=True)
class StudySettings:
    """``[study]``: what the study is and how it is reported."""

    name: str | None = setting(None, folder_name)  # results folder name (default: file stem)
    title: str | None = setting(None, optional_text)  # report title (default: the name)
    kind: str = setting("train", choice("train", "signal"))  # train, or statistics at init
    # n (seeds 0..n-1), a list of seeds, or a SeedRule ("auto", {half_width, min, max})
    seeds: Sequence[int] | SeedRule = setting(3, seed_list)
    description: str = setting("", text)  # Markdown shown at the top of the report
    plugins: tuple[str, ...] = setting((), paths)  # plugin files, relative to the study
    metric: str | None = setting(None, optional_text)  # main metric (default: by kind, task)


@dataclass(frozen=True)
class ModelSettings:
    """``[model]``: the model every cell builds (``name``; the MLP by default: depth x
    (Linear -> activation) [-> head]). A model plugin reads the settings it honours."""

    depth: int = setting(2, integer(0))  # hidden layers (0: a linear model)
    width: int = setting(100, integer(1))  # units per hidden layer
    bias: bool = setting(True, boolean)  # affine layers with a bias
    bias_init: Any = setting("zeros", spec, plugin="initializer")  # a spec for the biases
    # float32 | float64 | bf16 (autocast matmuls to bfloat16; float32 master weights,
    # optimizer state and reductions) | tf32 (CUDA only: TF32 matmuls). Default: dtype's.
    precision: str | None = setting(None, lambda v: None if v is None else choice(*PRECISIONS)(v))
    dtype: str = setting("float32", choice("float32", "float64"))  # older spelling of precision
    residual: float | str | bool = setting(False, branch_scale)  # h + alpha phi(W h + b)
    norm: str = setting("none", choice("none", "layer", "batch"))  # normalize pre-activations
    # standard | ntk | mup: how layers scale with width (benchinit.study.parametrization)
    parametrization: str = setting("standard", choice(*pz.PARAMETRIZATIONS))
    base_width: int = setting(pz.DEFAULT_BASE_WIDTH, integer(1))  # ntk/mup equal standard here
    mup_output: str = setting("initializer", choice(*pz.OUTPUT_INITS))  # muP head: draw or zero
    # the model plugin (benchinit list models): mlp, cnn, or a spec such as "cnn(kernel=5)"
    name: Any = setting("mlp", spec, plugin="model")


@dataclass(frozen=True)
class TrainSettings:
    """``[train]`` (kind = "train" only): how every cell trains and is evaluated."""

    epochs: int = setting(10, integer(0))  # passes over the training split
    batch_size: int = setting(128, integer(1))  # samples per step, per member
    target_accuracy: float | None = setting(None, fraction)  # record first epoch reaching it
    probe_samples: int = setting(256, integer(1))  # training samples for layer statistics
    # the coordinate check over the first k steps (benchinit.engine.coordinates); 0: none
    coord_steps: int = setting(0, integer(0))


SECTIONS: dict[str, type] = {
    "study": StudySettings,
    "model": ModelSettings,
    "train": TrainSettings,
}


def keys(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(SECTIONS[section])]


def check_value(section: str, key: str, value: Any) -> Any:
    """One value of a section checked (Invalid when wrong, KeyError for an unknown key)."""
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    return fields[key].metadata["check"](value)


def default(section: str, key: str) -> Any:
    """A setting's default value, checked (as a section holds it when the key is unset)."""
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    return fields[key].metadata["check"](fields[key].default)


def plugin_kind(section: str, key: str) -> str | None:
    """The plugin kind a setting's value is a spec of (``model.bias_init``: initializer)."""
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    return fields[key].metadata["plugin"] if key in fields else None


def parse_section(
    section: str, table: Mapping[str, Any], fail: Callable[[str, str], Exception]
) -> Any:
    """The section's dataclass from its TOML table: checked, defaults filled in.

    ``fail(key, message)`` makes the error to raise (it names the file).
    """
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise fail(
                f"{section}.{key}",
                f"unknown key.{did_you_mean(key, fields)} "
                f"Valid keys in [{section}]: {', '.join(fields)}.",
            )
        try:
            values[key] = fields[key].metadata["check"](value)
        except Invalid as exc:
            where = f"{section}.{key}" + (f".{exc.part}" if exc.part else "")
            raise fail(where, str(exc)) from None
    for key, f in fields.items():
        if key not in values:
            values[key] = f.metadata["check"](f.default)
    return cls(**values)


# Keys added to [model] after cell format 1: they enter a cell's configuration (and so its
# id) only when they differ from these values, so results stored before they existed stay
# valid and are not computed again.
LATER_MODEL_KEYS: dict[str, Any] = {"precision": None, "residual": False, "norm": "none"}
LATER_MODEL_KEYS |= {"name": "mlp", "parametrization": "standard", "mup_output": "initializer"}
LATER_MODEL_KEYS |= {"base_width": pz.DEFAULT_BASE_WIDTH}
LATER_TRAIN_KEYS: dict[str, Any] = {"coord_steps": 0}  # the same for [train]


def train_config(train: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's ``train`` configuration: the [train] values but later keys at their default."""
    return {k: v for k, v in train.items() if LATER_TRAIN_KEYS.get(k, object()) != v}


def precision_of(model: Mapping[str, Any]) -> str:
    """The one reader of a precision: float32, float64, bf16 or tf32, from a cell's ``model``
    configuration or a [model] table (``precision`` wins over its older spelling ``dtype``,
    which :func:`model_config` keeps in the cell ids)."""
    return str(model.get("precision") or model.get("dtype") or "float32")


def documented_model(model: Mapping[str, Any]) -> dict[str, Any]:
    """A [model] table as the README documents it: one ``precision``, no ``dtype`` (what the
    resolved study.toml and meta.json hold; reading it back gives the same cells)."""
    table = {k: v for k, v in model.items() if k != "dtype"}
    return {**table, "precision": precision_of(model)}


def model_config(model: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's ``model`` configuration from the [model] values (grid values applied).

    ``precision`` and the older ``dtype`` agree or one is left at its default: float64
    stores parameters in float64, every other precision in float32 (``dtype``), and bf16 /
    tf32 are recorded as ``precision``. Raises Invalid when they contradict each other.
    """
    config = dict(model)
    precision = config.get("precision")
    if precision is not None:
        dtype = "float64" if precision == "float64" else "float32"
        if config["dtype"] != "float32" and config["dtype"] != dtype:
            raise Invalid(f"precision {precision!r} contradicts dtype {config['dtype']!r}")
        config["dtype"] = dtype
        config["precision"] = None if precision in ("float32", "float64") else precision
    for key, default in LATER_MODEL_KEYS.items():
        if key in config and config[key] == default:
            del config[key]
    return config


def as_dict(settings: Any) -> dict[str, Any]:
    """A section's values as a plain dict (in field order), as cells and meta.json hold it."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
