"""Seaborn figures of tidy result tables, each returned as an embeddable image string.

Every function takes DataFrames (already aggregated over seeds where that applies) and a
:class:`~benchinit.metrics.Metric` row saying how its values are shown, draws on a fresh
``matplotlib.figure.Figure`` (never pyplot's global state) and returns it; :func:`render`
and :func:`render_image` run a drawing function inside a seaborn style context that is
restored afterwards and return the image, so templates only ever see strings.

- **Axes per metric.** A metric's row decides its axis: bounded metrics (accuracies,
  fractions, entropies) are linear over their whole range, so panels and runs compare at a
  glance; losses and gradient norms are logarithmic; ``auto`` goes log only when positive
  values span more than ``WIDE`` times. Bands arrive clipped to the range (the report's data
  layer clips and says so); on a log axis the limits come from the means and the positive
  band ends, so a band reaching 0 runs off the bottom instead of stretching the axis over
  decades.
- **Facets.** At most ``MAX_PANELS`` panels per figure and ``MAX_HUES`` lines per panel (the
  caller says what is left out). A panel's title is its values only (``relu · adam``),
  wrapped to the panel's width and shrunk until it fits (measured on the drawn figure); the
  axis names are said once, at the top (``panels: activation · optimizer``).
- **Sharp when zoomed.** :func:`render_image` saves a PNG at ``SHARP`` device pixels per CSS
  pixel, reduced to a 256-colour palette (plots have few colours; on the seed report this
  made the 2x PNGs 15% smaller than plain 1x ones), and, when that PNG is over
  ``SVG_TRY_BYTES``, also an SVG, keeping the smaller. Measured on the seed and a shrunken
  mnist-mlp report, the palette PNG was the smaller for every figure: matplotlib's SVG
  carries each glyph as a path (35-85 KB at least), so small figures never try it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import textwrap
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

from benchinit.metrics import Metric

MAX_PANELS = 24
MAX_HUES = 10
MAX_LAYERS = 6  # histogram columns: first, last and evenly spaced ones between
DPI = 96  # CSS pixels per inch: a figure's size on the page
SHARP = 2  # device pixels per CSS pixel in report figures (hi-DPI screens, zoom)
SVG_TRY_BYTES = 48_000
WIDE = 30  # "auto" scales go logarithmic when positive values span more than this
SEPARATOR = " · "


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
        matplotlib.rcParams["svg.hashsalt"] = "benchinit"  # the same figure, the same bytes
        matplotlib.rcParams["svg.fonttype"] = "path"  # no dependence on the reader's fonts
        yield


def _save(fig: Figure, fmt: str, dpi: int) -> bytes:
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def _palette_png(png: bytes) -> tuple[bytes, tuple[int, int]]:
    image = PILImage.open(io.BytesIO(png)).convert("RGB")
    quantized = image.quantize(256, method=PILImage.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    quantized.save(buffer, format="png", optimize=True)
    return buffer.getvalue(), image.size


def render(draw: Callable[..., Figure], *args: Any, **kwargs: Any) -> str:
    """Draw in seaborn's style (restored after); a 96-dpi PNG data URI.

    For pages that show an image at its pixel size (compare, history, plugin sections);
    the report uses :func:`render_image`.
    """
    with style():
        png = _save(draw(*args, **kwargs), "png", DPI)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_image(draw: Callable[..., Figure], *args: Any, **kwargs: Any) -> Image:
    """Draw in seaborn's style; the smaller of a sharp PNG and an SVG (module docstring)."""
    with style():
        fig = draw(*args, **kwargs)
        data, (width, height) = _palette_png(_save(fig, "png", DPI * SHARP))
        fmt, mime = "png", "image/png"
        if len(data) > SVG_TRY_BYTES:
            svg = _save(fig, "svg", DPI)
            if len(svg) < len(data):
                data, fmt, mime = svg, "svg", "image/svg+xml"
    src = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    return Image(src, round(width / SHARP), round(height / SHARP), fmt)


# --- layout helpers ---------------------------------------------------------------------


def grid_of(
    panels: int, *, col_wrap: int = 4, width: float = 3.4, height: float = 2.7, sharey: bool = True
) -> tuple[Figure, list[Any]]:
    cols = min(max(panels, 1), col_wrap)
    rows = math.ceil(max(panels, 1) / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat[: max(panels, 1)]


def palette(values: Sequence[Any]) -> dict[Any, Any]:
    colors = sns.color_palette("tab10", max(len(values), 1))
    return dict(zip(values, colors, strict=False))


def panels_of(
    frame: pd.DataFrame, facets: Sequence[str]
) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """Split a frame into panels, one per combination of the facet columns (capped).

    Each panel is (title, {facet: value}, rows); the title lists the values only.
    """
    if not facets:
        return [("", {}, frame)]
    panels = []
    for key, group in frame.groupby(list(facets), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(facets, key, strict=True))
        panels.append((SEPARATOR.join(str(v) for v in key), values, group))
    return panels[:MAX_PANELS]


def wrap_title(title: str, budget: int) -> list[str]:
    """A panel title's lines: its values (``a · b · c``) packed greedily into lines of
    about ``budget`` characters, a value longer than a line wrapped at spaces."""
    lines: list[str] = []
    for value in title.split(SEPARATOR):
        pieces = textwrap.wrap(value, budget, break_on_hyphens=False) or [value]
        if lines and len(lines[-1]) + len(SEPARATOR) + len(pieces[0]) <= budget:
            lines[-1] += SEPARATOR + pieces.pop(0)
        lines.extend(pieces)
    return lines


def set_titles(fig: Figure, axes: Sequence[Any], titles: Sequence[str], width: float) -> None:
    """Panel titles wrapped to the panel width (inches) at the largest of a few font
    sizes that keeps them within 3 lines (nothing is cut), the figure made taller by the
    extra lines, and then shrunk wherever one is still wider than its panel (measured)."""
    base = float(matplotlib.rcParams["axes.titlesize"])
    for size in (base, base * 0.9, base * 0.8, base * 0.7):
        budget = max(12, int(width * 72 * 0.8 / (size * 0.6)))  # characters per line
        wrapped = [wrap_title(t, budget) if t else [] for t in titles]
        if max((len(w) for w in wrapped), default=0) <= 3:
            break
    for ax, lines in zip(axes, wrapped, strict=False):
        ax.set_title("\n".join(lines), fontsize=size)
    extra = max((len(w) for w in wrapped), default=1) - 1
    if extra > 0:
        rows = len({ax.get_subplotspec().rowspan.start for ax in axes})
        fig.set_figheight(fig.get_figheight() + rows * extra * size * 1.25 / 72)
    if any(len(line) > 0.6 * budget for lines in wrapped for line in lines):
        fit_titles(fig, axes)


def fit_titles(fig: Figure, axes: Sequence[Any]) -> None:
    """Shrink any panel title wider than its panel, measured on the laid-out figure."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()  # lays the panels out (constrained layout)
    for ax in axes:
        title = ax.title
        room = ax.get_window_extent(renderer).width
        size = title.get_fontsize()
        while title.get_text() and title.get_window_extent(renderer).width > room and size > 5:
            size *= 0.9
            title.set_fontsize(size)


def note_panels(fig: Figure, facets: Sequence[str]) -> None:
    if facets:
        fig.suptitle(
            "panels: " + SEPARATOR.join(facets), fontsize="small", color="0.3", x=0.01, ha="left"
        )


def add_legend(fig: Figure, title: str | None, handles: list[Any]) -> None:
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 5),
            title=title,
            frameon=False,
        )


def _finite(*columns: pd.Series) -> np.ndarray:
    values = np.concatenate([pd.to_numeric(c, errors="coerce").to_numpy(float) for c in columns])
    return values[np.isfinite(values)]


def _is_log(metric: Metric, means: np.ndarray, spread: np.ndarray) -> bool:
    if metric.scale == "linear" or not len(means) or (means <= 0).any():
        return False
    if metric.scale == "log":
        return True
    values = np.concatenate([means, spread])
    return bool((values > 0).all() and values.max() / values.min() > WIDE)


def scale_axes(axes: Sequence[Any], metric: Metric, frame: pd.DataFrame, axis: str = "y") -> str:
    """Give ``axes`` the metric's scale and limits for ``frame``'s mean/low/high; returns
    the scale used ("log" or "linear")."""
    means = _finite(frame["mean"])
    spread = _finite(frame["low"], frame["high"]) if "low" in frame else np.array([])
    log = _is_log(metric, means, spread)
    limits: tuple[float, float] | None = None
    if log:
        shown = np.concatenate([means, spread[spread > 0]])
        limits = (shown.min() / 1.6, shown.max() * 1.6)
    elif all(math.isfinite(b) for b in metric.bounds) and metric.bounds[1] > metric.bounds[0]:
        low, high = metric.bounds
        pad = 0.04 * (high - low)
        limits = (low - pad, high + pad)
    for ax in axes:
        if log:
            (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        if limits is not None:
            (ax.set_ylim if axis == "y" else ax.set_xlim)(*limits)
        if log and limits is not None:
            _log_ticks(ax.yaxis if axis == "y" else ax.xaxis, *limits)
    return "log" if log else "linear"


def _tick_label(value: float, _: Any = None) -> str:
    """0.3, 2, 1000 as plain numbers; very small or large ones as powers of ten."""
    if value <= 0:
        return ""
    if 1e-3 <= value < 1e5:
        return f"{value:g}"
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return f"$10^{{{round(exponent)}}}$"
    return f"{value:.0e}"


def _log_ticks(target: Any, low: float, high: float) -> None:
    """Decades labelled as plain numbers; within narrow ranges (under 2 decades) a few
    minor ticks too, so an axis from 0.2 to 4 reads 0.2, 0.5, 1, 2."""
    decades = math.log10(high / low)
    target.set_major_locator(matplotlib.ticker.LogLocator(base=10))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
    if decades < 2:
        subs = (2.0, 5.0) if decades > 1 else (2.0, 3.0, 5.0)
        target.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
        target.set_minor_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
    else:
        target.set_minor_formatter(matplotlib.ticker.NullFormatter())


# --- results over configurations --------------------------------------------------------


def interval_plot(summary: pd.DataFrame, label: str, metric: Metric, limit: int = 30) -> Figure:
    """Mean and 95% CI of the main metric per configuration, best first (top ``limit``).

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
    ax.set_yticks(y, [str(v) for v in rows[label]])
    scale_axes([ax], metric, rows.rename(columns={"ci_low": "low", "ci_high": "high"}), axis="x")
    ax.set_xlabel(f"{metric.label} (mean and 95% CI over seeds)")
    return fig


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
        sns.heatmap(
            table,
            ax=ax,
            annot=table.size <= 64,
            fmt=".3g",
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            cbar=ax is axes[-1],
            cbar_kws={"label": metric.label},
            linewidths=0.5,
        )
    set_titles(fig, axes, [title for title, _, _ in panels], width)
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
    ax.set_yticks(y, rows["configuration"].tolist())
    ax.set_xlabel("difference, NEW - BASE (positive: better)")
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig
