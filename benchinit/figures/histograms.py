"""Histogram figures from stored counts: the lesson's grid of activation histograms (one
row per configuration, one column per layer) and the density grid of the Jacobian spectrum.
Bars are the share of values per stored bin (nothing is re-binned); the values beyond the
range, counted apart, are hatched bars a gap past each end (:func:`outside_text`). Bars are
read against horizontal grid lines only: vertical ones say nothing a bar's edge does not, and
drawing them was 15% of a histogram grid's time (the seed study's three are its costliest
figures).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.patches
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchinit.figures.drawing import MAX_LAYERS
from benchinit.figures.facets import table_titles
from benchinit.figures.layout import MAX_HUES, MAX_PANELS, grid_of, label, palette

MAX_COLUMNS = 6  # columns of a density grid
STEPS = [1, 2, 2.5, 5, 10]  # tick steps: -1, 0, 1 on tanh's range rather than -0.6, 0, 0.6


def few_ticks(ax: Any, decades: bool = False) -> None:
    """About three ticks on each axis of a histogram panel: a small multiple is read by its
    shape, and each tick is an object matplotlib lays out and draws (fewer ticks made the
    seed study's three histogram grids 10% cheaper). ``decades``: an x axis of log10
    values, ticked at whole decades."""
    x = matplotlib.ticker.MaxNLocator(4 if decades else 3, steps=STEPS, integer=decades)
    ax.xaxis.set_major_locator(x)
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))


def pick_layers(layers: Sequence[int], limit: int = MAX_LAYERS) -> list[int]:
    """At most ``limit`` layers: the first, the last, and evenly spaced ones between."""
    layers = sorted(set(layers))
    if len(layers) <= limit:
        return layers
    index = np.linspace(0, len(layers) - 1, limit).round().astype(int)
    return [layers[i] for i in sorted(set(index))]


LAYER_WIDTH = 2.2  # inches of a histogram panel
NARROW = 1.4  # inches of a histogram panel, at least, where three grids share a row
THIRD = 4.0  # inches: a third of the report's content column, gaps taken out


def _grid_width(layers: int) -> float:
    """A histogram grid's width: ``LAYER_WIDTH`` a layer column, or a third of the page
    where that leaves each column ``NARROW`` inches (one or two layers), so the section's
    grids (one per activation) sit three to a row instead of two."""
    narrow = (THIRD - 1.2) / max(layers, 1)
    return THIRD if narrow >= NARROW else LAYER_WIDTH * layers + 1.2


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
    width = _grid_width(len(layers))
    fig = Figure(figsize=(width, 1.3 * len(row_values) + 0.9), layout="constrained")
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
            ax.grid(False, axis="x")  # module docstring
            few_ticks(ax)
            if i == 0:
                ax.set_title((names or {}).get(layer) or f"layer {layer}")
    if not hue:
        fig.suptitle(title)
    lines = textwrap.wrap(f"activation value ({outside_text(frame)})", int(13 * width))
    fig.supxlabel("\n".join(lines), fontsize="small")
    added = 0.16 * (len(lines) - 1)
    if hue:  # above the panels, under the title (a narrow grid has no room beside them);
        # the title is the legend's: a figure title and a legend above are laid on each other
        handles = [matplotlib.patches.Patch(color=colors[v], label=label(v)) for v in hue_values]
        columns = min(len(handles), max(1, int(width / 1.8)))
        fig.legend(
            handles=handles,
            loc="outside upper center",
            ncols=columns,
            frameon=False,
            title="\n".join(textwrap.wrap(title, int(9 * width))),  # a title font's width
            title_fontsize=matplotlib.rcParams["figure.titlesize"],
        )
        added += 0.1 + 0.22 * math.ceil(len(handles) / columns)
    fig.set_figheight(fig.get_figheight() + added)
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
    # one x axis (every panel spans the same stored bins), labelled under the bottom row
    fig, axes = grid_of(
        len(pairs), col_wrap=wrap, width=2.6, height=1.55, sharey=False, sharex=True
    )
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
        ax.grid(False, axis="x")  # module docstring
        few_ticks(ax, decades=True)
    named = [a for a in (rows, cols) if a]
    where = [{a: v for a, v in zip((rows, cols), pair, strict=True) if a} for pair in pairs]
    note = table_titles(fig, axes, where, named, wrap, 2.6)
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
