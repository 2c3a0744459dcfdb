"""The unit of work: a batch of cells that run as one stacked model, and what they record.

A :class:`Batch` is plain, picklable data (cells and the registry's spec), so any executor can
ship it to a worker; :func:`run_batch` returns the batch's records as pandas DataFrames.

Failures are results: an exception from one member's initializer fails that cell only, any
other exception fails the batch's cells, each with its error text; the grid goes on.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from benchinit.descriptors import Bound, Data
from benchinit.models import StackedMLP
from benchinit.registry import Registry, RegistrySpec, registry_from
from benchinit.study import Cell, canonical_json

DTYPES = {"float32": torch.float32, "float64": torch.float64}
TABLES = ("runs", "curves", "layers", "histograms")
Records = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Batch:
    """Cells that share everything but initializer and seed, to run as one stack."""

    cells: tuple[Cell, ...]
    registry: RegistrySpec
    device: str
    threads: int = 1
    deterministic: bool = False  # torch.use_deterministic_algorithms in the worker


def run_batch(batch: Batch, registry: Registry | None = None) -> Records:
    """Run one batch (in this process) and return its records; never raises for a plugin."""
    if torch.get_num_threads() != batch.threads:
        torch.set_num_threads(batch.threads)
    if torch.are_deterministic_algorithms_enabled() != batch.deterministic:
        torch.use_deterministic_algorithms(batch.deterministic, warn_only=True)
    start = time.perf_counter()
    try:
        registry = registry or registry_from(batch.registry)
        engine = _engines()[batch.cells[0].kind]
        return engine(list(batch.cells), registry, torch.device(batch.device))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        recorder = Recorder(batch.device, time.perf_counter() - start, len(batch.cells))
        for cell in batch.cells:
            recorder.run(cell, "failed", error=error_text(exc))
        return recorder.frames()


def _engines() -> dict[str, Callable[[list[Cell], Registry, torch.device], Records]]:
    from benchinit.signal import run_signal
    from benchinit.train import run_train

    return {"signal": run_signal, "train": run_train}


def error_text(exc: BaseException) -> str:
    """'ValueError: message (at file.py:12 in fn)': the error and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    return f"{type(exc).__name__}: {exc}{where}"


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one purpose ("init", "shuffle") of a cell's seed.

    It depends only on the seed, not on the initializer: cells that differ only in
    initializer see the same data order (common random numbers make comparisons sharper).
    """
    digest = hashlib.sha256(f"benchinit:{purpose}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def bind(registry: Registry, kind: str, plugin: Mapping[str, Any]) -> Bound:
    """A stored plugin config ({name, params, version}) bound again to its descriptor."""
    return registry.bind(kind, {"name": plugin["name"], **plugin["params"]})


_DATA: dict[str, Data] = {}


def load_data(registry: Registry, config: Mapping[str, Any]) -> Data:
    """The dataset of a cell, loaded once per process (kept for the last few datasets)."""
    key = canonical_json({"name": config["name"], "params": config["params"]})
    if key not in _DATA:
        bound = bind(registry, "dataset", config)
        data = bound()
        _check_data(data, bound)
        if len(_DATA) >= 4:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = data
    return _DATA[key]


def _check_data(data: Data, bound: Bound) -> None:
    name = bound.name
    if not isinstance(data, Data):
        raise TypeError(f"dataset '{name}' returned {type(data).__name__}, not benchinit.Data")
    if data.task != bound.descriptor.task:  # type: ignore[attr-defined]
        raise ValueError(
            f"dataset '{name}' declares task {bound.descriptor.task!r} "  # type: ignore[attr-defined]
            f"but returned {data.task!r} data"
        )
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x.dim() != 2 or len(x) != len(y):
            raise ValueError(
                f"dataset '{name}': x_{split} must be [n, features] with one "
                f"target per row, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
    if data.task == "classification" and data.y_train.dtype != torch.int64:
        raise ValueError(f"dataset '{name}': class labels must be int64")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def build_stack(
    cells: Sequence[Cell],
    registry: Registry,
    sizes: Sequence[int],
    *,
    head: bool,
    activation: Bound,
    device: torch.device,
    calibration_x: torch.Tensor,
) -> tuple[StackedMLP, list[Cell], dict[str, str]]:
    """A stacked model with one member per cell, each initialized by its own initializer
    from a generator seeded by its own seed. Members whose initializer raised are dropped
    and reported in the returned ``{cell id: error}``.
    """
    model_cfg = cells[0].config["model"]
    dtype = DTYPES[model_cfg["dtype"]]
    model = StackedMLP(len(cells), sizes, head=head, bias=model_cfg["bias"], dtype=dtype)
    bias_init = bind(registry, "initializer", model_cfg["bias_init"])
    failures: dict[str, str] = {}
    initializers: dict[int, tuple[Bound, torch.Generator]] = {}
    for g, cell in enumerate(cells):
        try:
            init = bind(registry, "initializer", cell.config["initializer"])
            generator = torch.Generator().manual_seed(derive_seed(cell.seed, "init"))
            model.initialize_member(g, init, bias_init, activation, generator)
            initializers[g] = (init, generator)
        except Exception as exc:
            failures[cell.id] = error_text(exc)
    model.to(device)
    for g, (init, generator) in initializers.items():
        calibrate = init.descriptor.calibrate  # type: ignore[attr-defined]
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
        except Exception as exc:
            failures[cells[g].id] = error_text(exc)
    kept = [g for g, cell in enumerate(cells) if cell.id not in failures]
    if len(kept) < len(cells):
        model.keep(kept)
    return model, [cells[g] for g in kept], failures


class Recorder:
    """Collects a batch's rows column-wise and turns them into the four tables."""

    def __init__(self, device: str, seconds: float, members: int) -> None:
        self.device = device
        self.seconds = seconds / max(members, 1)  # a stack's wall time, shared by its members
        self.runs: list[dict[str, Any]] = []
        self.curves: dict[str, list[Any]] = {
            k: [] for k in ("cell", "epoch", "split", "metric", "value")
        }
        self.layers: dict[str, list[Any]] = {
            k: [] for k in ("cell", "phase", "layer", "metric", "value")
        }
        self.hists: dict[str, list[Any]] = {
            k: [] for k in ("cell", "phase", "layer", "bin", "left", "right", "count")
        }

    def run(self, cell: Cell, status: str, error: str = "", **metrics: Any) -> None:
        self.runs.append(
            {
                "cell": cell.id,
                **cell.labels,
                "seed": cell.seed,
                "status": status,
                "error": error,
                **metrics,
                "seconds": self.seconds,
                "device": self.device,
            }
        )

    def curve(
        self, cells: Sequence[Cell], epoch: int, split: str, metric: str, values: Sequence[float]
    ) -> None:
        self._rows(self.curves, cells, (epoch, split, metric), values)

    def layer(
        self, cells: Sequence[Cell], phase: str, layer: int, metric: str, values: Sequence[float]
    ) -> None:
        self._rows(self.layers, cells, (phase, layer, metric), values)

    @staticmethod
    def _rows(
        table: dict[str, list[Any]],
        cells: Sequence[Cell],
        fixed: tuple[Any, ...],
        values: Sequence[Any],
    ) -> None:
        """One row per cell: its id, the ``fixed`` columns, its value."""
        for cell, value in zip(cells, values, strict=True):
            for column, item in zip(table, (cell.id, *fixed, value), strict=True):
                table[column].append(item)

    def histogram(
        self,
        cells: Sequence[Cell],
        phase: str,
        layer: int,
        counts: torch.Tensor,
        lo: float,
        hi: float,
    ) -> None:
        bins = counts.shape[1]
        width = (hi - lo) / bins
        rows = counts.cpu().tolist()
        for cell, row in zip(cells, rows, strict=True):
            for b, count in enumerate(row):
                for column, item in zip(
                    self.hists,
                    (cell.id, phase, layer, b, lo + b * width, lo + (b + 1) * width, int(count)),
                    strict=True,
                ):
                    self.hists[column].append(item)

    def frames(self) -> Records:
        from benchinit.results import conform

        return {
            "runs": conform("runs", pd.DataFrame(self.runs)),
            "curves": conform("curves", pd.DataFrame(self.curves)),
            "layers": conform("layers", pd.DataFrame(self.layers)),
            "histograms": conform("histograms", pd.DataFrame(self.hists)),
        }
