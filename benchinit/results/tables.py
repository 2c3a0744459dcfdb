"""Results: the stored records as tidy pandas tables, and their aggregation over seeds.

``load_results(DIR)`` returns a :class:`Results` with four DataFrames (one row per value,
"long" format, ready for seaborn):

``runs``        one row per cell: ``cell``, the grid columns (``initializer``,
                ``activation``, ``loss``, ``optimizer``, dotted axes such as ``model.depth``),
                ``seed`` (int64), ``status`` (``ok`` | ``diverged`` | ``failed``), ``error``,
                ``diverged_epoch`` (Int64, missing unless diverged), the final metrics
                (float64: ``train_loss``, ``test_loss``, ``test_accuracy``,
                ``epochs_to_target`` for training; ``act_entropy``, ``std_drift``,
                ``grad_drift``, ``saturated_frac``, ``dead_frac`` for signal studies: see
                benchinit.metrics), ``seconds`` (float64: the
                wall time of the cell's stacked batch divided by its members), ``device``.
``curves``      ``cell``, ``epoch`` (int64; 0 = before training), ``split`` (``train``,
                ``test``; for a linear model with one input and output also ``params``, its
                w and b per epoch, and ``truth``, the data's true w and b at epoch 0),
                ``metric``, ``value``.
``layers``      ``cell``, ``phase`` (``init`` | ``final``), ``layer`` (int64, 1-based hidden
                layer), ``metric`` (``act_mean``, ``act_std``, ``preact_std``,
                ``saturated_frac``, ``dead_frac``, ``dead_unit_frac``,
                ``saturated_unit_frac`` (shares of units, channels for a convolution,
                dead or saturated on every probe sample; older folders lack them),
                ``grad_norm``, ``theory_std``,
                ``jac_sv2_mean``, ``jac_sv2_var`` (the input-output Jacobian's squared
                singular values, benchinit.engine.jacobian), ``theory_jac_sv2_mean``,
                ``theory_jac_sv2_var``), ``value``.
``histograms``  ``cell``, ``phase``, ``layer``, ``bin`` (int64), ``left``, ``right``
                (float64 bin edges), ``count`` (int64): the activations; ``bin`` -1
                (``left`` -inf) and ``bin`` = bins (``right`` inf) count the values
                below and above the range (folders made before 2026-12 lack them).
``spectra``     the same columns: log10 singular values of the input-output Jacobian at
                the last hidden layer (``left``/``right`` in log10 units).

Text columns have pandas' default string dtype (``object`` in pandas 2, ``str`` in 3).
By default only the cells of the folder's latest study are returned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from benchinit.analysis.stats import t_half_widths
from benchinit.errors import ResultsError
from benchinit.metrics import METRIC_TABLE, METRICS, metric_info
from benchinit.results.meta import Meta, StudyInfo
from benchinit.results.schema import STAGE, TUNE, conform
from benchinit.results.store import Store


def mean_ci_by(frame: pd.DataFrame, keys: list[str], level: float = 0.95) -> pd.DataFrame:
    """Per combination of ``keys``: ``mean``, ``std``, ``count``, and a Student-t interval
    ``low``-``high`` of the column ``value``. NaNs are left out; one value gets a zero-width
    interval, none a NaN one. Vectorized: the t-quantiles are cached per sample size."""
    grouped = frame.groupby(keys, sort=False, dropna=False)["value"]
    table = grouped.agg(["mean", "std", "count"]).reset_index()
    counts = table["count"].to_numpy()
    half = t_half_widths(counts, table["std"].fillna(0.0).to_numpy(), level)
    half = np.where(counts == 1, 0.0, half)
    table["low"], table["high"] = table["mean"] - half, table["mean"] + half
    return table


# Column names of the tables (stored and aggregated); a grid axis may not be called one.
RESERVED = frozenset(
    {
        "cell", "seed", "status", "error", "diverged_epoch", "seconds", "device", "epoch",
        "split", "metric", "value", "phase", "layer", "bin", "left", "right", "count", "mean",
        "std", "low", "high", "seeds", "ci_low", "ci_high", "diverged", "failed", "clipped",
        "configuration",
    }
)  # fmt: skip


def _with_grid(runs: pd.DataFrame, meta: Meta, path: Path) -> tuple[pd.DataFrame, Meta]:
    """``runs`` and ``meta`` checked against each other (a ResultsError naming
    ``meta.json`` otherwise), with every grid column present even when no cell was
    recorded, grid values of -0.0 as 0.0, and only list-valued ``study.values``."""
    axes = list(meta["study"]["axes"])
    problems = []
    if not axes:
        problems.append("study.axes lists no grid axis")
    if len(set(axes)) != len(axes):
        problems.append("study.axes lists an axis twice")
    clashes = sorted(set(axes) & (RESERVED | {m.name for m in METRIC_TABLE}))
    if clashes:
        problems.append(f"study.axes names table columns: {', '.join(clashes)}")
    missing = [a for a in axes if a not in runs]
    if missing and not runs.empty:
        problems.append(f"the records lack the grid columns {', '.join(missing)}")
    if problems:
        where = path / "meta.json"
        raise ResultsError(f"'{where}' does not match its records: {'; '.join(problems)}")
    runs = runs.copy()
    for axis in missing:
        runs[axis] = pd.Series([], dtype="object")
    for axis in axes:  # a grid value of -0.0 is shown as 0.0 (x + 0.0 turns -0.0 into 0.0)
        if runs[axis].dtype.kind == "f":
            runs[axis] = runs[axis] + 0.0
        elif runs[axis].dtype == object:
            runs[axis] = runs[axis].map(lambda v: v + 0.0 if isinstance(v, float) else v)
    study = meta["study"]
    values = {a: v for a, v in study["values"].items() if isinstance(v, list)}
    return runs, cast(Meta, {**meta, "study": {**study, "values": values}})


TABLE_NAMES = ("curves", "layers", "histograms", "spectra")  # read on first access


@dataclass
class Results:
    """The tables of one results folder, plus its metadata (``meta.json``).

    ``runs`` is read when the folder is loaded; ``curves``, ``layers``, ``histograms`` and
    ``spectra`` on first access (an index or a comparison never reads them).
    """

    runs: pd.DataFrame
    meta: Meta
    path: Path
    # A tuned study's tuning runs (one row per tuning cell, with ``tuned.*`` columns); the
    # tables above then hold its final cells only. Empty for an untuned study.
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the other tables, by name: given, or read by ``load`` (a table name -> the table)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    load: Callable[[str], pd.DataFrame] | None = field(default=None, repr=False, compare=False)

    def _table(self, name: str) -> pd.DataFrame:
        if name not in self.tables:
            loaded = self.load(name) if self.load is not None else None
            self.tables[name] = loaded if loaded is not None else conform(name, pd.DataFrame())
        return self.tables[name]

    @property
    def curves(self) -> pd.DataFrame:
        return self._table("curves")

    @property
    def layers(self) -> pd.DataFrame:
        return self._table("layers")

    @property
    def histograms(self) -> pd.DataFrame:
        return self._table("histograms")

    @property
    def spectra(self) -> pd.DataFrame:
        return self._table("spectra")

    @property
    def study(self) -> StudyInfo:
        return self.meta["study"]

    @property
    def axes(self) -> list[str]:
        """The grid columns, in study order."""
        return list(self.study["axes"])

    @property
    def varying(self) -> list[str]:
        """Grid columns with more than one value in this result set."""
        return [a for a in self.axes if a in self.runs and self.runs[a].nunique() > 1]

    @property
    def metric(self) -> str:
        return self.study["metric"]

    def direction(self, metric: str | None = None) -> str:
        return METRICS[self.study["kind"]].get(metric or self.metric, "min")

    def labelled(self, table: str) -> pd.DataFrame:
        """A table joined with each cell's grid columns, seed and status."""
        keys = ["cell", *self.axes, "seed", "status"]
        return getattr(self, table).merge(self.runs[keys], on="cell", how="inner")

    def summary(self, metric: str | None = None) -> pd.DataFrame:
        """Per configuration: mean and 95% CI over seeds of ``metric``, counts by status.

        Diverged and failed cells are counted, not averaged. Each interval is clipped to
        the metric's range (the true mean lies in it, so clipping keeps the coverage: an
        accuracy's interval never passes 1); ``clipped`` marks the rows whose interval
        crossed it. Sorted best first.
        """
        metric = metric or self.metric
        if metric not in self.runs:
            raise ResultsError(f"metric '{metric}' is not in these results")
        runs = self.runs
        ok = runs.assign(value=runs[metric].where(runs["status"] == "ok"))
        table = mean_ci_by(ok, self.axes).rename(
            columns={"low": "ci_low", "high": "ci_high", "count": "seeds"}
        )
        by_config = [runs[axis] for axis in self.axes]
        for status in ("diverged", "failed"):  # counted, not averaged
            counts = (runs["status"] == status).groupby(by_config, sort=False, dropna=False).sum()
            table[status] = counts.to_numpy().astype(int)
        low, high = metric_info(metric, self.study["kind"]).bounds
        table["clipped"] = (table["ci_low"] < low) | (table["ci_high"] > high)
        table["ci_low"] = table["ci_low"].clip(lower=low, upper=high)
        table["ci_high"] = table["ci_high"].clip(lower=low, upper=high)
        for column in ("mean", "ci_low", "ci_high"):  # + 0.0: -0.0 (an entropy of one bin) is 0
            table[column] = table[column] + 0.0
        ascending = self.direction(metric) == "min"
        return table.sort_values(
            "mean", ascending=ascending, na_position="last", kind="stable"
        ).reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return {s: int((self.runs["status"] == s).sum()) for s in ("ok", "diverged", "failed")}


def load_results(path: str | os.PathLike[str], *, all_cells: bool = False) -> Results:
    """The tables of a results folder (see the module docstring for columns and dtypes).

    ``all_cells=True`` also returns cells of earlier, different studies run into the folder.
    A tuned study's tuning cells are kept apart (``Results.tuning``): every table holds
    its final cells, so leaderboards, figures and comparisons never mix the two stages.
    """
    store = Store(path)
    meta = store.meta()
    tables, kept = store.read_kept(("runs",))
    runs = tables["runs"] if tables else conform("runs", pd.DataFrame())
    if not all_cells:
        runs = runs[runs["cell"].isin(set(meta["cells"]))].reset_index(drop=True)
    for metric in METRICS[meta["study"]["kind"]]:  # every documented metric column,
        if metric not in runs:  # even when no cell recorded it (all diverged, say)
            runs[metric] = pd.Series(math.nan, index=runs.index, dtype="float64")
    order = {cid: i for i, cid in enumerate(meta["cells"])}
    runs = (
        runs.assign(_order=runs["cell"].map(order).fillna(math.inf))
        .sort_values(["_order", "cell"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    runs, meta = _with_grid(runs, meta, Path(path))
    tuning = runs.iloc[0:0]
    if STAGE in runs:
        is_tune = runs[STAGE] == TUNE
        tuning, runs = runs[is_tune].reset_index(drop=True), runs[~is_tune]
    mine = kept[kept["cell"].isin(set(runs["cell"]))] if len(kept) else kept

    def load(table: str) -> pd.DataFrame | None:
        """A table's kept records of the cells in ``runs``: the records ``runs`` was
        read from, wherever they are now (a compaction may have moved them)."""
        if mine.empty:
            return None
        frame = store.read((table,), kept=mine).get(table)
        return None if frame is None else frame.reset_index(drop=True)

    return Results(runs.reset_index(drop=True), meta, Path(path), tuning, load=load)
