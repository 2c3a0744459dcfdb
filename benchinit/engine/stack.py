"""From a batch of cells to what the engine computes on: the device, the data, a seeded stack.

- :func:`resolve_device` and :func:`device_name`: where a run computes, and how it is named in
  the results;
- :func:`load_data`: a cell's dataset, loaded once per process and checked
  (:func:`check_data`: a dataset that returns NaN inputs or an empty split is a data error,
  not a diverging network; :func:`dataset_size`: a ``size`` that does not give three
  non-negative integers is a plugin error);
- :func:`derive_seed`: independent seeds per purpose of a cell's seed;
- :func:`build_stack`: one stacked model with a member per cell, each initialized by its own
  initializer from its own seed; a member whose initializer raises is dropped and reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from benchinit.engine.model_plugin import inputs_of, model_of, model_shape
from benchinit.engine.models import StackedMLP
from benchinit.engine.parametrize import model_scales, rescale_init
from benchinit.engine.splits import split_validation
from benchinit.errors import BenchinitError, error_text, plugin_failed
from benchinit.plugins.descriptors import (
    Activation,
    Bound,
    Data,
    Dataset,
    Initializer,
)
from benchinit.plugins.registry import Registry
from benchinit.study.cells import Cell, canonical_json
from benchinit.study.parametrization import Scales
from benchinit.study.settings import SQRT_DEPTH, precision_of
from benchinit.study.validation import validation_seed

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# --- devices ------------------------------------------------------------------------------


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; checks an explicit device."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchinitError(
            f"{name!r} is not a device; use auto, cpu or cuda[:N] (option {{device}})",
            options={"device": "device"},
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise BenchinitError(
            f"device {name!r}: benchinit computes on cpu or cuda[:N], or auto to take CUDA "
            "when present (option {device})",
            options={"device": "device"},
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchinitError(
            f"device {name!r}: CUDA is not available here (torch {torch.__version__}); use "
            "cpu, or auto to take CUDA when present (option {device})",
            options={"device": "device"},
        )
    return str(device)


def device_name(device: torch.device | str) -> str:
    """How results name a device: ``cpu``, or ``cuda (NVIDIA H200)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


# --- plugins, seeds and data ------------------------------------------------------------


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one purpose ("init", "shuffle") of a cell's seed.

    It depends only on the seed, not on the initializer: cells that differ only in
    initializer see the same data order (common random numbers make comparisons sharper).
    """
    digest = hashlib.sha256(f"benchinit:{purpose}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def bind(registry: Registry, kind: str, plugin: Mapping[str, Any]) -> Bound[Any]:
    """A stored plugin config ({name, params, version}) bound again to its descriptor."""
    return registry.bind(kind, {"name": plugin["name"], **plugin["params"]})


def load_data(registry: Registry, config: Mapping[str, Any]) -> Data:
    """The dataset of a cell, loaded once per process (the last few datasets are kept),
    with its validation split carved out when the cell asks for one."""
    spec = canonical_json({"name": config["name"], **config["params"]})
    return _load_data(registry, spec, float(config.get("validation", 0.0)))


@functools.lru_cache(maxsize=4)
def _load_data(registry: Registry, spec: str, validation: float) -> Data:
    bound = registry.bind("dataset", json.loads(spec))
    dataset_size(registry, bound)  # a broken size() fails the cells, as broken data does
    data = check_data(bound(), bound)
    if validation > 0 or data.x_val is not None:
        seed = validation_seed(bound.name, bound.params)
        data = split_validation(data, validation, seed, bound.name)
    return data


def dataset_size(registry: Registry, bound: Bound[Dataset]) -> tuple[int, int, int] | None:
    """(train samples, test samples, features) from the dataset's ``size`` (None without
    one). Raises ValueError, naming the dataset and its plugin, unless ``size`` returns
    three non-negative integers (a NaN, a string or a float is the plugin's bug, never a
    number to compute with)."""
    size = bound.descriptor.size
    if size is None:
        return None
    value = size(**bound.params)
    if (
        isinstance(value, tuple | list)
        and len(value) == 3
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        and all(v >= 0 for v in value)
    ):
        train, test, features = (int(v) for v in value)
        return train, test, features
    plugin = registry.get("dataset", bound.name).plugin.describe()
    raise ValueError(
        f"dataset '{bound.name}' of {plugin}: size() must return (train samples, test "
        f"samples, features) as three non-negative integers, got {value!r}"
    )


ARRAYS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")


def check_data(data: Any, bound: Bound[Any]) -> Data:
    """``data`` checked: raise ValueError (TypeError) unless it is a usable :class:`Data`
    for its dataset plugin. Returned with numpy arrays taken as tensors (copied, dtype
    kept): a plugin may return either, in any of the splits."""
    name = bound.name
    if not isinstance(data, Data):
        raise TypeError(f"dataset '{name}' returned {type(data).__name__}, not benchinit.Data")
    data = _tensors(data, name)
    if data.task != bound.descriptor.task:
        raise ValueError(
            f"dataset '{name}' declares task {bound.descriptor.task!r} "
            f"but returned {data.task!r} data"
        )
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x.dim() != 2 or len(x) != len(y):
            raise ValueError(
                f"dataset '{name}': x_{split} must be [n, features] with one "
                f"target per row, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if len(x) == 0:
            raise ValueError(f"dataset '{name}': the {split} split is empty")
        if not torch.isfinite(x).all():
            raise ValueError(f"dataset '{name}': x_{split} holds NaN or infinite values")
        if y.is_floating_point() and not torch.isfinite(y).all():
            raise ValueError(f"dataset '{name}': y_{split} holds NaN or infinite values")
    if data.x_train.shape[1] != data.x_test.shape[1]:
        raise ValueError(f"dataset '{name}': train and test inputs differ in features")
    if data.shape is not None and math.prod(data.shape) != data.x_train.shape[1]:
        raise ValueError(
            f"dataset '{name}': shape {tuple(data.shape)} does not hold the "
            f"{data.x_train.shape[1]} features of a sample"
        )
    if data.task == "classification":
        for y in (data.y_train, data.y_test):
            if y.dtype != torch.int64:
                raise ValueError(f"dataset '{name}': class labels must be int64")
            if len(y) and not (int(y.min()) >= 0 and int(y.max()) < data.outputs):
                raise ValueError(
                    f"dataset '{name}': class labels must lie in 0..{data.outputs - 1}"
                )
    return data


def _tensors(data: Data, name: str) -> Data:
    """``data`` with every array a tensor: a numpy array is copied into one (its dtype
    kept); anything else is a TypeError naming the dataset and the array."""
    changed: dict[str, Any] = {}
    for field in ARRAYS:
        value = getattr(data, field)
        if value is None or isinstance(value, torch.Tensor):
            continue
        if isinstance(value, np.ndarray):
            try:
                changed[field] = torch.tensor(value)
                continue
            except (TypeError, RuntimeError) as exc:  # object or string arrays
                reason = f"a numpy array of dtype {value.dtype} ({exc})"
        else:
            reason = type(value).__name__
        raise TypeError(
            f"dataset '{name}': {field} must be a torch.Tensor or a numpy array of numbers, "
            f"got {reason}"
        )
    return dataclasses.replace(data, **changed) if changed else data


# --- the stacked model --------------------------------------------------------------------


def branch_scale(model: Mapping[str, Any]) -> float | None:
    """A cell's residual branch scale alpha (None: a plain network)."""
    residual = model.get("residual", False)
    if residual == SQRT_DEPTH:
        return 1.0 / math.sqrt(max(int(model["depth"]), 1))
    return None if residual is False or residual is None else float(residual)


@contextlib.contextmanager
def computing(model: Mapping[str, Any], device: torch.device) -> Iterator[None]:
    """The numerics of a cell's forward passes: autocast to bfloat16 for ``bf16`` (float32
    master weights; callers reduce losses and metrics in float32), TF32 matmuls for
    ``tf32`` (CUDA only), plain otherwise. Statistics are computed outside it."""
    kind = precision_of(model)
    if kind == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    elif kind == "tf32":
        previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
    else:
        yield


def check_precisions(cells: Sequence[Cell], device: str) -> list[str]:
    """Refuse precisions the device cannot run (tf32 off CUDA); return warnings for those it
    runs slowly (bf16 without fast bfloat16 matmuls)."""
    kinds = {precision_of(c.config["model"]) for c in cells if "model" in c.config}
    kind = torch.device(device).type
    if "tf32" in kinds and kind != "cuda":
        raise BenchinitError(
            f"precision 'tf32' needs a CUDA device; this run computes on {device}. Use "
            "float32 or bf16 there, or run on CUDA (option {device})",
            options={"device": "device"},
        )
    if "bf16" in kinds and not fast_bf16(device):
        return [
            f"{device_name(device)} has no fast bfloat16 matrix multiply: bf16 cells run "
            "correctly, but no faster (likely slower) than float32"
        ]
    return []


def fast_bf16(device: str) -> bool:
    """Whether the device multiplies bfloat16 matrices natively (AVX512-BF16/AMX, CUDA)."""
    if torch.device(device).type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def init_scales(model: Any) -> dict[str, list[float]]:
    """Per member, the weight and bias scales of its hidden layers at initialization, as
    mean-field theory reads them: ``sigma_w`` = sqrt(fan_in * mean W^2) and ``sigma_b`` =
    sqrt(mean b^2), averaged (in square) over the hidden layers. Measured, so they are
    right for any initializer plugin; the report places cells on the phase diagram by them.
    MLPs only (a convolution's weights are no mean-field layer): ``{}`` for other models.
    The weights are the effective ones, times their layer's multiplier (NTK draws sqrt(n)
    times larger and multiplies by n^-1/2: the network's sigma_w is the standard one)."""
    if not isinstance(model, StackedMLP):
        return {}
    weights = model.weights  # [G, out, in], multipliers applied
    w2 = torch.stack(
        [
            weights[i].detach().double().square().mean((1, 2)) * weights[i].shape[2]
            for i in range(model.hidden)
        ],
        1,
    ).mean(1)
    b2 = torch.zeros_like(w2)
    if model.biases is not None:
        b2 = torch.stack(
            [model.biases[i].detach().double().square().mean(1) for i in range(model.hidden)], 1
        ).mean(1)
    return {"sigma_w": w2.sqrt().tolist(), "sigma_b": b2.sqrt().tolist()}


def fingerprints(model: Any) -> list[str]:
    """Per member, a short hash of its initial weights and biases (exact bytes).

    Stored with each run (``init_hash``), so compare can tell whether the initial weights
    changed between two runs (an initializer's random stream, a torch release) or only
    the training did.
    """
    tensors = [*model.kernels, *(model.biases or [])]
    digests = [hashlib.sha256() for _ in range(model.members)]
    for tensor in tensors:
        values = tensor.detach().cpu().contiguous()
        for g, digest in enumerate(digests):
            digest.update(values[g].numpy().tobytes())
    return [d.hexdigest()[:16] for d in digests]


def build_stack(
    cells: Sequence[Cell],
    registry: Registry,
    sizes: Sequence[int],
    *,
    head: bool,
    activation: Bound[Activation],
    device: torch.device,
    calibration_x: torch.Tensor,
    shape: Sequence[int] | None = None,
) -> tuple[Any, list[Cell], dict[str, str]]:
    """A stacked model (the cells' model plugin) with one member per cell, each initialized
    by its own initializer from a generator seeded by its own seed. Members whose
    initializer raised are dropped and reported in the returned ``{cell id: error}``.
    ``sizes``: [features, ..., outputs if head]; ``shape``: one sample's (image) shape.
    """
    model_cfg = cells[0].config["model"]
    scales = model_scales(model_cfg, len(sizes) - 1, len(sizes) - 1 - int(head))
    plugin = model_of(registry, model_cfg)
    inputs = inputs_of(plugin, sizes[0], shape)
    outputs = sizes[-1] if head else 0
    model = plugin(
        model_shape(model_cfg, len(cells), inputs, outputs, residual=branch_scale(model_cfg))
    )
    if any(s != Scales() for s in scales):
        if not isinstance(model, StackedMLP):  # a plugin that claims to honour it
            raise BenchinitError(
                f"model.parametrization = {model_cfg.get('parametrization')!r} is implemented "
                "for the MLP's layers only (benchinit.engine.parametrize); model "
                f"{plugin.name!r} builds {type(model).__name__}"
            )
        model.multipliers = [scale.multiplier for scale in scales]
    bias_init = bind(registry, "initializer", model_cfg["bias_init"])
    failures: dict[str, str] = {}
    initializers: dict[int, tuple[Bound[Initializer], torch.Generator]] = {}
    for g, cell in enumerate(cells):
        try:
            init = bind(registry, "initializer", cell.config["initializer"])
            generator = torch.Generator().manual_seed(derive_seed(cell.seed, "init"))
            model.initialize_member(g, init, bias_init, activation, generator)
            initializers[g] = (init, generator)
        except BaseException as exc:  # plugin code: sys.exit fails its cell only
            if not plugin_failed(exc):
                raise
            failures[cell.id] = error_text(exc)
    rescale_init(model, scales)  # the parametrization's initial scales (1 in standard)
    model.to(device)
    for g, (init, generator) in initializers.items():
        calibrate = init.descriptor.calibrate
        if calibrate is None:
            continue
        try:
            calibrate(
                model.member(g, activation),
                calibration_x,
                generator,
                activation,
                **init.call_params,
            )
        except BaseException as exc:
            if not plugin_failed(exc):
                raise
            failures[cells[g].id] = error_text(exc)
    kept = [g for g, cell in enumerate(cells) if cell.id not in failures]
    if len(kept) < len(cells):
        model.keep(kept)
    return model, [cells[g] for g in kept], failures
