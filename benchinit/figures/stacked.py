"""Several per-layer statistics of the same configurations in one figure, one row each.

The signal section measures up to seven statistics on the same layers of the same
configurations (benchinit.report.signal_figures), the spectrum section two. Drawn as a
figure each, every figure repeated its panel titles, its x axis (layers and stages), its
legend and its note: on the README example's page, seven figures 305 px tall each, of
which the panels were half. Stacked, rows = statistic and columns = the panels (a facet
combination each), those are drawn once: the panel titles over the top row, the x axis
under the bottom one, one legend; each row keeps its own y axis (scale, limits and label:
a fraction and a gradient norm share nothing but the layers).

A stack is drawn only where its panels fit one row (:func:`stackable`); otherwise each
statistic keeps a figure of its own (:mod:`benchinit.figures.facets`), whose panels wrap.
The panels are drawn by the same functions as there, so a stacked row and its own figure
show the same marks.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.font_manager
import pandas as pd
from matplotlib.figure import Figure

from benchinit.figures import facets
from benchinit.figures.layout import MAX_HUES, palette, panels_of, scale_axes, set_titles
from benchinit.metrics import Metric

ROW_HEIGHT = 1.3  # inches of panel per statistic: its ticks and label need no more
ACROSS = 4  # panels in a row of lines (a dot plot with groups along x: facets.GROUPED_ACROSS)


@dataclass(frozen=True)
class Row:
    """One statistic: its aggregated table (``mean``, ``low``, ``high`` per facets, hue and
    x), its metric (axis label, scale, range) and its theory values to draw dashed, if any."""

    frame: pd.DataFrame
    metric: Metric
    dashed: pd.DataFrame | None = None


def _along(rows: Sequence[Row], facet_names: Sequence[str], dots: bool) -> set[str | None]:
    return {facets.along_x(r.frame, facet_names, r.dashed) if dots else None for r in rows}


def stackable(rows: Sequence[Row], facet_names: Sequence[str], dots: bool) -> bool:
    """Whether ``rows`` can share a figure: more than one, every statistic with the same
    panels, and those panels fit one row (three with groups along x, else ``ACROSS``)."""
    along = _along(rows, facet_names, dots)
    if len(rows) < 2 or len(along) != 1:
        return False
    by = next(iter(along))
    names = [f for f in facet_names if f != by]
    panels = [[title for title, _, _ in panels_of(r.frame, names)] for r in rows]
    across = facets.GROUPED_ACROSS if by else ACROSS
    return all(p == panels[0] for p in panels) and len(panels[0]) <= across


def _label_row(ax: Any, metric: Metric, height: float) -> None:
    """The row's metric left of its first panel, wrapped to the row's height."""
    size = matplotlib.font_manager.FontProperties(
        size=matplotlib.rcParams["axes.labelsize"]
    ).get_size_in_points()
    room = max(8, int(height * 72 * 0.9 / (0.6 * size)))  # characters a line
    lines = textwrap.wrap(metric.label, room, break_long_words=False, break_on_hyphens=False)
    text = "\n".join(lines)
    ax.set_ylabel(text or metric.label, fontsize=size)


def stacked_plot(
    rows: Sequence[Row],
    x: str,
    hue: str | None,
    facet_names: Sequence[str],
    *,
    dots: bool,
    dashed_label: str = "mean-field theory",
    size: tuple[float, float] = facets.SMALL,
    names: Mapping[Any, str] | None = None,
) -> Figure:
    """One row of panels per statistic (``rows``, :func:`stackable`), one panel per
    combination of ``facet_names``; dots and intervals (``dots``, with the last facet as
    groups along x where :func:`benchinit.figures.facets.along_x` says) or lines and bands
    over ``x``, a colour per ``hue`` value, one legend."""
    by = next(iter(_along(rows, facet_names, dots)))
    panel_facets = [f for f in facet_names if f != by]
    every = pd.concat([r.frame for r in rows], ignore_index=True)
    panels = panels_of(every, panel_facets)
    hues = list(dict.fromkeys(every[hue]))[:MAX_HUES] if hue else [None]
    colors = palette(hues)
    # every row's layers and stages: a statistic missing one (non-finite there) leaves a gap
    slots = facets.Slots(
        x, sorted(every[x].dropna().unique().tolist()), by, facets.groups_of(every, by)
    )
    columns = max(len(panels), 1)  # one row of panels: stackable
    width = max(size[0], facets.MIN_WIDTH / columns)
    if dots:
        width = facets.dot_grid(every, panel_facets, len(panels), size, slots)[1]
    below = 0.45 if by else 0.25  # the x axis under the bottom row: layers (and stages)
    fig = Figure(figsize=(width * columns, ROW_HEIGHT * len(rows) + below), layout="constrained")
    grid = fig.subplots(len(rows), columns, squeeze=False, sharex=True, sharey="row")
    for row, axes in zip(rows, grid, strict=True):
        own = {title: part for title, _, part in panels_of(row.frame, panel_facets)}
        for ax, (title, where, _) in zip(axes, panels, strict=True):
            panel = own.get(title, row.frame.iloc[:0])  # by the same grouping: NaN is a value
            if dots:
                facets.draw_dots(ax, panel, hue, colors, row.dashed, where, slots)
                slots.rules(ax)
                if row is rows[-1]:  # the axes share x: labelled once, under the bottom row
                    slots.labels(ax, names)
            else:
                facets.draw_bands(ax, panel, x, hue, colors, row.dashed, where, names)
        scale_axes(list(axes), row.metric, row.frame)
        _label_row(axes[0], row.metric, ROW_HEIGHT)
    for ax in grid[-1]:
        ax.set_xlabel(f"{x}, by {by}" if by else x)
    titles = [" · ".join(str(v) for v in where.values()) for _, where, _ in panels]
    set_titles(fig, list(grid[0]), titles, width)
    shown = ["rows: statistic", f"columns: {' · '.join(panel_facets)}" if panel_facets else ""]
    note = ", ".join(s for s in shown if s) + (f"; {by} along x" if by else "")
    facets.add_note(fig, note)
    extra = dashed_label if any(r.dashed is not None for r in rows) else ""
    facets.decorate(
        fig, hue, facets.legend_handles(hue, hues, colors, extra, dots), width * columns
    )
    return fig
