"""Seaborn figures of tidy result tables, each returned as an embeddable image string.

Every function takes DataFrames (already aggregated over seeds where that applies) and a
:class:`~benchinit.metrics.Metric` row saying how its values are shown, draws on a fresh
``matplotlib.figure.Figure`` (never pyplot's global state) and returns it; :func:`render`
and :func:`render_image` run a drawing function inside a seaborn style context that is
restored afterwards and return the image, so templates only ever see strings. Layout
helpers (panel grids, titles, legends, scales) live in :mod:`benchinit.figures.layout`; the
faceted figures over epochs and layers in :mod:`benchinit.figures.facets`.

- **Axes per metric.** A metric's row decides its axis: bounded metrics (accuracies,
  fractions, entropies) are linear over their whole range, so panels and runs compare at a
  glance; losses and gradient norms are logarithmic; ``auto`` goes log only when positive
  values span more than ``WIDE`` times. Bands arrive clipped to the range (the report's data
  layer clips and says so); on a log axis the limits come from the means and the positive
  band ends, so a band reaching 0 runs off the bottom instead of stretching the axis over
  decades.
- **Facets.** At most ``MAX_PANELS`` panels per figure and ``MAX_HUES`` lines per panel (the
  caller says what is left out). A panel's title is its values only (``relu · adam``),
  wrapped to the panel's width at the largest font size that fits (measured); the
  axis names are said once, at the top (``panels: activation · optimizer``; a full grid
  is titled like a table, ``rows: activation, columns: stage``: benchinit.figures.facets).
- **Sharp when zoomed.** :func:`render_image` saves a PNG at ``SHARP`` device pixels per CSS
  pixel, reduced to a 256-colour palette (plots have few colours; on the seed report this
  made the 2x PNGs 15% smaller than plain 1x ones), and, when that PNG is over
  ``SVG_TRY_BYTES``, also an SVG, keeping the smaller. Measured on the seed and a shrunken
  mnist-mlp report (26 figures), the palette PNG (16-92 KB) was the smaller for every
  figure: matplotlib's SVG carries each glyph as a path (35-240 KB), and drawing it costs
  as much as drawing the PNG, so only a large PNG, where an SVG of sparse content could
  win, pays for the try.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.lines
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage

from benchinit.figures.layout import (
    MAX_HUES,
    MAX_PANELS,
    SEPARATOR,
    WIDE,
    fit_ticks,
    grid_of,
    label,
    note_panels,
    panels_of,
    scale_axes,
    set_titles,
)
from benchinit.metrics import Metric

__all__ = [
    "DPI",
    "MAX_HUES",
    "MAX_LAYERS",
    "MAX_PANELS",
    "SEPARATOR",
    "VERDICT_COLORS",
    "WIDE",
    "Image",
    "difference_plot",
    "heatmap",
    "interval_plot",
    "panels_of",
    "render",
    "render_image",
    "style",
]

MAX_LAYERS = 6  # histogram columns: first, last and evenly spaced ones between
DPI = 96  # CSS pixels per inch: a figure's size on the page
# device pixels per CSS pixel in report figures (zoom, hi-DPI screens): 1.5 cost the README
# example's page 0.1 MB more (0.70 against 0.60 MB) and drawing ~10% more CPU
SHARP = 1.25
SVG_TRY_BYTES = 150_000


@dataclass(frozen=True)
class Image:
    """An embeddable figure: a data URI and its size on the page in CSS pixels."""

    src: str
    width: int
    height: int
    format: str  # "png" | "svg"


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The look of every figure (seaborn's whitegrid), restored on leaving."""
    with matplotlib.rc_context():
        sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
        matplotlib.rcParams["axes.titley"] = 1.0
        matplotlib.rcParams["svg.hashsalt"] = "benchinit"  # the same figure, the same bytes
        matplotlib.rcParams["svg.fonttype"] = "path"  # no dependence on the reader's fonts
        yield


def _save(fig: Figure, fmt: str, dpi: float) -> bytes:
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)  # laid out: no "tight" pass
    return buffer.getvalue()


def _sharp_png(fig: Figure) -> tuple[bytes, tuple[int, int]]:
    """The figure drawn at ``SHARP`` device pixels per CSS pixel, as a 256-colour PNG and its
    size in device pixels. Drawn once on an Agg canvas and quantized from its buffer:
    ``savefig`` draws twice with a layout engine (once to lay out) and writes a PNG that had
    to be read back; the same bytes cost 16% less drawing (seed study, 14 figures)."""
    canvas = FigureCanvasAgg(fig)
    dpi = fig.dpi
    fig.set_dpi(DPI * SHARP)
    try:
        canvas.draw()  # the layout engine runs first, then everything is drawn
        image = PILImage.fromarray(np.asarray(canvas.buffer_rgba()), "RGBA")
    finally:
        fig.set_dpi(dpi)
    return _palette(image), image.size


def fitted_png(fig: Figure) -> tuple[bytes, tuple[int, int]]:
    """:func:`_sharp_png` with tick labels that do not run together: measured on the figure
    as drawn, and drawn again only where some had to be slanted or thinned (``fit_ticks``).
    Deciding before drawing laid a third of the report's figures out twice (their stage
    or category labels might crowd; almost none did); after, almost every figure is drawn
    once."""
    image = _sharp_png(fig)
    return _sharp_png(fig) if fit_ticks(fig, drawn=True) else image


def _palette(image: PILImage.Image) -> bytes:
    quantized = image.convert("RGB").quantize(256, method=PILImage.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    quantized.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def render(draw: Callable[..., Figure], *args: Any, **kwargs: Any) -> str:
    """Draw in seaborn's style (restored after); a 96-dpi PNG data URI.

    For pages that show an image at its pixel size (compare, history, plugin sections);
    the report uses :func:`render_image`.
    """
    with style():
        fig = draw(*args, **kwargs)
        fit_ticks(fig)
        png = _save(fig, "png", DPI)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_image(draw: Callable[..., Figure], *args: Any, **kwargs: Any) -> Image:
    """Draw in seaborn's style; the smaller of a sharp PNG and an SVG (module docstring)."""
    with style():
        fig = draw(*args, **kwargs)
        data, (width, height) = fitted_png(fig)
        fmt, mime = "png", "image/png"
        if len(data) > SVG_TRY_BYTES:
            svg = _save(fig, "svg", DPI)
            if len(svg) < len(data):
                data, fmt, mime = svg, "svg", "image/svg+xml"
    src = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    return Image(src, round(width / SHARP), round(height / SHARP), fmt)


# --- results over configurations --------------------------------------------------------


def interval_plot(summary: pd.DataFrame, name: str, metric: Metric, limit: int = 30) -> Figure:
    """Mean and 95% CI of the main metric per configuration (column ``name``), best first
    (top ``limit``).

    ``summary`` has ``mean``, ``ci_low`` and ``ci_high`` (already clipped to the range).
    """
    rows = summary.dropna(subset=["mean"]).head(limit).iloc[::-1]
    fig = Figure(figsize=(8.5, 0.9 + 0.28 * max(len(rows), 1)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    low = (rows["mean"] - rows["ci_low"]).fillna(0).clip(lower=0)
    high = (rows["ci_high"] - rows["mean"]).fillna(0).clip(lower=0)
    ax.errorbar(
        rows["mean"],
        y,
        xerr=[low, high],
        fmt="o",
        color=sns.color_palette()[0],
        ecolor="0.4",
        capsize=3,
    )
    ax.set_yticks(y, [label(v, 60, 1) for v in rows[name]])
    scale_axes([ax], metric, rows.rename(columns={"ci_low": "low", "ci_high": "high"}), axis="x")
    ax.set_xlabel(f"{metric.label} (mean and 95% CI over seeds)")
    return fig


def number(value: float) -> str:
    """3 significant digits, never ``-0``: a value that rounds to zero is ``0``."""
    if not np.isfinite(value):
        return ""
    text = f"{value:.3g}"
    return "0" if float(text) == 0 else text


def cell_labels(table: pd.DataFrame) -> np.ndarray:
    """A heatmap's annotations: :func:`number` of every cell."""
    return np.vectorize(number, otypes=[object])(table.to_numpy(dtype=float))


def heatmap(
    summary: pd.DataFrame,
    x: str,
    y: str,
    facets: Sequence[str],
    metric: Metric,
    order: dict[str, list[Any]] | None = None,
) -> Figure:
    """Mean of the metric over two grid axes, one panel per value of the other axes.

    ``order`` gives each axis's values in grid order (rows and columns follow it). Brighter
    is better: the colour map runs the metric's direction.
    """
    order = order or {}
    panels = panels_of(summary, facets)
    cmap = "viridis_r" if metric.direction == "min" else "viridis"
    width = 4.4
    fig, axes = grid_of(len(panels), col_wrap=3, width=width, height=3.4, sharey=False)
    vmin, vmax = summary["mean"].min(), summary["mean"].max()
    for ax, (_, _, frame) in zip(axes, panels, strict=True):
        table = frame.pivot_table(index=y, columns=x, values="mean", aggfunc="first", sort=False)
        table = table.reindex(
            index=[v for v in order.get(y, table.index) if v in table.index],
            columns=[v for v in order.get(x, table.columns) if v in table.columns],
        )
        table.index = [label(v) for v in table.index]
        table.columns = [label(v, 14, 3) for v in table.columns]
        sns.heatmap(
            table,
            ax=ax,
            annot=cell_labels(table) if table.size <= 64 else False,
            fmt="",
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            cbar=ax is axes[-1],
            cbar_kws={"label": metric.label},
            linewidths=0.5,
        )
    set_titles(fig, axes, [title for title, _, _ in panels], width, measure=True)
    note_panels(fig, facets)
    return fig


# --- comparisons ------------------------------------------------------------------------

VERDICT_COLORS = {
    "improved": "#1a7f37",
    "regressed": "#cf222e",
    "unchanged": "#59636e",
    "inconclusive": "#9a6700",
}


def difference_plot(frame: pd.DataFrame, limit: int = 40) -> Figure:
    """NEW - BASE per configuration (signed: right is better) with its interval; the grey
    bar is the tolerance. Regressions first; at most ``limit`` rows."""
    order = {"regressed": 0, "improved": 1, "inconclusive": 2, "unchanged": 3}
    rows = frame.assign(_o=frame["verdict"].map(order)).sort_values("_o", kind="stable")
    rows = rows.dropna(subset=["diff"]).head(limit).iloc[::-1]
    fig = Figure(figsize=(8.5, 1.0 + 0.3 * max(len(rows), 1)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(
        y,
        2 * rows["tolerance"],
        left=-rows["tolerance"],
        color="0.88",
        height=0.6,
        label="tolerance",
    )
    for verdict, color in VERDICT_COLORS.items():
        part = rows["verdict"] == verdict
        if part.any():
            ax.errorbar(
                rows["diff"][part],
                y[part.to_numpy()],
                xerr=[
                    (rows["diff"] - rows["ci_low"])[part],
                    (rows["ci_high"] - rows["diff"])[part],
                ],
                fmt="o",
                color=color,
                capsize=3,
                label=verdict,
            )
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, [label(v, 60, 1) for v in rows["configuration"]])
    ax.set_xlabel("difference, NEW - BASE (positive: better)")
    handles, labels = ax.get_legend_handles_labels()  # below the axes: never on an interval
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    return fig
