"""The report's Jacobian spectrum section: how the input-output Jacobian stretches a signal,
layer by layer (or, when the grid varies ``model.depth``, at the last layer of each depth),
beside free-probability theory, and the last layer's spectrum as a density.

Read from the ``layers`` table (``jac_sv2_mean``, ``jac_sv2_var`` and their
``theory_jac_sv2_*``, benchinit.engine.jacobian) and the ``spectra`` table (histograms of log10
singular values at the last hidden layer). Choices, and why:

- Two statistics, in one figure a row each where their panels fit a row
  (benchinit.figures.stacked), each on a log axis unless a value is 0 (zero weights):
  the mean squared singular value (the average gain: 1 keeps a signal's size, the product
  of the layers' chi_1) and the relative spread var / mean^2 (0 is dynamical isometry,
  every direction stretched alike). The spread is taken per cell, then averaged over
  seeds, as the ``jac_spread`` run metric is; the theory's spread is the theory's
  var / mean^2. Mean and variance alone would mix the two questions: a variance grows
  with the mean's square.
- Depth on the x axis when ``model.depth`` is a grid axis (the last hidden layer of each
  network): layer l of a deep network and the last layer of an l-layer one are different
  networks, so lines over layers would mix configurations.
- Faceted as the signal section is (hue initializer, panels the other axes, and the phase
  for train studies); at most ``SHALLOW`` x values get dots instead of lines.
- The densities: rows initializer, columns activation (or the first varying axes), depths
  (or phases) overlaid; one figure per combination of the other axes, at most
  ``MAX_FIGURES``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchinit.figures import facets as facet_figures
from benchinit.figures import histograms as histogram_figures
from benchinit.figures.layout import axis_scale
from benchinit.figures.stacked import Row, stackable, stacked_plot
from benchinit.metrics import POSITIVE, Metric, metric_info
from benchinit.report.once import (
    STAGE,
    collapse_init,
    distinct_groups,
    init_note,
    invariant,
    staged,
)
from benchinit.report.section_figures import (
    SHALLOW,
    FigureJob,
    aggregate,
    band_note,
    grid_sorted,
    panels_note,
    slug,
    stack_notes,
)
from benchinit.results.tables import Results

DEPTH = "model.depth"
JACOBIAN = ("jac_sv2_mean", "jac_sv2_var", "theory_jac_sv2_mean", "theory_jac_sv2_var")
MEAN = dataclasses.replace(
    metric_info("jac_sv2_mean", "layer"), scale="log", label="mean sq. singular value"
)
SPREAD = Metric(
    "jac_spread", "layer", None, "spread, var / mean²", POSITIVE, "log"
)  # the per-run metric's name: var / mean^2 of the squared singular values
MAX_FIGURES = 6  # spectrum density figures
# Below this a spread is float rounding of exact isometry (orthogonal linear networks give
# 1e-12 in float32): drawn at the floor, so the log axis does not spend 6 decades on noise.
SPREAD_FLOOR = 1e-6
PHASES = {"init": 0, "final": 1}
FIGURES = (
    (
        "jac_sv2_mean",
        MEAN,
        "Mean squared singular value of the input-output Jacobian (its average gain: 1 "
        "keeps a signal's size)",
    ),
    (
        "jac_spread",
        SPREAD,
        "Relative spread of the Jacobian's squared singular values, var / mean² (0: "
        "dynamical isometry, every direction stretched alike)",
    ),
)


def _per_cell(results: Results) -> pd.DataFrame:
    """One row per cell, phase and layer: the Jacobian metrics, spreads, grid columns."""
    part = results.layers[results.layers["metric"].isin(JACOBIAN)]
    wide = part.pivot_table(
        index=["cell", "phase", "layer"], columns="metric", values="value", aggfunc="first"
    ).reset_index()
    wide.columns.name = None
    for name in JACOBIAN:
        if name not in wide:
            wide[name] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        wide["jac_spread"] = wide["jac_sv2_var"] / wide["jac_sv2_mean"] ** 2
        wide["theory_jac_spread"] = wide["theory_jac_sv2_var"] / wide["theory_jac_sv2_mean"] ** 2
    runs = results.runs[["cell", *results.axes, "seed", "status"]]
    wide = wide.merge(runs, on="cell", how="inner")
    wide = wide.sort_values("phase", key=lambda p: p.map(PHASES), kind="stable")
    return wide[wide["status"] != "failed"]


def _layout(results: Results) -> tuple[str, str | None, list[str], list[str]]:
    """(x, hue, facets, keys) of the line figures."""
    by_depth = DEPTH in results.varying
    others = [a for a in results.varying if a != DEPTH]
    hue = "initializer" if "initializer" in others else (others[0] if others else None)
    train = results.study["kind"] == "train"
    facets = [a for a in others if a != hue] + (["phase"] if train else [])
    x = DEPTH if by_depth else "layer"
    return x, hue, facets, [*others, "phase", x]


def _floor(table: pd.DataFrame) -> pd.DataFrame:
    """Positive values below ``SPREAD_FLOOR`` drawn at it (so the log axis does not spend
    decades on them), every row's; a lower end at exactly 0 (an interval clipped at the
    range, around a spread far above the floor) is kept, and is said (band_note)."""
    rounding = table["mean"] < SPREAD_FLOOR
    columns = [c for c in ("mean", "low", "high") if c in table]
    floored = {
        c: table[c].where((table[c] <= 0) & ~rounding, table[c].clip(lower=SPREAD_FLOOR))
        for c in columns
    }
    return table.assign(**floored)


@dataclass(frozen=True)
class _Line:
    """One of ``FIGURES`` ready to draw, with what its caption says beyond its title."""

    name: str
    metric: Metric
    title: str
    table: pd.DataFrame
    theory: pd.DataFrame
    panels: list[str]
    collapsed: list[str]
    clipped: bool
    floored: str  # the spread's floor, where some value is under it
    data: pd.DataFrame


def _spread_floor(
    table: pd.DataFrame, theory: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The spread's table and theory floored (:func:`_floor`), and the caption's sentence
    where some value is under the floor."""
    values = table[[c for c in ("mean", "low", "high") if c in table]]
    small = ((values > 0) & (values < SPREAD_FLOOR)).any().any()
    rounding = bool((table["mean"] < SPREAD_FLOOR).any())
    floored = ""
    if small or rounding:
        why = " (float rounding of an isometric network)" if rounding else ""
        floored = (
            f" Spreads and interval ends below {SPREAD_FLOOR:g}{why} are drawn at {SPREAD_FLOOR:g}."
        )
    return _floor(table), _floor(theory), floored


def _lines(results: Results, wide: pd.DataFrame, facets: list[str], keys: list[str]) -> list[_Line]:
    """``FIGURES``' tables per ``keys`` (over seeds), init panels once, theory beside."""
    order = results.study["values"]
    lines = []
    for name, metric, title in FIGURES:
        table, clipped = aggregate(wide.assign(value=wide[name]), keys, metric, order)
        if table.empty:
            continue
        theory, _ = aggregate(wide.assign(value=wide[f"theory_{name}"]), keys, metric, order)
        table, panels, collapsed = collapse_init(table, facets, keys)
        theory = staged(theory, collapsed, [a for a in panels if a != STAGE])
        floored = ""
        if name == "jac_spread":
            table, theory, floored = _spread_floor(table, theory)
        data = table
        if not theory.empty:
            data = table.merge(
                theory[[*keys, "mean"]].rename(columns={"mean": "theory"}), on=keys, how="left"
            )
        lines.append(
            _Line(name, metric, title, table, theory, panels, collapsed, clipped, floored, data)
        )
    return lines


def line_jobs(results: Results, wide: pd.DataFrame) -> list[FigureJob]:
    """The mean and the spread against layer (or depth), theory dashed: in one figure, a
    row each (benchinit.figures.stacked), where their panels fit a row; else a figure each."""
    x, hue, facets, keys = _layout(results)
    if x == DEPTH:  # the last hidden layer of each network
        last = wide.groupby(["cell", "phase"])["layer"].transform("max")
        wide = wide[wide["layer"] == last]
    where = "at the last hidden layer, per depth" if x == DEPTH else "per hidden layer"
    lines = _lines(results, wide, facets, keys)
    if not lines:
        return []
    dots = lines[0].table[x].nunique() <= SHALLOW
    rows = [
        Row(line.table, line.metric, line.theory if not line.theory.empty else None)
        for line in lines
    ]
    if all(line.panels == lines[0].panels for line in lines) and stackable(
        rows, lines[0].panels, dots
    ):
        return [_line_job(lines, rows, x, hue, where, dots)]
    return [_line_job([line], rows[i : i + 1], x, hue, where, dots) for i, line in enumerate(lines)]


def _line_job(
    lines: list[_Line], rows: list[Row], x: str, hue: str | None, where: str, dots: bool
) -> FigureJob:
    """One figure of ``lines`` (``rows`` their tables): a figure of its own for one, a
    stack (a row each) for more."""
    first, stack = lines[0], len(lines) > 1
    what = "dots and bars" if dots else "bands"
    along = facet_figures.along_x(first.table, first.panels, rows[0].dashed) if dots else None
    if stack:
        titles = "; ".join(
            f"{line.title[0].lower()}{line.title[1:]}, {axis_scale(line.metric, line.table)} axis"
            for line in lines
        )
        head = f"The input-output Jacobian {where}, a row per statistic: {titles}"
        said = [  # "spread, var / mean²" -> "spread": names are listed with commas
            (line.metric.label.split(",")[0], line.table, line.metric, line.clipped)
            for line in lines
        ]
        bands = stack_notes(said, what)
    else:
        head = f"{first.title}, {where}; {axis_scale(first.metric, first.table)} axis"
        bands = band_note(first.table, first.metric, first.clipped, what)
    theory = ""
    if any(row.dashed is not None for row in rows):
        theory = (
            f" {'Dashes' if dots else 'Dashed'}: free-probability theory from each network's "
            "own weights (plain networks only; none for residual or normalized ones)."
        )
    caption = (
        f"{head}; {bands}."
        + theory
        + "".join(line.floored for line in lines)
        + panels_note(first.table, first.panels, along, "column" if stack else "panel")
        + init_note(first.collapsed, along == STAGE)
    )
    kwargs: dict[str, Any] = {
        "size": facet_figures.SMALL,
        "dashed_label": "free-probability theory",
    }
    if stack:
        data = pd.concat([line.data.assign(statistic=line.name) for line in lines])
        data = data[["statistic", *[c for c in data.columns if c != "statistic"]]]
        data = data.reset_index(drop=True)
        draw: Any = stacked_plot
        args: tuple[Any, ...] = (rows, x, hue, first.panels)
        kwargs["dots"] = dots
    else:
        data = first.data
        draw = facet_figures.dot_plot if dots else facet_figures.band_plot
        args = (first.table, x, hue, first.panels, first.metric)
        if rows[0].dashed is not None:
            kwargs["dashed"] = rows[0].dashed
    stem = "jacobian" if stack else first.name
    return FigureJob(
        "spectrum",
        caption,
        slug("spectrum", stem),
        draw,
        args,
        kwargs,
        data=data.reset_index(drop=True),
    )


def _density_axes(
    results: Results, spectra: pd.DataFrame
) -> tuple[str | None, str | None, str | None, list[str]]:
    """(rows, cols, hue, split) of the density figures: grid axes whose spectra are all
    the same are left out (a train study records the spectrum at init, where the loss or
    the optimizer changes nothing), and so is the phase when one was recorded."""
    keys = [*results.varying, "seed", "phase", "layer", "bin"]
    # pooled only when every value has spectra: one whose cells all failed is not the same
    complete = {a: spectra[a].nunique() == results.runs[a].nunique() for a in results.varying}
    varying = [
        a
        for a in results.varying
        if a != DEPTH and not (complete[a] and invariant(spectra, a, keys, ["count"]))
    ]
    ordered: list[str] = [a for a in ("initializer", "activation") if a in varying]
    ordered += [a for a in varying if a not in ordered]
    phases = spectra["phase"].nunique() > 1
    hue = DEPTH if DEPTH in results.varying else ("phase" if phases else None)
    split = ordered[2:] + (["phase"] if phases and hue != "phase" else [])
    rows = ordered[0] if ordered else None
    cols = ordered[1] if len(ordered) > 1 else None
    return rows, cols, hue, split


def density_jobs(results: Results) -> list[FigureJob]:
    """The last hidden layer's spectrum density, one grid figure per split combination."""
    spectra = results.labelled("spectra")
    spectra = spectra[spectra["status"] != "failed"]
    if spectra.empty:
        return []
    rows, cols, hue, split = _density_axes(results, spectra)
    pooled = [a for a in results.varying if a not in (rows, cols, hue, *split)]
    at_init = results.study["kind"] == "train" and spectra["phase"].eq("init").all()
    keys = [k for k in (rows, cols, hue) if k] + split + ["bin", "left", "right"]
    summed = spectra.groupby(keys, sort=False, dropna=False)["count"].sum().reset_index()
    summed = grid_sorted(summed, results.study["values"])
    if "phase" in summed:
        summed = summed.sort_values("phase", key=lambda s: s.map(PHASES), kind="stable")
    groups = list(summed.groupby(split, sort=False, dropna=False)) if split else [((), summed)]
    edges = summed[["left", "right"]].to_numpy(dtype=float)
    low, high = edges[np.isfinite(edges)].min(), edges[np.isfinite(edges)].max()
    outside = histogram_figures.outside_text(summed, f"1e{low:g} .. 1e{high:g}")
    xlabel = (
        f"log10 singular value of the input-output Jacobian at the last hidden layer ({outside})"
    )
    layout = ", ".join(
        f"{what} = {axis}"
        for what, axis in (("rows", rows), ("columns", cols), ("colours", hue))
        if axis
    )
    jobs = []
    for key, frame, same in distinct_groups(groups, split, ["count"])[:MAX_FIGURES]:
        shown = [v if all(k[i] == v for k in same) else "any" for i, v in enumerate(key)]
        title = ", ".join(f"{a} = {v}" for a, v in zip(split, shown, strict=True)) or "all cells"
        caption = (
            f"Jacobian spectrum at the last hidden layer, {title}"
            + (" (at initialization: the only spectrum a train study records)" if at_init else "")
            + ": the share of singular values per bin of log10, pooled over seeds and probe "
            "inputs"
            + (
                f" and over {', '.join(pooled)} (the same spectrum for each value)"
                if pooled
                else ""
            )
            + (f"; {layout}" if layout else "")
            + "."
            + (" One figure for every 'any' value: their spectra are the same." if same[1:] else "")
        )
        if len(groups) > MAX_FIGURES:
            caption += f" ({len(groups)} combinations; the first {MAX_FIGURES} drawn.)"
        jobs.append(
            FigureJob(
                "spectrum",
                caption,
                slug("spectrum-density", *map(str, shown)),
                histogram_figures.density_grid,
                (frame, rows, cols, hue, f"Jacobian spectrum, {title}", xlabel),
                data=frame,
            )
        )
    return jobs


def spectrum_jobs(results: Results) -> list[FigureJob]:
    """The section's figures; none when no cell recorded a Jacobian spectrum."""
    if not results.layers["metric"].eq("jac_sv2_mean").any():
        return []
    wide = _per_cell(results)
    if wide.empty:
        return []
    return [*line_jobs(results, wide), *density_jobs(results)]
