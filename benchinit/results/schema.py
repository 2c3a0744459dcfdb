"""The result tables: their schema (one owner) and the recorder that fills them.

A batch of cells records into a :class:`Recorder`; :meth:`Recorder.frames` turns the rows
into the tables ``runs``, ``curves``, ``layers``, ``histograms`` (of activations) and
``spectra`` (histograms of the input-output Jacobian's log10 singular values at the last
hidden layer, benchinit.engine.jacobian) with the documented dtypes (:data:`COLUMNS`). The store
writes them as they are, and ``load_results`` passes them through :func:`conform` again, so
older or foreign chunks read the same way.

``runs`` also has one column per grid axis (the cell's labels) and one per metric of its
study kind (benchinit.metrics), all float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from benchinit.metrics import METRICS
from benchinit.study.cells import Cell

TABLES = ("runs", "curves", "layers", "histograms", "spectra")
# Tables added after the first results were written: a chunk without one reads as empty.
LATER_TABLES = ("spectra",)
Records = dict[str, pd.DataFrame]

HISTOGRAM = {
    "cell": "str",
    "phase": "str",
    "layer": "int64",
    "bin": "int64",
    "left": "float64",
    "right": "float64",
    "count": "int64",
}
COLUMNS: dict[str, dict[str, str]] = {
    "runs": {
        "cell": "str",
        "seed": "int64",
        "status": "str",  # ok | diverged | failed
        "error": "str",
        "diverged_epoch": "Int64",
        "init_hash": "str",  # fingerprint of the member's initial weights (stack.fingerprints)
        "sigma_w": "float64",  # its hidden layers' weight scale at init (stack.init_scales)
        "sigma_b": "float64",  # and bias scale
        "seconds": "float64",  # the stacked batch's wall time divided by its cells
        "device": "str",
        # fingerprint of the code that computed it (benchinit.engine.execute.cell_code); "" in
        # records written before benchinit recorded it
        "code": "str",
    },
    "curves": {
        "cell": "str",
        "epoch": "int64",
        "split": "str",
        "metric": "str",
        "value": "float64",
    },
    "layers": {
        "cell": "str",
        "phase": "str",
        "layer": "int64",
        "metric": "str",
        "value": "float64",
    },
    "histograms": HISTOGRAM,  # of the activations
    "spectra": HISTOGRAM,  # of log10 singular values (left, right in log10 units)
}
ALL_METRICS = {m for metrics in METRICS.values() for m in metrics}


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of ``table`` present and of its documented dtype; a
    ValueError naming the column when one cannot be (a damaged or foreign file)."""
    frame = frame.copy()
    wanted = dict(COLUMNS[table])
    if table == "runs":
        wanted |= {metric: "float64" for metric in ALL_METRICS & set(frame.columns)}
    for column, dtype in wanted.items():
        if column not in frame:
            frame[column] = pd.Series([None] * len(frame), dtype="object")
        try:
            if dtype == "str":
                frame[column] = frame[column].fillna("").astype(str)
            else:
                frame[column] = frame[column].astype(dtype)
        except (TypeError, ValueError) as exc:
            missing = frame[column].isna().all() and len(frame)
            why = "it is missing" if missing else f"{type(exc).__name__}: {exc}"
            raise ValueError(f"column '{column}' cannot be {dtype} ({why})") from None
    return frame


class Recorder:
    """Collects one batch's rows column-wise; :meth:`frames` makes the four tables."""

    def __init__(self, device: str, codes: Mapping[str, str] | None = None) -> None:
        """``codes``: each cell's code fingerprint, by id, for its ``runs`` row."""
        self.device = device
        self.codes = dict(codes or {})
        self.runs: list[dict[str, Any]] = []
        self.columns: dict[str, dict[str, list[Any]]] = {
            table: {k: [] for k in COLUMNS[table]} for table in TABLES if table != "runs"
        }

    def run(self, cell: Cell, status: str, error: str = "", **metrics: Any) -> None:
        """The cell's row of ``runs``: its grid labels, status and final metrics."""
        self.runs.append(
            {
                "cell": cell.id,
                **cell.labels,
                "seed": cell.seed,
                "status": status,
                "error": error,
                **metrics,
                "seconds": None,  # filled in by frames()
                "device": self.device,
                "code": self.codes.get(cell.id, ""),
            }
        )

    def fail(self, cells: Sequence[Cell], error: str) -> None:
        for cell in cells:
            self.run(cell, "failed", error=error)

    def curve(
        self, cells: Sequence[Cell], epoch: int, split: str, metric: str, values: Sequence[float]
    ) -> None:
        self._rows("curves", cells, (epoch, split, metric), values)

    def layer(
        self, cells: Sequence[Cell], phase: str, layer: int, metric: str, values: Sequence[float]
    ) -> None:
        self._rows("layers", cells, (phase, layer, metric), values)

    def layers(
        self,
        cells: Sequence[Cell],
        phase: str,
        stats: Sequence[Mapping[str, torch.Tensor]],
        hists: Sequence[torch.Tensor],
        hist_range: tuple[float, float],
        extra: Mapping[str, Sequence[Sequence[float]]] | None = None,
    ) -> None:
        """Every hidden layer's statistics (``{metric: [G]}`` per layer) and activation
        histograms; ``extra`` as in :meth:`layer_metrics`."""
        self.layer_metrics(cells, phase, stats, extra)
        for layer, counts in enumerate(hists, start=1):
            self.histogram(cells, phase, layer, counts, *hist_range)

    def layer_metrics(
        self,
        cells: Sequence[Cell],
        phase: str,
        stats: Sequence[Mapping[str, torch.Tensor]],
        extra: Mapping[str, Sequence[Sequence[float]]] | None = None,
    ) -> None:
        """Per-layer metrics ``{metric: [G]}`` per layer; ``extra`` adds metrics given as
        ``{metric: [member][layer]}`` (theory)."""
        for layer, layer_stats in enumerate(stats, start=1):
            for metric, values in layer_stats.items():
                self.layer(cells, phase, layer, metric, values.double().cpu().tolist())
            for metric, per_member in (extra or {}).items():
                self.layer(cells, phase, layer, metric, [p[layer - 1] for p in per_member])

    def histogram(
        self,
        cells: Sequence[Cell],
        phase: str,
        layer: int,
        counts: torch.Tensor,
        lo: float,
        hi: float,
        table_name: str = "histograms",
    ) -> None:
        """Counts ``[G, bins]`` over [lo, hi], one row per cell and bin, into
        ``histograms`` (activations) or ``spectra`` (log10 singular values)."""
        bins = counts.shape[1]
        width = (hi - lo) / bins
        table = self.columns[table_name]
        for cell, row in zip(cells, counts.cpu().tolist(), strict=True):
            table["cell"] += [cell.id] * bins
            table["phase"] += [phase] * bins
            table["layer"] += [layer] * bins
            table["bin"] += list(range(bins))
            table["left"] += [lo + b * width for b in range(bins)]
            table["right"] += [lo + (b + 1) * width for b in range(bins)]
            table["count"] += [int(c) for c in row]

    def _rows(
        self, table: str, cells: Sequence[Cell], fixed: tuple[Any, ...], values: Sequence[Any]
    ) -> None:
        """One row per cell: its id, the ``fixed`` columns, its value."""
        columns = self.columns[table]
        for cell, value in zip(cells, values, strict=True):
            for column, item in zip(columns, (cell.id, *fixed, value), strict=True):
                columns[column].append(item)

    def frames(self, seconds: float) -> Records:
        """The four tables; ``seconds`` (the batch's wall time) is shared by its cells."""
        per_cell = seconds / max(len(self.runs), 1)
        runs = pd.DataFrame([{**row, "seconds": per_cell} for row in self.runs])  # keeps order
        return {
            "runs": conform("runs", runs),
            **{table: conform(table, pd.DataFrame(cols)) for table, cols in self.columns.items()},
        }
