"""How a figure is laid out: panel grids, panel titles that fit, legends, and each
metric's axis scale and limits. Shared by :mod:`benchinit.figures.drawing` and
:mod:`benchinit.figures.facets` (see the former's docstring for the choices).
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchinit.metrics import Metric

MAX_PANELS = 24
MAX_HUES = 10
WIDE = 30  # "auto" scales go logarithmic when positive values span more than this
SEPARATOR = " · "
ROOM = 0.7  # share of a panel's width its title may take (see set_titles)
LABEL = 24  # characters per line of a tick, legend or row label (see label)


def grid_of(
    panels: int,
    *,
    col_wrap: int = 4,
    width: float = 3.4,
    height: float = 2.7,
    sharey: bool = True,
    sharex: bool = False,
) -> tuple[Figure, list[Any]]:
    """A figure of ``panels`` axes, ``col_wrap`` to a row (the rest hidden). ``sharex``:
    one x axis, labelled under the bottom row only, where the grid is full (a hidden
    panel would leave the one above it unlabelled)."""
    cols = min(max(panels, 1), col_wrap)
    rows = math.ceil(max(panels, 1) / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    sharex = sharex and panels == rows * cols
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey, sharex=sharex)
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


def label(value: Any, budget: int = LABEL, lines: int = 2) -> str:
    """A grid value as a tick, legend or row label: wrapped into at most ``lines`` lines of
    about ``budget`` characters, the rest elided with "…". Panel titles wrap and shrink
    instead (:func:`set_titles`); the report's tables always show values whole. Without
    this, one long value (an optimizer with its arguments, a plugin's long name) squeezes a
    panel to nothing."""
    text = str(value)
    wrapped = textwrap.wrap(text, budget, break_on_hyphens=False) or [text]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: budget - 1].rstrip() + "…"
    return "\n".join(wrapped)


def set_titles(
    fig: Figure,
    axes: Sequence[Any],
    titles: Sequence[str],
    width: float,
    *,
    measure: bool = False,
) -> None:
    """Panel titles that fit their panels, at the largest font size that does.

    Each title is wrapped to the panel's width (``width`` inches) in at most 3 lines (its
    values kept whole where they fit, nothing cut) and its widest line measured against
    ``ROOM`` of the panel width: the share a panel's axes keep after constrained layout has
    placed tick labels and padding (measured on our figures: 90-94% with several columns,
    about 78% with one). If a size does not fit, a smaller one is tried. The figure is made
    taller by the extra lines. ``measure``: also check against the laid-out axes and shrink
    further (for panels whose tick labels may take much of the width, as in heatmaps).
    """
    renderer = FigureCanvasAgg(fig).get_renderer()
    room = width * ROOM * fig.dpi
    base = float(matplotlib.rcParams["axes.titlesize"])
    titled = [(ax, t) for ax, t in zip(axes, titles, strict=False) if t]
    lines_used = 1
    for size in (base * f for f in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)):
        budget = max(12, int(width * ROOM * 72 / (size * 0.55)))  # characters per line
        wrapped = [(ax, wrap_title(t, budget)) for ax, t in titled]
        for ax, lines in wrapped:
            ax.set_title("\n".join(lines), fontsize=size)
        lines_used = max((len(lines) for _, lines in wrapped), default=1)
        widest = max((ax.title.get_window_extent(renderer).width for ax, _ in wrapped), default=0)
        if lines_used <= 3 and widest <= room:
            break
    if lines_used > 1:
        rows = len({ax.get_subplotspec().rowspan.start for ax in axes})
        fig.set_figheight(fig.get_figheight() + rows * (lines_used - 1) * size * 1.25 / 72)
    if measure:
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


def add_legend(
    fig: Figure, title: str | None, handles: list[Any], width: float | None = None
) -> int:
    """A legend under the panels, in as many columns as fit ``width`` inches (about 1.8
    inches an entry; 5 at most); returns its rows of text (its title's included)."""
    if not handles:
        return 0
    fit = 5 if width is None else max(1, int(width / 1.8))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), fit),
        title=title,
        frameon=False,
    )
    return math.ceil(len(handles) / min(len(handles), fit)) + (1 if title else 0)


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


def axis_scale(metric: Metric, frame: pd.DataFrame) -> str:
    """The scale :func:`scale_axes` gives ``frame``'s values: "log" or "linear" (a log
    metric with a value at or below 0 is drawn linear; captions say which)."""
    means = _finite(frame["mean"])
    spread = _finite(frame["low"], frame["high"]) if "low" in frame else np.array([])
    return "log" if _is_log(metric, means, spread) else "linear"


def scale_axes(axes: Sequence[Any], metric: Metric, frame: pd.DataFrame, axis: str = "y") -> str:
    """Give ``axes`` the metric's scale and limits for ``frame``'s mean/low/high; returns
    the scale used ("log" or "linear")."""
    means = _finite(frame["mean"])
    spread = _finite(frame["low"], frame["high"]) if "low" in frame else np.array([])
    log = axis_scale(metric, frame) == "log"
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
            log_ticks(ax.yaxis if axis == "y" else ax.xaxis, *limits)
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


def log_ticks(target: Any, low: float, high: float) -> None:
    """Decades labelled as plain numbers; within narrow ranges (under 2 decades) a few
    minor ticks too, so an axis from 0.2 to 4 reads 0.2, 0.5, 1, 2. Wider ranges have no
    minor ticks: unlabelled and undrawn in our style (no tick marks, major grid only),
    they were eight tick objects a decade to lay out and draw (an axis over nine decades,
    72: a third of the seed study's signal figure)."""
    decades = math.log10(high / low)
    target.set_major_locator(matplotlib.ticker.LogLocator(base=10))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
    if decades < 2:
        subs = (2.0, 5.0) if decades > 1 else (2.0, 3.0, 5.0)
        target.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
        target.set_minor_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
    else:
        target.set_minor_locator(matplotlib.ticker.NullLocator())


# --- tick labels that never run together -------------------------------------------------

GAP = 2.0  # pixels between two tick labels
SLANT = 35.0  # degrees: the rotation of crowded x tick labels


def _crowded(boxes: list[Any], axis: str) -> bool:
    """Whether any two boxes (sorted along ``axis``) touch or overlap along it."""
    lo, hi = ("x0", "x1") if axis == "x" else ("y0", "y1")
    spans = sorted((getattr(b, lo), getattr(b, hi)) for b in boxes)
    return any(start < end + GAP for (_, end), (start, _) in itertools.pairwise(spans))


def _every(positions: list[float], needed: float) -> int:
    """The least k such that every k-th label is ``needed`` pixels from the next one."""
    gaps = np.diff(sorted(positions))
    step = float(gaps.min()) if len(gaps) else needed
    return max(1, math.ceil(needed / max(step, 1e-9)))


def _may_crowd(ax: Any, name: str, renderer: Any) -> bool:
    """Whether an axis's labels could touch: together, with their gaps, they take more than
    half its length before layout (layout takes at most that much away for margins). Text
    extents need no layout, so a figure whose labels are short is never laid out twice."""
    axis = getattr(ax, f"{name}axis")
    labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
    if len(labels) < 2:
        return False
    boxes = [t.get_window_extent(renderer) for t in labels]
    room = ax.get_window_extent(renderer)
    used = sum(b.width if name == "x" else b.height for b in boxes) + GAP * len(boxes)
    return used > 0.5 * (room.width if name == "x" else room.height)


def fit_ticks(fig: Figure, *, drawn: bool = False) -> bool:
    """Tick labels that do not run together, decided by their measured extents on the laid
    out figure: crowded x labels are slanted, and where even slanted ones would touch (or y
    labels crowd) only every k-th is kept. Only axes with labels set by hand (categories,
    values tried) are checked: matplotlib's own locators already space theirs. Returns
    whether any label changed (the figure must be drawn again).

    ``drawn``: the figure was just drawn, so its layout is current and is measured as it
    is (the report draws first and again only where this returns True: few figures
    crowd). Otherwise a figure whose labels may crowd is laid out first, and one whose
    labels are short is not (text extents need no layout)."""
    fixed = matplotlib.ticker.FixedLocator
    axes = [
        (ax, name)
        for ax in fig.axes
        for name in ("x", "y")
        if isinstance(getattr(ax, f"{name}axis").get_major_locator(), fixed)
    ]
    renderer = FigureCanvasAgg(fig).get_renderer()
    if not drawn:
        axes = [(ax, name) for ax, name in axes if _may_crowd(ax, name, renderer)]
        if not axes:
            return False
        fig.draw_without_rendering()
    changed, done = False, set[tuple[Any, str]]()
    for ax, name in axes:
        if (ax, name) in done:
            continue
        axis = getattr(ax, f"{name}axis")
        ticks = [t for t in axis.get_ticklabels() if t.get_visible()]
        labels = [t for t in ticks if t.get_text()]
        boxes = [t.get_window_extent(renderer) for t in labels]
        if len(boxes) < 2 or not _crowded(boxes, name):
            continue
        lines = max(t.get_text().count("\n") + 1 for t in labels)
        height = max(t.get_fontsize() for t in labels) * fig.dpi / 72 * 1.2 * lines
        centres = [(b.x0 + b.x1) / 2 if name == "x" else (b.y0 + b.y1) / 2 for b in boxes]
        slant = math.sin(math.radians(SLANT)) if name == "x" else 1.0
        keep = _every(centres, (height + GAP) / slant)
        texts = [t.get_text() if i % keep == 0 else "" for i, t in enumerate(ticks)]
        slanted = name == "y" or all(t.get_rotation() == SLANT for t in labels)
        if slanted and texts == [t.get_text() for t in ticks]:
            continue  # fitted already (slanted labels' boxes overlap along x by design)
        changed = True
        # axes that share this axis share its labels: fitted together, measured once
        siblings = getattr(ax, f"get_shared_{name}_axes")().get_siblings(ax)
        done.update((other, name) for other in siblings)
        locations = axis.get_ticklocs()[: len(texts)]
        for other in siblings:
            shared = getattr(other, f"{name}axis")
            if name == "y":
                shared.set_ticks(locations, texts)
            else:
                tilted = {"rotation": SLANT, "horizontalalignment": "right"}
                shared.set_ticks(locations, texts, rotation_mode="anchor", **tilted)
    return changed
