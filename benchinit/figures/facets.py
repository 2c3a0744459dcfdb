"""Small-multiple figures over epochs and layers: bands, dots and the histogram grid.

Same conventions as :mod:`benchinit.figures.drawing` (fresh Figure objects, a Metric row for the
axis, titles that fit their panels). A panel shows one configuration of every axis except
the hue, so lines never mix configurations. Each frame holds ``mean``, ``low`` and ``high``
per (facets, hue, x), already aggregated over seeds and clipped to the metric's range.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.lines
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchinit.figures.drawing import MAX_LAYERS
from benchinit.figures.layout import (
    MAX_HUES,
    MAX_PANELS,
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
MIN_WIDTH = 3.6  # inches of panels at least: one or two small panels are made wider


def _columns(frame: pd.DataFrame, facets: Sequence[str]) -> int:
    """Panels per row: the last facet's values across, one row per value of the others
    (``relu: init, adam · final, sgd · final``), when it has 2 to 4; else rows of 4."""
    if len(facets) > 1 and 2 <= frame[facets[-1]].nunique() <= 4:
        return int(frame[facets[-1]].nunique())
    return 4


MAX_COLUMNS = 6  # columns of a density grid


def _hues(frame: pd.DataFrame, hue: str | None) -> list[Any]:
    return list(dict.fromkeys(frame[hue]))[:MAX_HUES] if hue else [None]


def _select(frame: pd.DataFrame, hue: str | None, value: Any, where: dict[str, Any]) -> Any:
    mask = pd.Series(True, index=frame.index)
    if hue is not None:
        mask &= frame[hue] == value
    for column, wanted in where.items():
        mask &= frame[column] == wanted
    return frame[mask]


def _handles(
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
    fig, axes = grid_of(len(panels), col_wrap=columns, width=width, height=size[1])
    for ax, (_, where, panel) in zip(axes, panels, strict=True):
        for value in hues:
            line = _select(panel, hue, value, {}).sort_values(x)
            if line.empty:
                continue
            color = colors[value]
            ax.plot(line[x], line["mean"], color=color, linewidth=1.8)
            ax.fill_between(line[x], line["low"], line["high"], color=color, alpha=0.2, lw=0)
            if dashed is not None:
                theory = _select(dashed, hue, value, where).sort_values(x)
                ax.plot(theory[x], theory["mean"], linestyle="--", color=color, linewidth=1.2)
        if names:  # a model's declared layer names on the x axis (fitted: fit_ticks)
            ax.set_xticks(list(names), list(names.values()))
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    _label_axes(axes, x, metric, columns)
    scale_axes(axes, metric, frame)
    _note(fig, _titles(fig, axes, [where for _, where, _ in panels], facets, columns, width))
    extra = dashed_label if dashed is not None else ""
    _decorate(fig, hue, _handles(hue, hues, colors, extra), width * columns)
    return fig


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
    are the layers there are".
    """
    panels = panels_of(frame, facets)
    hues = _hues(frame, hue)
    colors = palette(hues)
    xs = sorted(frame[x].dropna().unique().tolist())
    position = {v: i for i, v in enumerate(xs)}
    step = 0.7 / max(len(hues), 1)
    columns = min(_columns(frame, facets), max(len(panels), 1))
    width = max(size[0], MIN_WIDTH / columns)
    fig, axes = grid_of(len(panels), col_wrap=columns, width=width, height=size[1])
    for ax, (_, where, panel) in zip(axes, panels, strict=True):
        for k, value in enumerate(hues):
            offset = (k - (len(hues) - 1) / 2) * step
            dots = _select(panel, hue, value, {})
            if dots.empty:
                continue
            at = np.array([position[v] for v in dots[x]]) + offset
            lower = (dots["mean"] - dots["low"]).fillna(0).clip(lower=0)
            upper = (dots["high"] - dots["mean"]).fillna(0).clip(lower=0)
            ax.errorbar(
                at, dots["mean"], yerr=[lower, upper], fmt="o", color=colors[value], capsize=2
            )
            if dashed is not None:
                theory = _select(dashed, hue, value, where)
                at = np.array([position.get(v, np.nan) for v in theory[x]]) + offset
                ax.plot(
                    at,
                    theory["mean"],
                    linestyle="none",
                    marker="_",
                    markersize=16,
                    markeredgewidth=1.6,
                    color="0.15",
                    zorder=4,
                )
        ax.set_xticks(range(len(xs)), [(names or {}).get(v) or label(v) for v in xs])
        ax.set_xlim(-0.6, len(xs) - 0.4)
    _label_axes(axes, x, metric, columns)
    scale_axes(axes, metric, frame)
    _note(fig, _titles(fig, axes, [where for _, where, _ in panels], facets, columns, width))
    extra = dashed_label if dashed is not None else ""
    _decorate(fig, hue, _handles(hue, hues, colors, extra, dots=True), width * columns)
    return fig


def _decorate(fig: Figure, hue: str | None, handles: list[Any], width: float) -> None:
    """The legend under the panels, and the figure made taller by what the panels' own
    height leaves out: the note above, the x label and the legend's rows below."""
    rows = add_legend(fig, hue, handles, width=width)
    fig.set_figheight(fig.get_figheight() + 0.45 + 0.22 * rows)


def _note(fig: Figure, note: str) -> None:
    if note:
        fig.suptitle(note, fontsize="small", color="0.3", x=0.01, ha="left")


def _titles(
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
    """The metric once, left of the panels; ``x`` under the lowest panel of each column."""
    for i, ax in enumerate(axes):
        ax.set_ylabel("")
        ax.set_xlabel(x if i + columns >= len(axes) else "")
    axes[0].figure.supylabel(metric.label, fontsize=matplotlib.rcParams["axes.labelsize"])


def pick_layers(layers: Sequence[int], limit: int = MAX_LAYERS) -> list[int]:
    """At most ``limit`` layers: the first, the last, and evenly spaced ones between."""
    layers = sorted(set(layers))
    if len(layers) <= limit:
        return layers
    index = np.linspace(0, len(layers) - 1, limit).round().astype(int)
    return [layers[i] for i in sorted(set(index))]


def histogram_grid(
    frame: pd.DataFrame,
    rows: str | None,
    title: str,
    hue: str | None = None,
    names: Mapping[Any, str] | None = None,
) -> Figure:
    """The lesson's figure: one row per ``rows`` value (one row when None), one column per
    layer.

    ``frame`` holds summed counts per (rows, layer, bin) with ``left``/``right`` edges; bars
    are normalized to the share of activations in each bin. ``hue`` overlays phases.
    """
    row_values = list(dict.fromkeys(frame[rows]))[: MAX_PANELS // 2] if rows else [None]
    layers = pick_layers(frame["layer"].tolist())
    fig = Figure(
        figsize=(2.2 * len(layers) + 1.2, 1.3 * len(row_values) + 0.9), layout="constrained"
    )
    axes = fig.subplots(len(row_values), len(layers), squeeze=False, sharex=True, sharey="row")
    hue_values = list(dict.fromkeys(frame[hue])) if hue else [None]
    colors = palette(hue_values)
    for i, row_value in enumerate(row_values):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            cell = frame[frame["layer"] == layer]
            if rows:
                cell = cell[cell[rows] == row_value]
            for value in hue_values:
                part = cell if value is None else cell[cell[hue] == value]
                if not part.empty:
                    _bars(ax, part.sort_values("bin"), colors[value], hue, value == hue_values[0])
            ax.set_ylabel(label(row_value) if j == 0 and rows else "")
            ax.set_xlabel("")
            if i == 0:
                ax.set_title((names or {}).get(layer) or f"layer {layer}")
    fig.suptitle(title)
    fig.supxlabel(f"activation value ({outside_text(frame)})", fontsize="small")
    if hue:
        handles = [matplotlib.patches.Patch(color=colors[v], label=label(v)) for v in hue_values]
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
    return fig


def density_grid(
    frame: pd.DataFrame,
    rows: str | None,
    cols: str | None,
    hue: str | None,
    title: str,
    xlabel: str,
) -> Figure:
    """Stored histograms (``bin``, ``left``, ``right``, ``count``, summed per panel and hue
    value) as the share per bin: one panel per (``rows``, ``cols``) value pair, titled
    with its values, ``cols`` values across (at most ``MAX_COLUMNS``; without ``cols``
    the panels wrap in rows of 4), ``hue`` values overlaid as outlines (the first also
    filled). At most ``MAX_PANELS`` panels."""
    row_values = list(dict.fromkeys(frame[rows])) if rows else [None]
    col_values = list(dict.fromkeys(frame[cols]))[:MAX_COLUMNS] if cols else [None]
    pairs = [(r, c) for r in row_values for c in col_values][:MAX_PANELS]
    wrap = len(col_values) if cols else min(len(pairs), 4)
    fig, axes = grid_of(len(pairs), col_wrap=wrap, width=2.6, height=1.55, sharey=False)
    hue_values = list(dict.fromkeys(frame[hue]))[:MAX_HUES] if hue else [None]
    colors = palette(hue_values)
    for ax, (row_value, col_value) in zip(axes, pairs, strict=True):
        cell = frame if rows is None else frame[frame[rows] == row_value]
        cell = cell if cols is None else cell[cell[cols] == col_value]
        for value in hue_values:
            part = cell if value is None else cell[cell[hue] == value]
            if not part.empty:
                _bars(ax, part.sort_values("bin"), colors[value], hue, value == hue_values[0])
        ax.set_ylabel("share" if ax.get_subplotspec().is_first_col() else "")
    named = [a for a in (rows, cols) if a]
    where = [{a: v for a, v in zip((rows, cols), pair, strict=True) if a} for pair in pairs]
    note = _titles(fig, axes, where, named, wrap, 2.6)
    fig.suptitle(title + (f" ({note})" if note else ""))
    lines = textwrap.wrap(xlabel, 34 * wrap)
    fig.supxlabel("\n".join(lines), fontsize="small")
    fig.set_figheight(fig.get_figheight() + 0.5 + 0.16 * len(lines))  # titles, the x label
    if hue:
        handles = [
            matplotlib.patches.Patch(facecolor="none", edgecolor=colors[v], label=label(v))
            for v in hue_values
        ]
        fig.legend(handles=handles, loc="outside right upper", frameon=False, title=hue)
    return fig


def apart(frame: pd.DataFrame) -> bool:
    """Whether stored histograms count the values beyond their range apart (``bin`` -1 and
    ``bins``, infinite outer edges): folders made before they did folded them into the edge
    bins."""
    return bool((frame["bin"] < 0).any())


def outside_text(frame: pd.DataFrame, span: str = "the range") -> str:
    """How a histogram figure of ``frame`` shows the values beyond ``span``."""
    if apart(frame):
        return f"hatched bars a gap past each end hold the share of values beyond {span}"
    return f"values beyond {span} are counted in the edge bins"


def _bars(ax: Any, part: pd.DataFrame, color: Any, hue: str | None, first: bool) -> None:
    """One histogram from stored counts: the share of values per bin, drawn as stairs over
    the stored edges (counts are already binned; nothing is re-binned). The counts below
    and above the range (infinite outer edge) are hatched bars one bin wide, one bin
    outside the range, drawn only where they hold something."""
    outer = ~np.isfinite(part["left"].to_numpy(dtype=float)) | ~np.isfinite(
        part["right"].to_numpy(dtype=float)
    )
    counts = part["count"].to_numpy(dtype=float)
    total = counts.sum()
    share = counts / total if total else counts
    inner = part[~outer]
    if inner.empty:
        return
    edges = np.append(inner["left"].to_numpy(dtype=float), float(inner["right"].iloc[-1]))
    if not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
        return  # damaged edges: an empty panel rather than a wrong picture
    inside = share[~outer]
    if not hue or first:
        ax.stairs(inside, edges, fill=True, color=color, alpha=0.6 if hue else 0.85, lw=0)
    if hue:
        ax.stairs(inside, edges, color=color, linewidth=0.8)
    width = float(edges[1] - edges[0])
    below = float(share[outer & (part["bin"].to_numpy() < 0)].sum())
    above = float(share[outer & (part["bin"].to_numpy() >= 0)].sum())
    for value, left in ((below, edges[0] - 2 * width), (above, edges[-1] + width)):
        if value > 0:
            ax.bar(
                left,
                value,
                width,
                align="edge",
                color="none",
                edgecolor=color,
                hatch="////",
                linewidth=0.8,
            )
