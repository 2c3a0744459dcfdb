"""Figures of width transfer: the metric against the learning rate, one line per width, and
the coordinate check (Yang et al. 2022, "Tensor Programs V", Figures 1 and 5).

Same conventions as :mod:`benchinit.figures.analysis` (fresh Figure objects, panels with
titles that fit, at most ``MAX_PANELS`` panels). Widths are coloured along one sequential
palette (narrow light, wide dark), so "the curves move left as width grows" reads at once.

- **Rates.** Per configuration (a panel), the mean metric over seeds against the rate (log
  x), one line per width; each width's best rate (refined, benchinit.analysis.transfer) a
  dot on its line's colour at the panel's bottom edge; the panel title carries the fitted
  slope of log(best rate) on log(width) with its interval.
- **Transfer.** Per configuration, the metric against width at the rate tuned at the
  narrowest width and at each width's own best rate.
- **Coordinate check.** Per configuration and coordinate (hidden layer outputs, logits), the
  mean |value| against width (log-log), one line per training step t.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.lines
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from benchinit.figures.layout import MAX_PANELS, add_legend, grid_of, note_panels, panels_of

DECADES = 2  # the coordinate check's least y range, in decades
CLIP = 4  # rates: the y axis ends at this multiple of the panel's median (divergence is off it)


def _width_colors(widths: list[Any]) -> dict[Any, Any]:
    colors = sns.color_palette("viridis_r", max(len(widths), 1))
    return dict(zip(widths, colors, strict=False))


def _slope_text(row: pd.Series | None) -> str:
    if row is None or not math.isfinite(row["slope"]):
        return ""
    interval = ""
    if math.isfinite(row["ci_low"]):
        interval = f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return f"slope {row['slope']:.2f}{interval}"


def rate_plot(
    table: pd.DataFrame,
    best: pd.DataFrame,
    slopes: pd.DataFrame,
    facets: list[str],
    metric: str,
) -> Figure:
    """``table``: facets, ``width``, ``lr``, ``value`` (mean over seeds); ``best`` and
    ``slopes``: benchinit.analysis.transfer's tables over the same facets."""
    panels = panels_of(table, facets)[:MAX_PANELS]
    fig, axes = grid_of(len(panels), col_wrap=2 if len(panels) == 4 else 3, width=4.6, sharey=False)
    widths = sorted(table["width"].unique())
    colors = _width_colors(widths)
    for ax, (title, where, rows) in zip(axes, panels, strict=False):
        mask_best = np.ones(len(best), bool)
        mask_slope = np.ones(len(slopes), bool)
        for key, value in where.items():
            mask_best &= (best[key] == value).to_numpy()
            mask_slope &= (slopes[key] == value).to_numpy()
        for width in widths:
            line = rows[rows["width"] == width].sort_values("lr")
            finite = line[np.isfinite(line["value"])]
            if finite.empty:
                continue
            ax.plot(finite["lr"], finite["value"], "-o", ms=3, color=colors[width], lw=1.4)
        ax.set_xscale("log")
        values = rows["value"][np.isfinite(rows["value"])]
        if len(values) and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
        if len(values) and values.max() > CLIP * values.median() > 0:  # a blow-up off the top
            ax.set_ylim(top=CLIP * values.median())
        for _, point in best[mask_best].iterrows():
            ax.axvline(point["lr"], color=colors.get(point["width"], "0.5"), lw=0.8, ls=":")
        slope = slopes[mask_slope].iloc[0] if mask_slope.any() else None
        ax.set_title("\n".join(t for t in (title, _slope_text(slope)) if t), fontsize="small")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(metric)
    note_panels(fig, facets)
    add_legend(fig, None, [_line(colors[w], f"width {w:g}") for w in widths])
    return fig


def _line(color: Any, label: str) -> Any:
    return matplotlib.lines.Line2D([], [], color=color, marker="o", ms=3, label=label)


def _span_decades(ax: Any, values: pd.Series) -> None:
    """A log y range of at least ``DECADES`` decades around the values: otherwise a flat line
    with a 10% wiggle fills the panel and looks as steep as a blow-up."""
    positive = values[(values > 0) & np.isfinite(values)]
    if positive.empty:
        return
    low, high = float(positive.min()), float(positive.max())
    if high / low < 10**DECADES:
        centre = math.sqrt(low * high)
        ax.set_ylim(centre / 10 ** (DECADES / 2), centre * 10 ** (DECADES / 2))


def coordinate_plot(table: pd.DataFrame, facets: list[str]) -> Figure:
    """``table``: facets, ``coordinate`` (h1, ..., logits), ``width``, ``step``, ``value``
    (mean over seeds of mean |x|): one panel per facet combination and coordinate."""
    panels = panels_of(table, [*facets, "coordinate"])[:MAX_PANELS]
    columns = min(max(table["coordinate"].nunique(), 1), 6)  # a row per configuration
    fig, axes = grid_of(len(panels), col_wrap=columns, sharey=False)
    steps = sorted(table["step"].unique())
    colors = dict(zip(steps, sns.color_palette("rocket_r", max(len(steps), 1)), strict=False))
    for ax, (title, _, rows) in zip(axes, panels, strict=False):
        for step in steps:
            line = rows[(rows["step"] == step) & (rows["value"] > 0)].sort_values("width")
            ax.plot(line["width"], line["value"], "-o", ms=3, color=colors[step], lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _span_decades(ax, rows["value"])
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("width")
        ax.set_ylabel("mean |x|")
    note_panels(fig, [*facets, "coordinate"])
    add_legend(fig, "step t", [_line(colors[s], f"t = {s:g}") for s in steps])
    return fig


def transfer_plot(table: pd.DataFrame, facets: list[str], metric: str) -> Figure:
    """``table``: benchinit.analysis.transfer.transferred's. Per configuration, the metric
    against width at the rate tuned at the narrowest width (solid) and at each width's own
    best rate (dashed): where they part, the small model's rate does not transfer."""
    panels = panels_of(table, facets)[:MAX_PANELS]
    fig, axes = grid_of(len(panels), col_wrap=2 if len(panels) == 4 else 3, width=4.0)
    for ax, (title, _, rows) in zip(axes, panels, strict=False):
        rows = rows.sort_values("width")
        rate = rows["transferred_lr"].iloc[0] if len(rows) else math.nan
        ax.plot(rows["width"], rows["transferred_value"], "-o", ms=3, color="C3", lw=1.4)
        ax.plot(rows["width"], rows["best_value"], "--o", ms=3, color="C0", lw=1.2)
        ax.set_xscale("log")
        ax.set_title("\n".join(t for t in (title, f"transferred rate {rate:.3g}") if t))
        ax.set_xlabel("width")
        ax.set_ylabel(metric)
    note_panels(fig, facets)
    handles = [
        matplotlib.lines.Line2D([], [], color="C3", marker="o", ms=3, label="transferred rate"),
        matplotlib.lines.Line2D(
            [], [], color="C0", marker="o", ms=3, ls="--", label="each width's own best rate"
        ),
    ]
    add_legend(fig, None, handles)
    return fig
