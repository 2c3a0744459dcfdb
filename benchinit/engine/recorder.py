"""The recorder a batch of cells fills: rows collected column-wise while the engine runs,
turned into the result tables (:mod:`benchinit.results.schema` owns their columns)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from benchinit.results.schema import COLUMNS, TABLES, Records, conform
from benchinit.study.cells import Cell


class Recorder:
    """Collects one batch's rows column-wise; :meth:`frames` makes the four tables."""

    def __init__(self, device: str, codes: Mapping[str, str] | None = None) -> None:
        """``codes``: each cell's code fingerprint, by id, for its ``runs`` row."""
        self.device = device
        self.codes = dict(codes or {})
        self.layer_names = ""  # the stack's declared hidden layer names (:func:`declared`)
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
                "layer_names": self.layer_names,
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
        """Counts ``[G, bins + 2]`` (below, ``bins`` bins of [lo, hi], above), one row per
        cell and bin, into ``histograms`` (activations) or ``spectra`` (log10 singular
        values). The outside counts are rows ``bin = -1`` (``left = -inf``, ``right = lo``)
        and ``bin = bins`` (``left = hi``, ``right = inf``), stored even when 0: a folder
        without them was made when they were folded into the edge bins."""
        bins = counts.shape[1] - 2
        width = (hi - lo) / bins
        lefts = [-math.inf, *(lo + b * width for b in range(bins)), hi]
        rights = [lo, *(lo + (b + 1) * width for b in range(bins)), math.inf]
        table = self.columns[table_name]
        for cell, row in zip(cells, counts.cpu().tolist(), strict=True):
            table["cell"] += [cell.id] * (bins + 2)
            table["phase"] += [phase] * (bins + 2)
            table["layer"] += [layer] * (bins + 2)
            table["bin"] += list(range(-1, bins + 1))
            table["left"] += lefts
            table["right"] += rights
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


def declared(model: Any) -> str:
    """A model's hidden layers' declared names, comma-separated, for the ``runs`` column
    ``layer_names`` (the report names layers by it); "" when they are the numbers the tables
    use anyway (``layer1``, ``layer2``...: the MLP) or the model declares none."""
    specs = getattr(model, "layer_specs", None)
    names = [s.name for s in specs() if s.hidden] if callable(specs) else []
    if names == [f"layer{i + 1}" for i in range(len(names))]:
        return ""
    return ",".join(names)
