"""Figures of the report's analyses: a tuned parameter's sensitivity, what mattered most
(effect sizes), and the order-to-chaos phase diagram.

Same conventions as :mod:`benchinit.figures.drawing` (fresh Figure objects, a Metric row for the
metric's axis, panels with titles that fit, at most ``MAX_PANELS`` panels and ``MAX_HUES``
lines). Every function takes tables already aggregated over seeds.

- **Sensitivity.** One line per configuration through the values tried, its band over the
  tuning seeds; the chosen value a star; a trial where a tuning seed diverged or failed (it
  is never chosen) a cross, at the worst edge of the panel when no seed finished, and the
  line has a gap there.
- **Effects.** omega-squared per term with its bootstrap interval, best first, and a line
  at 0: an interval that crosses it is no evidence that the term matters.
- **Phase diagram.** Cells at the measured weight scales (log x) and depths (log2 y), each
  spanning half way (geometrically) to its neighbours, so the theory's curve is drawn in
  the same coordinates as the measurements rather than over category positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.lines
import matplotlib.patheffects
import matplotlib.ticker
import matplotlib.transforms
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from benchinit.figures.layout import (
    MAX_HUES,
    add_legend,
    grid_of,
    log_ticks,
    note_panels,
    palette,
    panels_of,
    scale_axes,
    set_titles,
)
from benchinit.metrics import Metric
from benchinit.results.schema import TUNED_PREFIX

PANEL_WIDTH = 3.8  # inches
WIDE_PANEL = 6.4  # inches: a figure of one panel
FEW_TICKS = 10  # at most this many values tried: each one is a tick
FAILED_LABEL = "a tuning seed diverged or failed"
OUTLINE = [matplotlib.patheffects.withStroke(linewidth=3.6, foreground="black")]


def _rows(frame: pd.DataFrame, hue: str | None, value: Any) -> pd.DataFrame:
    return frame if hue is None else frame[frame[hue] == value]


def _sensitivity_handles(hue: str | None, hues: list[Any], colors: dict[Any, Any]) -> list[Any]:
    line = matplotlib.lines.Line2D
    handles: list[Any] = []
    if hue is not None:
        handles = [line([], [], color=colors[h], marker="o", ms=4, label=str(h)) for h in hues]
    handles.append(
        line([], [], color="0.5", marker="*", ms=12, mec="black", ls="none", label="chosen")
    )
    handles.append(
        line([], [], color="0.3", marker="x", ms=8, mew=2, ls="none", label=FAILED_LABEL)
    )
    return handles


def sensitivity_plot(
    frame: pd.DataFrame,
    x: str,
    hue: str | None,
    facets: Sequence[str],
    metric: Metric,
    *,
    log_x: bool,
) -> Figure:
    """The select metric's ``mean`` (``low``-``high`` band) against the tuned value ``x``,
    one line per ``hue`` value, one panel per facet combination. ``frame`` also has
    ``count`` (tuning seeds that finished), ``complete`` (all did) and ``chosen``."""
    panels = panels_of(frame, facets)
    hues = list(dict.fromkeys(frame[hue]))[:MAX_HUES] if hue else [None]
    colors = palette(hues)
    width = PANEL_WIDTH if len(panels) > 1 else WIDE_PANEL
    fig, axes = grid_of(len(panels), col_wrap=3, width=width, height=3.0)
    # where a trial with no finished seed sits: at the worst edge, one row per line
    worst = [0.04 + 0.06 * k for k in range(len(hues))]
    if metric.direction == "min":
        worst = [1 - w for w in worst]
    for ax, (_, _, panel) in zip(axes, panels, strict=True):
        edge = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
        for k, value in enumerate(hues):
            rows = _rows(panel, hue, value).sort_values(x)
            if rows.empty:
                continue
            color = colors[value]
            finished = rows["count"] > 0
            ax.plot(rows[x], rows["mean"].where(finished), color=color, marker="o", ms=4, lw=1.6)
            ax.fill_between(
                rows[x],
                rows["low"].where(finished),
                rows["high"].where(finished),
                color=color,
                alpha=0.18,
                lw=0,
            )
            bad = rows[~rows["complete"].astype(bool)]
            some = bad[bad["count"] > 0]
            ax.plot(some[x], some["mean"], "x", color=color, ms=9, mew=2.2, zorder=4)
            none = bad[bad["count"] == 0]
            ax.plot(
                none[x], [worst[k]] * len(none), "x", color=color, ms=9, mew=2.2, transform=edge
            )
            chosen = rows[rows["chosen"].astype(bool)]
            ax.plot(
                chosen[x],
                chosen["mean"],
                marker="*",
                ms=15,
                color=color,
                mec="black",
                ls="none",
                zorder=5,
            )
        ax.set_xlabel(x.removeprefix(TUNED_PREFIX))
        ax.set_ylabel(metric.label if ax.get_subplotspec().is_first_col() else "")
    tried = np.sort(pd.to_numeric(frame[x], errors="coerce").dropna().unique())
    for ax in axes:
        _tried_ticks(ax, tried, log_x)
    scale_axes(axes, metric, frame[frame["count"] > 0])
    set_titles(fig, axes, [title for title, _, _ in panels], width)
    add_legend(fig, hue, _sensitivity_handles(hue, hues, colors))
    note_panels(fig, facets)
    return fig


def _tried_ticks(ax: Any, tried: np.ndarray, log_x: bool) -> None:
    """The x axis of a sensitivity panel: log or linear; the values tried as the ticks
    when there are few of them."""
    if not len(tried):
        return
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(tried[0] / 1.6, tried[-1] * 1.6)
        log_ticks(ax.xaxis, tried[0] / 1.6, tried[-1] * 1.6)
    if len(tried) <= FEW_TICKS:
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(tried.tolist()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def effects_plot(table: pd.DataFrame, column: str, label: str) -> Figure:
    """``column`` (``omega_sq`` or ``eta_sq``) per term with its ``_low``-``_high``
    interval, best first (``table`` is ranked), and a line at 0."""
    rows = table.dropna(subset=[column]).iloc[::-1]
    fig = Figure(figsize=(7.5, 1.0 + 0.3 * max(len(rows), 1)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    value = rows[column].to_numpy(dtype=float)
    low = rows[f"{column}_low"].to_numpy(dtype=float)
    high = rows[f"{column}_high"].to_numpy(dtype=float)
    errors = np.nan_to_num(np.vstack([value - low, high - value]).clip(min=0))
    ax.errorbar(
        value, y, xerr=errors, fmt="o", color=sns.color_palette()[0], ecolor="0.4", capsize=3
    )
    ax.axvline(0, color="0.3", linewidth=0.9)
    ax.set_yticks(y, [str(t) for t in rows["term"]])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(label)
    return fig


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges half way, in log space, between sorted positive ``centres``."""
    if len(centres) == 1:
        return np.array([centres[0] / 1.5, centres[0] * 1.5])
    logs = np.log(centres)
    middle = (logs[1:] + logs[:-1]) / 2
    first, last = 2 * logs[0] - middle[0], 2 * logs[-1] - middle[-1]
    return np.exp(np.concatenate([[first], middle, [last]]))


def _phase_panel(
    ax: Any, cells: pd.DataFrame, y: str, cmap: Any, limits: tuple[float, float], rising: bool
) -> Any:
    """One panel's cells (``rising``: the colour map runs dark to light as values grow)."""
    xs = np.sort(cells["sigma_w"].unique())
    ys = np.sort(cells[y].unique().astype(float))
    grid = cells.pivot_table(index=y, columns="sigma_w", values="mean", aggfunc="first")
    grid = grid.reindex(index=ys, columns=xs)
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    mesh = ax.pcolormesh(
        cell_edges(xs), cell_edges(ys), values, cmap=cmap, vmin=limits[0], vmax=limits[1]
    )
    if values.size <= 80:
        middle = (limits[0] + limits[1]) / 2
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            text = "–" if np.isnan(v) else f"{v:.2g}"
            dark = not np.isnan(v) and (v < middle) == rising
            ax.text(
                xs[j],
                ys[i],
                text,
                ha="center",
                va="center",
                fontsize="small",
                color="white" if dark else "black",
            )
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xticks(xs, [f"{v:.3g}" for v in xs])
    ax.set_yticks(ys, [f"{v:g}" for v in ys])
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(cell_edges(xs)[[0, -1]])
    ax.set_ylim(cell_edges(ys)[[0, -1]])
    ax.grid(False)
    return mesh


def phase_plot(
    cells: pd.DataFrame,
    y: str,
    facets: Sequence[str],
    metric: Metric,
    theory: pd.DataFrame,
    critical: pd.DataFrame,
) -> Figure:
    """``mean`` over measured ``sigma_w`` (x) and ``y`` (depth), one panel per facet
    combination; ``theory`` (``sigma_w``, ``trainable_depth`` per panel) dashed and
    ``critical`` (``critical_sigma_w`` per panel) a dotted vertical line."""
    panels = panels_of(cells, facets)
    rising = metric.direction != "min"  # brighter is better, as in the heatmap
    cmap = sns.color_palette("viridis" if rising else "viridis_r", as_cmap=True)
    cmap = cmap.with_extremes(bad="0.85")
    limits = (float(cells["mean"].min()), float(cells["mean"].max()))
    if not np.isfinite(limits).all() or limits[0] == limits[1]:
        limits = (limits[0] - 0.5, limits[0] + 0.5) if np.isfinite(limits[0]) else (0.0, 1.0)
    fig, axes = grid_of(len(panels), col_wrap=3, width=4.4, height=3.6, sharey=False)
    mesh = None
    for ax, (_, where, panel) in zip(axes, panels, strict=True):
        mesh = _phase_panel(ax, panel, y, cmap, limits, rising)
        curve = _where(theory, where).sort_values("sigma_w")
        if not curve.empty:
            depth = curve["trainable_depth"].replace(np.inf, 1e9)
            ax.plot(curve["sigma_w"], depth, ls="--", color="white", lw=2, path_effects=OUTLINE)
        for value in _where(critical, where)["critical_sigma_w"].dropna():
            ax.axvline(value, ls=":", color="#e8710a", lw=2.2)
        ax.set_xlabel(r"$\sigma_w$ (measured at initialization)")
        ax.set_ylabel(y if ax.get_subplotspec().is_first_col() else "")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes, label=metric.label, shrink=0.9)
    set_titles(fig, axes, [title for title, _, _ in panels], 4.4, measure=True)
    handles = []
    if not theory.empty:
        handles.append(
            matplotlib.lines.Line2D(
                [],
                [],
                ls="--",
                color="white",
                lw=2,
                path_effects=OUTLINE,
                label=r"$6\,\xi_c$: mean-field trainable depth",
            )
        )
    if not critical.dropna().empty:
        handles.append(
            matplotlib.lines.Line2D(
                [], [], ls=":", color="#e8710a", lw=2.2, label=r"critical $\sigma_w$ ($\chi_1 = 1$)"
            )
        )
    add_legend(fig, None, handles)
    note_panels(fig, facets)
    return fig


def _where(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        if column in frame:
            mask &= frame[column].astype(str) == str(value)
    return frame[mask]
