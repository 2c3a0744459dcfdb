"""Which figures the report holds and what each shows: one function per page section
(results, curves, histograms; the signal section and the analysis sections have modules
of their own, ``signal_figures``, ``phase``, ``effects``, ``tuning``, ``spectrum``, built on
the helpers here), each returning its :class:`FigureJob` list (what to draw, from which
numbers, under which caption). How a figure is drawn is :mod:`benchinit.figures.drawing`'
business; the page around it is the templates'.

Choices made here, and why:

- Lines and dots are coloured by initializer (the product's question) when it varies, else
  by the first varying axis; every other varying axis is a facet, so a line never mixes
  configurations. With nothing varying there is one line per panel, and no heatmap.
- Each band is a mean and a 95% Student-t interval over the seeds that finished, clipped to
  the metric's range; the caption says over how many seeds and whether anything was
  clipped. Non-finite values (damaged records) are left out of the means.
- Models with at most ``SHALLOW`` hidden layers get dot plots per layer instead of lines: a
  line through two points draws a trend that is not there.
- Every figure keeps the table it was drawn from (``FigureJob.data``): the page offers it as
  a CSV download.
- Learning curves are drawn per split measured every epoch: training loss, the validation
  split's metrics, and the test split's only when a study has no validation split (then
  test is measured every epoch). Test metrics measured once, after the last epoch, would
  be a line of one point: they are the leaderboard's numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchinit.figures import drawing as figures
from benchinit.figures import facets as facet_figures
from benchinit.figures import histograms as histogram_figures
from benchinit.figures.layout import axis_scale
from benchinit.metrics import Metric, curve_info
from benchinit.report.once import STAGE, invariant, staged
from benchinit.report.sections import layer_names, main_metric
from benchinit.results.tables import Results, mean_ci_by

SHALLOW = 3  # hidden layers; at most this many: dot plots per layer
CURVE_ORDER = [
    ("train", "loss"),
    ("val", "loss"),
    ("val", "accuracy"),
    ("val", "mse"),
    ("test", "loss"),
    ("test", "accuracy"),
    ("test", "mse"),
]
SPLITS = {
    "train": "the training split",
    "val": "the validation split, held out from the training data",
    "test": "the test split",
}
PARAMS = Metric("value", "train", None, "value")


@dataclass(frozen=True)
class FigureJob:
    """One figure of the report: its section, caption, drawing call and numbers."""

    section: str
    caption: str
    name: str  # the stem of its CSV file's name
    draw: Callable[..., Figure]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: pd.DataFrame = field(default_factory=pd.DataFrame)


def layout(results: Results, extra: list[str]) -> tuple[str | None, list[str]]:
    """(hue, facets): see the module docstring."""
    varying = results.varying
    hue = "initializer" if "initializer" in varying else (varying[0] if varying else None)
    return hue, [a for a in varying if a != hue] + extra


def grid_sorted(table: pd.DataFrame, order: dict[str, list[Any]]) -> pd.DataFrame:
    """Rows in grid order (the study's order of each axis's values), so legends, panels
    and CSV files list configurations as the study does; other columns keep their order."""
    columns = [a for a in order if a in table]
    if not columns or table.empty:
        return table
    ranks = []
    for axis in reversed(columns):  # np.lexsort: the last key is the primary one
        position = {str(v): i for i, v in enumerate(order[axis])}
        ranks.append(table[axis].map(lambda v, p=position: p.get(str(v), len(p))).to_numpy())
    return table.iloc[np.lexsort(ranks)].reset_index(drop=True)


def aggregate(
    frame: pd.DataFrame,
    keys: list[str],
    metric: Metric,
    order: dict[str, list[Any]] | None = None,
) -> tuple[pd.DataFrame, bool]:
    """Mean, clipped 95% t-interval and seed count of ``value`` per combination of
    ``keys`` (in grid ``order``); and whether any interval was clipped."""
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
    table = mean_ci_by(frame[np.isfinite(values)], keys)
    low, high = metric.bounds
    clipped = bool(((table["low"] < low) | (table["high"] > high)).any())
    table["low"] = table["low"].clip(lower=low, upper=high)
    table["high"] = table["high"].clip(lower=low, upper=high)
    table = table.rename(columns={"count": "seeds"})[[*keys, "mean", "low", "high", "seeds"]]
    return grid_sorted(table, order or {}), clipped


def _seeds_note(table: pd.DataFrame, what: str) -> str:
    """'bands: mean and 95% t-interval over 3 seeds' (and a lone seed's missing interval)."""
    seeds = table["seeds"][table["seeds"] > 0] if "seeds" in table else pd.Series([], dtype=int)
    low, high = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    over = f"{low} seed{'s' if low != 1 else ''}" if low == high else f"{low} to {high} seeds"
    note = f"{what}: mean and 95% t-interval over {over}"
    return note + (" (one seed: no interval)" if low == 1 else "")


def _clauses(table: pd.DataFrame, metric: Metric, clipped: bool) -> list[str]:
    """What a band note adds for one statistic: a clipped range, a log axis's floor."""
    clauses = [f"clipped to the metric's range {metric.range_text()}"] if clipped else []
    if axis_scale(metric, table) == "log" and "low" in table and (table["low"] <= 0).any():
        clauses.append("an interval that reaches 0 runs to the bottom edge of the log axis")
    return clauses


def _joined(note: str, clauses: list[str]) -> str:
    return note + "".join(f", {c}" if c.startswith("clipped") else f" ({c})" for c in clauses)


def band_note(table: pd.DataFrame, metric: Metric, clipped: bool, what: str = "bands") -> str:
    """'bands: mean and 95% t-interval over 3 seeds, clipped to [0, 1]'."""
    return _joined(_seeds_note(table, what), _clauses(table, metric, clipped))


def stack_notes(tables: list[tuple[str, pd.DataFrame, Metric, bool]], what: str) -> str:
    """One band note for a stack's rows (``(row name, table, metric, clipped)``, see
    benchinit.figures.stacked): the seeds of all of them, then each clause some rows add
    (a clipped range, a log axis's floor) with the rows it holds for, or alone where it
    holds for every row."""
    counts = [table[["seeds"]] for _, table, _, _ in tables if "seeds" in table]
    note = _seeds_note(pd.concat(counts) if counts else pd.DataFrame(), what)
    holds: dict[str, list[str]] = {}
    for name, table, metric, clipped in tables:
        for clause in _clauses(table, metric, clipped):
            holds.setdefault(clause, []).append(name)
    every = [c for c, names in holds.items() if len(names) == len(tables)]
    some = [f"{c}: {', '.join(names)}" for c, names in holds.items() if c not in every]
    return _joined(note, every) + (f" ({'; '.join(some)})" if some else "")


def panels_note(
    frame: pd.DataFrame, facets: list[str], along: str | None = None, unit: str = "panel"
) -> str:
    """What the panels are; ``along``: a facet drawn as groups along the x axis instead
    (benchinit.figures.facets.along_x); ``unit``: "column" for a stack's panels (a column
    of them per facet combination, benchinit.figures.stacked)."""
    grouped = f", its {along} values along the x axis" if along else ""
    facets = [f for f in facets if f != along]
    if not facets:
        return f" Its {along} values along the x axis." if along else ""
    panels = frame.groupby(facets, sort=False, dropna=False).ngroups
    note = f" One {unit} per {' · '.join(facets)}{grouped}"
    if panels > figures.MAX_PANELS:
        note += (
            f" (the first {figures.MAX_PANELS} of {panels} panels; every configuration is "
            "in the leaderboard)"
        )
    return note + "."


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-") or "figure"


def configuration_labels(frame: pd.DataFrame, axes: list[str]) -> pd.Series:
    if not axes:
        return pd.Series("all", index=frame.index, dtype=object)
    return frame[axes].astype(str).agg(", ".join, axis=1)


# --- one function per section -----------------------------------------------------------


def results_jobs(results: Results, summary: pd.DataFrame) -> list[FigureJob]:
    """The main metric per configuration (intervals) and over two grid axes (heatmap)."""
    metric, varying = main_metric(results), results.varying
    drawn = summary.dropna(subset=["mean"])
    if drawn.empty:
        return []
    drawn = drawn.assign(configuration=configuration_labels(drawn, varying))
    jobs = []
    if len(drawn) > 1:
        top = drawn.head(30)
        clipped = ", clipped to the range " + metric.range_text() if top["clipped"].any() else ""
        jobs.append(
            FigureJob(
                "results",
                f"{metric.name} per configuration, best first: mean and 95% t-interval over "
                f"seeds{clipped}"
                + (f" (the 30 best of {len(drawn)} are drawn)." if len(drawn) > 30 else "."),
                slug("results", metric.name, "intervals"),
                figures.interval_plot,
                (top, "configuration", metric),
                data=top[["configuration", *varying, "mean", "ci_low", "ci_high", "seeds"]],
            )
        )
    if len(varying) >= 2:
        pair = ("activation", "initializer")
        x, y = pair if set(pair) <= set(varying) else (varying[1], varying[0])
        facets = [a for a in varying if a not in (x, y)]
        jobs.append(
            FigureJob(
                "results",
                f"Mean {metric.name} over {y} × {x}." + panels_note(drawn, facets),
                slug("results", metric.name, "heatmap"),
                figures.heatmap,
                (drawn, x, y, facets, metric),
                {"order": results.study["values"]},
                data=drawn[[*varying, "mean", "seeds"]],
            )
        )
    return jobs


def _curve_pairs(curves: pd.DataFrame) -> list[tuple[str, str]]:
    present = curves[~curves["split"].isin(["params", "truth", "coord"])][["split", "metric"]]
    found = list(dict.fromkeys(map(tuple, present.drop_duplicates().to_numpy().tolist())))
    return [p for p in CURVE_ORDER if p in found] + [p for p in found if p not in CURVE_ORDER]


def curve_jobs(results: Results) -> list[FigureJob]:
    """Learning curves per split and metric (and a linear model's parameters)."""
    curves = results.labelled("curves")
    curves = curves[curves["status"] == "ok"]
    if curves.empty:
        return []
    hue, facets = layout(results, [])
    keys = [*results.varying, "epoch"]
    pairs = _curve_pairs(curves)
    parts = {p: curves[(curves["split"] == p[0]) & (curves["metric"] == p[1])] for p in pairs}
    # A split measured once (test after the last epoch, beside a validation split) is no
    # curve: a line of one point. Its numbers are the leaderboard's.
    once = {p for p, part in parts.items() if part.groupby("cell")["epoch"].nunique().max() <= 1}
    test_once = " Test metrics are measured once, after the last epoch: see the leaderboard."
    jobs = []
    for split, name in [p for p in pairs if p not in once]:
        metric = curve_info(split, name)
        table, clipped = aggregate(parts[split, name], keys, metric, results.study["values"])
        jobs.append(
            FigureJob(
                "curves",
                f"{metric.label.capitalize()} per epoch, on {SPLITS.get(split, split)}; "
                + band_note(table, metric, clipped)
                + "."
                + panels_note(table, facets)
                + (test_once if split == "val" and any(p[0] == "test" for p in once) else ""),
                slug("curves", metric.name),
                facet_figures.band_plot,
                (table, "epoch", hue, facets, metric),
                {"size": facet_figures.CURVES},
                data=table,
            )
        )
    params = curves[curves["split"] == "params"]
    if not params.empty:
        jobs.append(_params_job(results, curves, params, hue, facets, keys))
    return jobs


def _params_job(
    results: Results,
    curves: pd.DataFrame,
    params: pd.DataFrame,
    hue: str | None,
    facets: list[str],
    keys: list[str],
) -> FigureJob:
    epochs = pd.DataFrame({"epoch": sorted(params["epoch"].unique())})
    truth = curves[curves["split"] == "truth"].drop(columns="epoch").merge(epochs, how="cross")
    order = results.study["values"]
    table, _ = aggregate(params, [*keys, "metric"], PARAMS, order)
    dashed, _ = aggregate(truth, [*keys, "metric"], PARAMS, order)
    data = table.merge(
        dashed[[*keys, "metric", "mean"]].rename(columns={"mean": "true"}),
        on=[*keys, "metric"],
        how="left",
    )
    return FigureJob(
        "curves",
        "Parameters w and b per epoch (dashed: the true values); "
        + band_note(table, PARAMS, False)
        + "."
        + panels_note(table, [*facets, "metric"]),
        "curves-params",
        facet_figures.band_plot,
        (table, "epoch", hue, [*facets, "metric"], PARAMS),
        {"dashed": dashed if not dashed.empty else None, "dashed_label": "true value"},
        data=data,
    )


def _histogram_stages(
    summed: pd.DataFrame, rows_axis: str | None, others: list[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Train studies: (counts, figure axes, collapsed axes) with init overlaid once per
    figure where it does not vary with an axis (the optimizer): that axis's figures become
    one, its values overlaid as ``stage`` colours (``init``, ``adam · final``, ...)."""
    init = summed[summed["phase"] == "init"]
    keys = [*([rows_axis] if rows_axis else []), *others, "phase", "layer", "bin"]
    collapsed = [a for a in others if invariant(init, a, keys, ["count"])]
    if not collapsed:
        return summed, others, []
    rest = [a for a in others if a not in collapsed]
    return staged(summed, collapsed, rest), rest, collapsed


def histogram_jobs(results: Results) -> list[FigureJob]:
    """The lesson's figure: rows = initializer (or the first varying axis), columns =
    layers, one figure per combination of the other varying axes (train studies: init
    drawn once, beside each setting it does not depend on)."""
    hists = results.labelled("histograms")
    hists = hists[hists["status"] != "failed"]
    if hists.empty:
        return []
    train = results.study["kind"] == "train"
    rows_axis, others = layout(results, [])
    keys = [*([rows_axis] if rows_axis else []), *others, "phase", "layer", "bin", "left", "right"]
    summed = hists.groupby(keys, sort=False, dropna=False)["count"].sum().reset_index()
    summed = grid_sorted(summed, results.study["values"])
    collapsed: list[str] = []
    hue = "phase" if train else None
    if train:
        summed, others, collapsed = _histogram_stages(summed, rows_axis, others)
        hue = STAGE if collapsed else hue
    groups = list(summed.groupby(others, sort=False, dropna=False)) if others else [((), summed)]
    jobs = []
    for key, frame in groups[: figures.MAX_PANELS]:
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{a} = {v}" for a, v in zip(others, key, strict=True)) or "all cells"
        rows = f"rows = {rows_axis}, " if rows_axis else ""
        caption = f"Activation histograms, {title}: {rows}columns = layers" + (
            " (init and after training)" if train else ""
        )
        if collapsed:
            caption += (
                f"; colours: init (the same for every {' and '.join(collapsed)}) and each "
                f"{' · '.join(collapsed)} after training"
            )
        if len(groups) > figures.MAX_PANELS:
            caption += f" ({len(groups)} combinations; the first {figures.MAX_PANELS} drawn)"
        jobs.append(
            FigureJob(
                "histograms",
                f"{caption}. Each histogram spans its activation's histogram range; "
                f"{histogram_figures.outside_text(frame)}.",
                slug("histograms", *map(str, key)),
                histogram_figures.histogram_grid,
                (frame, rows_axis, title),
                {"hue": hue, "names": layer_names(results)},
                data=frame,
            )
        )
    return jobs
