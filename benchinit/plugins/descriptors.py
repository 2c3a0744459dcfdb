"""What a plugin provides: one small frozen dataclass per kind.

Every descriptor has a ``name`` (lowercase with underscores, as used in study files), a
callable ``fn`` and a one-line ``doc`` (the first line of ``fn``'s docstring when omitted),
plus the metadata the engine needs for that kind.

Parameters are the **keyword-only** arguments of ``fn``: their defaults are the defaults and
their annotations (``float``, ``int``, ``bool``, ``str``, ``Literal[...]`` and unions of them)
are checked before anything runs. Positional arguments are the contract of the kind and are
supplied by the engine. For example::

    def scaled_normal(weight, generator, activation, *, scale: float = 1.0) -> None:
        "N(0, scale^2 / fan_in): LeCun's normal with a knob."
        weight.normal_(0.0, scale / weight.shape[1] ** 0.5, generator=generator)

    Initializer("scaled_normal", scaled_normal)
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

if TYPE_CHECKING:  # annotations only: the read side (benchinit.report, compare) runs without torch
    import torch

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_RST_LITERAL = re.compile(r"``(.+?)``")
_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+?)`")


def plain(doc: str) -> str:
    """A plugin's doc as plain text: reStructuredText literals (````x````) and roles
    (``:class:`x```) lose their markup; the report renders docs as Markdown instead."""
    return _RST_ROLE.sub(r"\1", _RST_LITERAL.sub(r"\1", doc))


Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Param:
    """One parameter of a plugin callable."""

    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: Any  # a resolved type, or inspect.Parameter.empty
    minimum: float | None = None  # the smallest valid number, where there is one

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def keyword_parameters(fn: Callable[..., Any]) -> dict[str, Param]:
    """The keyword-only parameters of ``fn``, with annotations resolved to types."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: accept any value rather than fail to load
        hints = {}
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin such as torch.tanh: no keywords to know of
        return {}
    params = {}
    for p in signature.parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            params[p.name] = Param(p.name, p.default, hints.get(p.name, inspect.Parameter.empty))
    return params


@dataclass(frozen=True)
class Descriptor:
    """Common part of every descriptor."""

    kind: ClassVar[str] = ""
    name: str
    fn: Callable[..., Any]
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(
                f"{self.kind} name {self.name!r} is not lowercase with underscores "
                "(letters, digits and '_', starting with a letter)"
            )
        if not callable(self.fn):
            raise ValueError(f"{self.kind} {self.name!r}: fn {self.fn!r} is not callable")
        if not self.doc:
            first = (inspect.getdoc(self.fn) or "").strip().splitlines()
            object.__setattr__(self, "doc", first[0] if first else "")

    def parameters(self) -> dict[str, Param]:
        """The parameters a study may set, by name."""
        return keyword_parameters(self.fn)


@dataclass(frozen=True)
class Initializer(Descriptor):
    """Fills one weight matrix (or bias vector) of one model, in place.

    ``fn(weight, generator, activation, **params)``: ``weight`` is a ``[out, in]`` tensor of
    one model (a view into the stacked weights: fill it in place, under ``torch.no_grad``),
    ``generator`` a CPU ``torch.Generator`` seeded for the cell, ``activation`` the cell's
    bound activation (``activation.gain`` is its gain). The engine calls ``fn`` once per
    layer and member; it may be called on a 1-D bias when used as ``model.bias_init``.

    ``calibrate(model, x, generator, activation, **params)`` (optional) makes the initializer
    data-dependent: it is called once per model after ``fn`` filled every layer, with a
    :class:`benchinit.engine.models.ModelView` of that one model (its ``weights``, ``biases`` and
    ``preactivation(layer, x)``) and a batch ``x`` of training inputs, and may rescale the
    weights in place (LSUV does). Signal studies pass their input batch.
    """

    kind: ClassVar[str] = "initializer"
    calibrate: Callable[..., None] | None = None


@dataclass(frozen=True)
class Activation(Descriptor):
    """An elementwise nonlinearity ``fn(x, **params) -> Tensor``.

    ``gain``: the factor Xavier/He-style initializers multiply by when asked for
    ``gain="activation"`` (a float, or a callable of the parameters).
    ``hist_range``: the range the activation histograms cover (values below and above it
    are counted apart, in two more bins); a tuple or a callable of the parameters. A tuple
    is checked here (ValueError: the registry reports it as the plugin's error), a callable's result
    when a cell asks for it (:func:`range_problem`).
    """

    kind: ClassVar[str] = "activation"
    gain: float | Callable[..., float] = 1.0
    hist_range: tuple[float, float] | Callable[..., tuple[float, float]] = (-3.0, 3.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.hist_range):
            problem = range_problem(self.hist_range)
            if problem:
                raise ValueError(
                    f"activation {self.name!r}: hist_range {self.hist_range!r} {problem}"
                )

    def gain_of(self, params: Mapping[str, Any]) -> float:
        return float(self.gain(**params) if callable(self.gain) else self.gain)

    def range_of(self, params: Mapping[str, Any]) -> tuple[float, float]:
        """The histogram range at these parameters; a ValueError naming the activation when
        a callable ``hist_range`` gives no usable range (see :func:`range_problem`)."""
        if not callable(self.hist_range):
            lo, hi = self.hist_range
            return float(lo), float(hi)
        value = self.hist_range(**params)
        problem = range_problem(value)
        if problem:
            raise ValueError(
                f"activation {self.name!r}: hist_range({dict(params)!r}) returned "
                f"{value!r}, which {problem}"
            )
        return float(value[0]), float(value[1])


HIST_LIMIT = 1e30  # a histogram range's ends lie within +-HIST_LIMIT, its width above 1/it


def range_problem(value: Any) -> str:
    """Why ``value`` is not a usable histogram range ("" when it is): two finite numbers,
    low below high, within +-1e30 and at least 1e-30 wide, so that neither the bin width
    nor the scaled float32 values overflow (an infinite or reversed range would record
    garbage histograms as ok)."""
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        return "must be two numbers (low, high)"
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "must be finite"
    if not lo < hi:
        return "must have low below high"
    if max(abs(lo), abs(hi)) > HIST_LIMIT or hi - lo < 1 / HIST_LIMIT:
        return f"must lie within +-{HIST_LIMIT:g} and be at least {1 / HIST_LIMIT:g} wide"
    return ""


@dataclass(frozen=True)
class Loss(Descriptor):
    """A per-sample loss ``fn(pred, target, **params) -> Tensor``.

    ``pred`` is ``[..., B, outputs]``; ``target`` has the same leading dims: ``[..., B]``
    class indices (int64), or ``[..., B, k]`` floats (one-hot classes or regression targets).
    The result is ``[..., B]``: the engine averages over samples and sums over stacked models.

    ``tasks``: the data it fits. ``class_targets``: how classification targets are given
    (``"index"`` or ``"one_hot"``). ``prediction``: ``"point"`` (one output per class or
    target) or ``"mean_var"`` (a mean and a variance per target: twice the outputs).
    """

    kind: ClassVar[str] = "loss"
    tasks: tuple[Task, ...] = ("classification", "regression")
    class_targets: Literal["index", "one_hot"] = "one_hot"
    prediction: Literal["point", "mean_var"] = "point"


def _schedule_params(
    *,
    schedule: Literal["constant", "step", "exponential", "cosine"] = "constant",
    step_size: int = 10,
    gamma: float = 0.1,
    eta_min: float = 0.0,
) -> None:
    """Learning-rate schedule parameters every optimizer accepts (see benchinit.study.schedules)."""


SCHEDULE_PARAMS: dict[str, Param] = {
    **keyword_parameters(_schedule_params),
    # step_size 0 or less has no meaning (e // 0); it is refused, never clamped to 1.
    "step_size": Param("step_size", 10, int, minimum=1),
    # a negative floor would send the cosine schedule's learning rate below 0 (ascent)
    "eta_min": Param("eta_min", 0.0, float, minimum=0.0),
}


@dataclass(frozen=True)
class Optimizer(Descriptor):
    """``fn(params, **params) -> torch.optim.Optimizer`` over a list of tensors.

    ``elementwise``: the update of every parameter entry depends only on that entry's own
    gradient history. Then one optimizer over stacked models is exactly one optimizer per
    model, and the engine trains many models as one. Set it to False for anything that
    mixes entries (norms, clipping by global norm, second-order methods).

    Every optimizer also accepts the schedule parameters ``schedule``, ``step_size``,
    ``gamma`` and ``eta_min`` (benchinit.study.schedules); ``fn`` never sees them.

    ``lr_scaling``: the hook through which a parametrization scales learning rates per
    layer (``[model] parametrization = "mup"``, benchinit.study.parametrization). ``"sgd"``
    (the step is linear in the gradient: SGD, momentum) or ``"adam"`` (the step does not
    change when the gradient is scaled: Adam, AdamW, RMSprop, Adagrad) says which column of
    the table applies, and promises that ``fn`` accepts ``params`` as torch parameter
    groups (a list of ``{"params": [...]}`` dicts) as ``torch.optim`` optimizers do; the
    engine then multiplies each group's ``lr`` by its layer's factor (and divides its
    ``weight_decay``, if any, by it). None (the default): the optimizer cannot honour
    per-layer rates, and a muP study refuses it.
    """

    kind: ClassVar[str] = "optimizer"
    elementwise: bool = True
    lr_scaling: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_scaling not in (None, "sgd", "adam"):
            raise ValueError(
                f"optimizer {self.name!r}: lr_scaling must be None, 'sgd' or 'adam', got "
                f"{self.lr_scaling!r}"
            )

    def parameters(self) -> dict[str, Param]:
        return {**keyword_parameters(self.fn), **SCHEDULE_PARAMS}


@dataclass(frozen=True)
class Data:
    """A dataset, split and on the CPU. Inputs are float32 ``[n, features]``.

    Targets: int64 ``[n]`` class indices for classification, float32 ``[n, targets]`` for
    regression. ``truth`` holds known generating parameters (``linear``'s ``w`` and ``b``).
    ``x_val`` and ``y_val``: a validation split of the dataset's own (optional); without
    one, benchinit carves it from the training split (``[data] validation``). Any of the
    arrays may be a numpy array instead: it is copied into a tensor (its dtype kept) when
    the data is loaded (benchinit.engine.stack.check_data).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: Task
    outputs: int  # classes, or regression targets
    truth: Mapping[str, float] = field(default_factory=dict)
    x_val: torch.Tensor | None = None  # the dataset's own validation inputs, if it has them
    y_val: torch.Tensor | None = None  # and their targets
    # one sample's shape, (channels, height, width) for images, where a model asks for it;
    # the rows of x are that shape flattened (C-order). None: flat features.
    shape: tuple[int, ...] | None = None

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


@dataclass(frozen=True)
class Dataset(Descriptor):
    """``fn(**params) -> Data``: deterministic for given parameters (a fixed, seeded split).

    ``task`` says what the data is for, so a study is checked (loss fits data) before any
    data is loaded; the returned ``Data.task`` must agree.

    ``size`` (optional): ``size(**params) -> (train samples, test samples, features)``
    without making the data, so a run can refuse a size that cannot fit in memory before the
    plugin allocates it (synthetic generators); without it, the data is loaded to look. The
    three must be non-negative integers: anything else fails the dataset's cells.
    """

    kind: ClassVar[str] = "dataset"
    task: Task = "classification"
    size: Callable[..., tuple[int, int, int]] | None = None


@dataclass(frozen=True)
class ReportSection:
    """A section a plugin adds to the HTML report (``benchinit_report_sections``).

    ``text`` is Markdown, rendered with raw HTML disabled; ``table`` a DataFrame (or a list
    of row dicts) shown as an escaped table; ``figure`` an image data URI
    (``data:image/png;base64,...``; see benchinit.figures.drawing.render). Nothing a plugin returns
    is inserted into the page as markup.
    """

    title: str
    text: str = ""
    table: Any = None
    figure: str = ""


KINDS: dict[str, type[Descriptor]] = {
    cls.kind: cls for cls in (Initializer, Activation, Loss, Optimizer, Dataset)
}  # and "model": benchinit.plugins.model_kind.KINDS holds every kind


D = TypeVar("D", bound=Descriptor)


@dataclass(frozen=True, eq=False)
class Bound(Generic[D]):
    """A descriptor with its parameters resolved: what a study's spec turns into.

    ``params`` holds every parameter (defaults filled in); ``label`` is the spec as shown in
    tables: the name plus the parameters that differ from their defaults. Generic over its
    descriptor's class, so ``Bound[Activation]`` type-checks ``bound.descriptor.gain``.
    """

    descriptor: D
    params: Mapping[str, Any]
    label: str

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def gain(self) -> float:
        """The activation's gain at these parameters (activations only)."""
        assert isinstance(self.descriptor, Activation), "gain is defined for activations"
        return self.descriptor.gain_of(self.params)

    @functools.cached_property
    def call_params(self) -> dict[str, Any]:
        """The parameters ``fn`` takes (for optimizers: without the schedule's)."""
        own = keyword_parameters(self.descriptor.fn)
        return {k: v for k, v in self.params.items() if k in own}

    def __call__(self, *args: Any) -> Any:
        return self.descriptor.fn(*args, **self.call_params)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.descriptor.kind,
            self.descriptor.name,
            tuple(sorted((k, repr(v)) for k, v in self.params.items())),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bound) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
