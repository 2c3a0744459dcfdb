"""Small-multiple figures over epochs and layers: bands and dots (histograms:
:mod:`benchinit.figures.histograms`).

Same conventions as :mod:`benchinit.figures.drawing` (fresh Figure objects, a Metric row for the
axis, titles that fit their panels). A panel shows one configuration of every axis except
the hue, so lines never mix configurations. Each frame holds ``mean``, ``low`` and ``high``
per (facets, hue, x), already aggregated over seeds and clipped to the metric's range.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.font_manager
import matplotlib.lines
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchinit.figures.layout import (
    MAX_HUES,
    SEPARATOR,
    add_legend,
    grid_of,
    label,
    palette,
    panels_of,
    scale_axes,
    set_titles,
)
from benchinit.metrics import Metric

PANEL_WIDTH = 2.7  # inches: two columns of them fit half the page (figures pair up)
PANEL_HEIGHT = 1.6  # inches of panel: short panels keep a section's figures on a screen
# per-layer panels (signal, spectrum): three across make a figure under half the page's
# width, so two figures sit side by side (the report's figures flow) and the section is
# half as tall; their x axis (layer) is labelled once per column
SMALL = (1.85, 1.55)
# learning curves: two panels across make a figure under a third of the page's width, so a
# train study's three curves (training loss, validation loss and accuracy) share a row
CURVES = (1.95, PANEL_HEIGHT)
MIN_WIDTH = 3.6  # inches of panels at least: one or two small panels are made wider
GROUPED_WIDTH = 5.0  # inches of a dot plot's panel with groups along x, at most
# a grouped dot plot's panels run across, three to a row, the figure at most the page's
# width: one wide, short figure per row (a column of three beside another was 3x as tall)
GROUPED_ACROSS = 3
PAGE_WIDTH = 12.4  # inches of figure in the report's content column (1,224 CSS px)


def _columns(frame: pd.DataFrame, facets: Sequence[str]) -> int:
    """Panels per row: the last facet's values across, one row per value of the others
    (``relu: init, adam · final, sgd · final``), when it has 2 to 4; else rows of 4."""
    if len(facets) > 1 and 2 <= frame[facets[-1]].nunique() <= 4:
        return int(frame[facets[-1]].nunique())
    return 4


def _hues(frame: pd.DataFrame, hue: str | None) -> list[Any]:
    return list(dict.fromkeys(frame[hue]))[:MAX_HUES] if hue else [None]


def _by_hue(
    frame: pd.DataFrame | None, hue: str | None, where: dict[str, Any]
) -> dict[Any, pd.DataFrame]:
    """``frame``'s rows of one panel (``where``: its facet values) split by hue value (all
    under None without a hue): one pass, where selecting each hue value apart cost a
    stacked figure a tenth of its time."""
    if frame is None:
        return {}
    mask = np.ones(len(frame), dtype=bool)
    for column, wanted in where.items():  # a panel of NaN (panels_of keeps it) holds NaN rows
        same = frame[column].isna() if pd.isna(wanted) else frame[column] == wanted
        mask &= same.to_numpy(dtype=bool)
    rows = frame[mask] if not mask.all() else frame
    if hue is None:
        return {None: rows}
    return {value: part for value, part in rows.groupby(hue, sort=False)}


def legend_handles(
    hue: str | None, hues: list[Any], colors: dict[Any, Any], theory: str, dots: bool = False
) -> list[Any]:
    """Legend entries: a line (or a dot) per hue value, and the dashed extra if any."""
    style: dict[str, Any] = {"marker": "o", "linestyle": "none"} if dots else {}
    handles: list[Any] = []
    if hue is not None:
        handles = [
            matplotlib.lines.Line2D([], [], color=colors[h], label=label(h), **style) for h in hues
        ]
    if theory:
        extra: dict[str, Any] = (
            {"marker": "_", "markersize": 14, "linestyle": "none"} if dots else {}
        )
        line: dict[str, Any] = {"color": "0.3", "linestyle": "--", "label": theory} | extra
        handles.append(matplotlib.lines.Line2D([], [], **line))
    return handles


def band_plot(
    frame: pd.DataFrame,
    x: str,
    hue: str | None,
    facets: Sequence[str],
    metric: Metric,
    *,
    dashed: pd.DataFrame | None = None,
    dashed_label: str = "mean-field theory",
    size: tuple[float, float] = (PANEL_WIDTH, PANEL_HEIGHT),
    names: Mapping[Any, str] | None = None,
) -> Figure:
    """Lines of ``mean`` over ``x`` with a ``low``-``high`` band, one colour per ``hue``
    value (one line when ``hue`` is None: nothing varies), one panel per facet combination.

    ``dashed``: extra lines (same hue and facets) drawn dashed, e.g. a theoretical value.
    """
    panels = panels_of(frame, facets)
    hues = _hues(frame, hue)
    colors = palette(hues)
    columns = min(_columns(frame, facets), max(len(panels), 1))
    width = max(size[0], MIN_WIDTH / columns)
    # one x axis (epochs or layers, the same in every panel), labelled under the bottom row
    fig, axes = grid_of(len(panels), col_wrap=columns, width=width, height=size[1], sharex=True)
    for ax, (_, where, panel) in zip(axes, panels, strict=True):
        draw_bands(ax, panel, x, hue, colors, dashed, where, names)
    _label_axes(axes, x, metric, columns)
    scale_axes(axes, metric, frame)
    add_note(
        fig, table_titles(fig, axes, [where for _, where, _ in panels], facets, columns, width)
    )
    extra = dashed_label if dashed is not None else ""
    decorate(fig, hue, legend_handles(hue, hues, colors, extra), width * columns)
    return fig


def draw_bands(
    ax: Any,
    panel: pd.DataFrame,
    x: str,
    hue: str | None,
    colors: dict[Any, Any],
    dashed: pd.DataFrame | None,
    where: dict[str, Any],
    names: Mapping[Any, str] | None,
) -> None:
    """One panel's lines and bands, a colour per hue value (``colors``' keys, in order);
    ``dashed`` rows of this panel (``where``) as dashed lines."""
    lines, theories = _by_hue(panel, hue, {}), _by_hue(dashed, hue, where)
    for value, color in colors.items():
        if value not in lines:
            continue
        line = lines[value].sort_values(x)
        ax.plot(line[x], line["mean"], color=color, linewidth=1.8)
        ax.fill_between(line[x], line["low"], line["high"], color=color, alpha=0.2, lw=0)
        if dashed is not None and value in theories:
            theory = theories[value].sort_values(x)
            ax.plot(theory[x], theory["mean"], linestyle="--", color=color, linewidth=1.2)
    if names:  # a model's declared layer names on the x axis (fitted: fit_ticks)
        ax.set_xticks(list(names), list(names.values()))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def along_x(
    frame: pd.DataFrame, facets: Sequence[str], dashed: pd.DataFrame | None = None
) -> str | None:
    """The facet a :func:`dot_plot` of ``frame`` draws as groups along its x axis: the last
    one when it has 2 to 4 values and there are others (else None: every facet a panel)."""
    if len(facets) < 2 or not 2 <= frame[facets[-1]].nunique(dropna=False) <= 4:
        return None
    return facets[-1] if dashed is None or facets[-1] in dashed.columns else None


def dot_plot(
    frame: pd.DataFrame,
    x: str,
    hue: str | None,
    facets: Sequence[str],
    metric: Metric,
    *,
    dashed: pd.DataFrame | None = None,
    dashed_label: str = "mean-field theory",
    size: tuple[float, float] = (PANEL_WIDTH, PANEL_HEIGHT),
    names: Mapping[Any, str] | None = None,
) -> Figure:
    """For a few ``x`` values (shallow models' layers): a dot and its interval per hue,
    side by side at each ``x``; ``dashed`` values as short dashes beside them.

    Lines through two or three points suggest a trend that is not there; dots say "these
    are the layers there are". A last facet of 2 to 4 values (the stage: init, then each
    optimizer's final) is not a column of panels but groups along the x axis, a gap and a
    rule between them, its values under each group: one panel per value of the other
    facets, a third of the panels a grid would draw (each costs the same to draw), and
    init and final side by side on one scale.
    """
    by = along_x(frame, facets, dashed)
    panel_facets = [f for f in facets if f != by]
    panels = panels_of(frame, panel_facets)
    hues = _hues(frame, hue)
    colors = palette(hues)
    slots = Slots(x, sorted(frame[x].dropna().unique().tolist()), by, groups_of(frame, by))
    columns, width, height = dot_grid(frame, panel_facets, len(panels), size, slots)
    fig, axes = grid_of(len(panels), col_wrap=columns, width=width, height=height, sharex=True)
    for ax, (_, where, panel) in zip(axes, panels, strict=True):
        draw_dots(ax, panel, hue, colors, dashed, where, slots)
        slots.ticks(ax, names)
    _label_axes(axes, f"{x}, by {by}" if by else x, metric, columns)
    scale_axes(axes, metric, frame)
    note = table_titles(fig, axes, [where for _, where, _ in panels], panel_facets, columns, width)
    if by:
        note = f"{note}; {by} along x" if note else f"{by} along x"
    add_note(fig, note)
    extra = dashed_label if dashed is not None else ""
    decorate(fig, hue, legend_handles(hue, hues, colors, extra, dots=True), width * columns)
    return fig


def groups_of(frame: pd.DataFrame, by: str | None) -> list[Any]:
    return list(dict.fromkeys(frame[by])) if by else [None]


@dataclass(frozen=True)
class Slots:
    """Where a dot plot puts each row along x: the ``x`` values (layers) in order, and with
    a facet ``by`` along x, one group of them per value of ``by``, a slot apart."""

    x: str
    xs: list[Any]
    by: str | None
    groups: list[Any]

    @property
    def count(self) -> int:
        """Slots on the axis: the layers and the gaps between groups."""
        return len(self.groups) * (len(self.xs) + 1) - 1

    def at(self, rows: pd.DataFrame, offset: float = 0.0) -> np.ndarray:
        """Each row's place: its ``x`` value's index within its group."""
        layer = rows[self.x].map({v: i for i, v in enumerate(self.xs)}).to_numpy(float)
        group = 0.0
        if self.by:
            group = rows[self.by].map({g: i for i, g in enumerate(self.groups)}).to_numpy(float)
        return group * (len(self.xs) + 1) + layer + offset

    def ticks(self, ax: Any, names: Mapping[Any, str] | None) -> None:
        """:meth:`labels` and :meth:`rules`."""
        self.labels(ax, names)
        self.rules(ax)

    def labels(self, ax: Any, names: Mapping[Any, str] | None) -> None:
        """Layer labels at each slot; with groups, each group's value centred under its
        layers (major ticks, padded below the layer labels). Axes that share x share
        these: set once per labelled axes (benchinit.figures.stacked)."""
        xs, groups = self.xs, self.groups
        span = len(xs) + 1
        layers = [(names or {}).get(v) or label(v) for v in xs]
        if groups == [None]:
            ax.set_xticks(range(len(xs)), layers)
            ax.set_xlim(-0.6, len(xs) - 0.4)
            return
        ax.set_xticks(
            [g * span + i for g in range(len(groups)) for i in range(len(xs))],
            layers * len(groups),
            minor=True,
        )
        ax.set_xticks(
            [g * span + (len(xs) - 1) / 2 for g in range(len(groups))],
            [label(g, 14) for g in groups],
        )
        ax.tick_params(axis="x", which="major", pad=13, length=0, labelsize="small")
        ax.tick_params(axis="x", which="minor", length=0, labelsize="small")
        ax.set_xlim(-0.6, len(groups) * span - 1.4)

    def rules(self, ax: Any) -> None:
        """With groups: no vertical grid, a light rule between groups (each axes' own)."""
        if self.groups == [None]:
            return
        ax.grid(False, axis="x", which="both")
        for g in range(1, len(self.groups)):
            ax.axvline(g * (len(self.xs) + 1) - 1, color="0.85", linewidth=0.8)


def draw_dots(
    ax: Any,
    panel: pd.DataFrame,
    hue: str | None,
    colors: dict[Any, Any],
    dashed: pd.DataFrame | None,
    where: dict[str, Any],
    slots: Slots,
) -> None:
    """One panel's dots and intervals, the hue values (``colors``' keys) side by side at
    each slot; ``dashed`` rows of this panel (``where``) as short dashes on theirs."""
    step = 0.7 / max(len(colors), 1)
    groups, theories = _by_hue(panel, hue, {}), _by_hue(dashed, hue, where)
    for k, (value, color) in enumerate(colors.items()):
        offset = (k - (len(colors) - 1) / 2) * step
        if value not in groups:
            continue
        dots = groups[value]
        mean, low, high = (dots[c].to_numpy(float) for c in ("mean", "low", "high"))
        bars = np.clip(np.nan_to_num([mean - low, high - mean], nan=0.0, posinf=np.inf), 0, None)
        ax.errorbar(slots.at(dots, offset), mean, bars, fmt="o", color=color, capsize=2)
        if value in theories:
            theory = theories[value]
            ax.plot(
                slots.at(theory, offset),
                theory["mean"],
                linestyle="none",
                marker="_",
                markersize=16,
                markeredgewidth=1.6,
                color="0.15",
                zorder=4,
            )


def dot_grid(
    frame: pd.DataFrame,
    facets: Sequence[str],
    panels: int,
    size: tuple[float, float],
    slots: Slots,
) -> tuple[int, float, float]:
    """A dot plot's (columns, panel width, panel height): with groups along x, the panels
    run across, each wide enough for its groups, the figure at most the page's width."""
    if slots.by:
        columns = min(panels, GROUPED_ACROSS)
        width = min(GROUPED_WIDTH, 0.8 + 0.5 * slots.count, PAGE_WIDTH / columns)
    else:
        columns = min(_columns(frame, facets), max(panels, 1))
        width = size[0]
    return columns, max(width, MIN_WIDTH / columns), size[1] + (0.2 if slots.by else 0.0)


def decorate(fig: Figure, hue: str | None, handles: list[Any], width: float) -> None:
    """The legend under the panels, and the figure made taller by what the panels' own
    height leaves out: the note above, the x label and the legend's rows below."""
    rows = add_legend(fig, hue, handles, width=width)
    fig.set_figheight(fig.get_figheight() + 0.45 + 0.22 * rows)


def add_note(fig: Figure, note: str) -> None:
    if note:
        fig.suptitle(note, fontsize="small", color="0.3", x=0.01, ha="left")


def table_titles(
    fig: Figure,
    axes: Sequence[Any],
    panels: Sequence[dict[str, Any]],
    facets: Sequence[str],
    columns: int,
    width: float,
) -> str:
    """Panel titles, and the note that says what the panels are. A full grid, one row per
    value of the leading facets and the last facet's values across, is titled like a
    table: the last facet's values over the top row and each row's values down its right
    edge, so no title repeats its row's or its column's; any other set of panels has each
    panel titled with its values."""
    keys = [tuple(where[f] for f in facets) for where in panels]
    grid = (
        len(facets) > 1
        and columns > 1
        and len(keys) % columns == 0
        and all(k[:-1] == keys[i - i % columns][:-1] for i, k in enumerate(keys))
        and all(k[-1] == keys[i % columns][-1] for i, k in enumerate(keys))
    )
    if not grid:
        set_titles(fig, axes, [SEPARATOR.join(str(v) for v in k) for k in keys], width)
        return "panels: " + SEPARATOR.join(facets) if facets else ""
    set_titles(fig, axes[:columns], [str(k[-1]) for k in keys[:columns]], width)
    for row in range(len(keys) // columns):
        value = SEPARATOR.join(str(v) for v in keys[row * columns][:-1])
        axes[row * columns + columns - 1].annotate(
            "\n".join(textwrap.wrap(value, 22, break_on_hyphens=False)[:2]) or value,
            xy=(1.04, 0.5),
            xycoords="axes fraction",
            rotation=-90,
            va="center",
            ha="left",
            fontsize="small",
        )
    return f"rows: {SEPARATOR.join(facets[:-1])}, columns: {facets[-1]}"


def _label_axes(axes: Sequence[Any], x: str, metric: Metric, columns: int) -> None:
    """The metric once, left of the panels (of the first one when there is one row), wrapped
    to a panel's height: a figure's label is centred on the whole figure, and beside one
    short row of panels it ran into the legend below; ``x`` under each column's lowest panel."""
    for i, ax in enumerate(axes):
        ax.set_ylabel("")
        ax.set_xlabel(x if i + columns >= len(axes) else "")
    fig = axes[0].figure
    size = matplotlib.font_manager.FontProperties(
        size=matplotlib.rcParams["axes.labelsize"]
    ).get_size_in_points()
    rows = -(-len(axes) // columns)
    room = max(8, int(fig.get_figheight() * 72 * 0.85 / (0.6 * size)))  # characters a line
    text = "\n".join(textwrap.wrap(metric.label, room, break_on_hyphens=False)[:2])
    if rows == 1:  # beside its one row of panels (a figure's label is centred on the figure)
        axes[0].set_ylabel(text or metric.label, fontsize=size)
    else:
        fig.supylabel(text or metric.label, fontsize=size)
