"""Seaborn figures of tidy result tables, each returned as a PNG data URI string.

Every function takes DataFrames (already aggregated over seeds where that applies), draws
on a fresh ``matplotlib.figure.Figure`` (never pyplot's global state) inside a seaborn style
context, and returns ``data:image/png;base64,...``; the figure is closed by going out of
scope. Templates only ever see strings.

Faceting keeps big studies readable: at most ``MAX_PANELS`` panels per figure and
``MAX_HUES`` lines per panel; what does not fit is left to the tables (callers say so).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib
import matplotlib.lines
import matplotlib.patches
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

MAX_PANELS = 24
MAX_HUES = 10
MAX_LAYERS = 6  # histogram columns: first, last and evenly spaced ones between
DPI = 96


def render(draw: Callable[..., Figure], *args: Any, **kwargs: Any) -> str:
    """Run a drawing function in seaborn's style, restored after; return a PNG data URI.

    Figures are drawn on ``matplotlib.figure.Figure`` objects and saved through Agg, so no
    pyplot window, backend switch or global figure is involved.
    """
    with matplotlib.rc_context():
        sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
        fig = draw(*args, **kwargs)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grid(
    panels: int, *, col_wrap: int = 4, width: float = 3.4, height: float = 2.7, sharey: bool = True
) -> tuple[Figure, list[Any]]:
    cols = min(panels, col_wrap)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat[:panels]


def _palette(values: Sequence[Any]) -> dict[Any, Any]:
    colors = sns.color_palette("tab10", max(len(values), 1))
    return dict(zip(values, colors, strict=False))


def _log_if_wide(ax: Any, values: pd.Series) -> None:
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() > 30 and (values > 0).all():
        ax.set_yscale("log")


def panels_of(
    frame: pd.DataFrame, facets: Sequence[str]
) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """Split a frame into panels, one per combination of the facet columns (capped).

    Each panel is (title, {facet: value}, rows).
    """
    if not facets:
        return [("", {}, frame)]
    panels = []
    for key, group in frame.groupby(list(facets), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(facets, key, strict=True))
        panels.append((", ".join(f"{f}={k}" for f, k in values.items()), values, group))
    return panels[:MAX_PANELS]


# --- results over configurations --------------------------------------------------------


def interval_plot(summary: pd.DataFrame, label: str, metric: str, limit: int = 30) -> Figure:
    """Mean and 95% CI of the main metric per configuration, best first (top ``limit``)."""
    rows = summary.dropna(subset=["mean"]).head(limit).iloc[::-1]
    fig = Figure(figsize=(8.5, 0.9 + 0.28 * max(len(rows), 1)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.errorbar(
        rows["mean"],
        y,
        xerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]],
        fmt="o",
        color=sns.color_palette()[0],
        ecolor="0.4",
        capsize=3,
    )
    ax.set_yticks(y, rows[label].tolist())
    ax.set_xlabel(f"{metric} (mean and 95% CI over seeds)")
    return fig


def heatmap(
    summary: pd.DataFrame,
    x: str,
    y: str,
    facets: Sequence[str],
    metric: str,
    direction: str,
    order: dict[str, list[Any]] | None = None,
) -> Figure:
    """Mean of the metric over two grid axes, one panel per value of the other axes.

    ``order`` gives each axis's values in grid order (rows and columns follow it).
    """
    order = order or {}
    panels = panels_of(summary, facets)
    cmap = "viridis" if direction == "max" else "viridis_r"
    fig, axes = _grid(len(panels), col_wrap=3, width=4.4, height=3.4, sharey=False)
    vmin, vmax = summary["mean"].min(), summary["mean"].max()
    for ax, (title, _, frame) in zip(axes, panels, strict=True):
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
            cbar_kws={"label": metric},
            linewidths=0.5,
        )
        ax.set_title(title)
    return fig


# --- curves -----------------------------------------------------------------------------


def band_plot(
    frame: pd.DataFrame,
    x: str,
    hue: str,
    facets: Sequence[str],
    ylabel: str,
    *,
    dashed: pd.DataFrame | None = None,
    log: bool | None = None,
    xticks_int: bool = True,
) -> Figure:
    """Lines of ``mean`` over ``x`` with a ``low``-``high`` band, hue per value, facets.

    ``dashed``: extra lines (same hue and facets) drawn dashed, e.g. a theoretical value.
    ``log``: force a log y axis; None picks it when the values span more than 30x.
    """
    panels = panels_of(frame, facets)
    hues = list(dict.fromkeys(frame[hue]))[:MAX_HUES]
    colors = _palette(hues)
    fig, axes = _grid(len(panels))
    for ax, (title, facet_values, panel) in zip(axes, panels, strict=True):
        for value in hues:
            line = panel[panel[hue] == value].sort_values(x)
            if line.empty:
                continue
            sns.lineplot(
                data=line,
                x=x,
                y="mean",
                ax=ax,
                color=colors[value],
                label=str(value),
                errorbar=None,
                legend=False,
            )
            ax.fill_between(
                line[x], line["low"], line["high"], color=colors[value], alpha=0.2, linewidth=0
            )
            if dashed is not None:
                mask = dashed[hue] == value
                for facet, facet_value in facet_values.items():
                    mask &= dashed[facet] == facet_value
                theory = dashed[mask].sort_values(x)
                ax.plot(
                    theory[x], theory["mean"], linestyle="--", color=colors[value], linewidth=1.2
                )
        values = panel[["low", "mean", "high"]].stack()
        if log is True or (log is None and len(values)):
            if log is True:
                ax.set_yscale("log")
            else:
                _log_if_wide(ax, values)
        ax.set_title(title)
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        if xticks_int:
            ax.xaxis.get_major_locator().set_params(integer=True)
    handles = [matplotlib.lines.Line2D([], [], color=colors[h], label=str(h)) for h in hues]
    if dashed is not None:
        handles.append(
            matplotlib.lines.Line2D([], [], color="0.3", linestyle="--", label="mean-field theory")
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 5),
        title=hue,
        frameon=False,
    )
    return fig


# --- histograms -------------------------------------------------------------------------


def pick_layers(layers: Sequence[int], limit: int = MAX_LAYERS) -> list[int]:
    """At most ``limit`` layers: the first, the last, and evenly spaced ones between."""
    layers = sorted(set(layers))
    if len(layers) <= limit:
        return layers
    index = np.linspace(0, len(layers) - 1, limit).round().astype(int)
    return [layers[i] for i in sorted(set(index))]


def histogram_grid(frame: pd.DataFrame, rows: str, title: str, hue: str | None = None) -> Figure:
    """The lesson's figure: one row per ``rows`` value, one column per layer.

    ``frame`` holds summed counts per (rows, layer, bin) with ``left``/``right`` edges; bars
    are normalized to the share of activations in each bin. ``hue`` overlays phases.
    """
    row_values = list(dict.fromkeys(frame[rows]))[: MAX_PANELS // 2]
    layers = pick_layers(frame["layer"].tolist())
    fig = Figure(
        figsize=(2.2 * len(layers) + 1.2, 1.5 * len(row_values) + 0.9), layout="constrained"
    )
    axes = fig.subplots(len(row_values), len(layers), squeeze=False, sharex=True, sharey="row")
    hue_values = list(dict.fromkeys(frame[hue])) if hue else [None]
    colors = _palette(hue_values)
    for i, row_value in enumerate(row_values):
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            cell = frame[(frame[rows] == row_value) & (frame["layer"] == layer)]
            for value in hue_values:
                part = cell if value is None else cell[cell[hue] == value]
                if part.empty:
                    continue
                part = part.sort_values("bin")
                total = part["count"].sum()
                bars = pd.DataFrame(
                    {
                        "value": ((part["left"] + part["right"]) / 2).to_numpy(),
                        "share": (part["count"] / total if total else part["count"]).to_numpy(),
                    }
                )
                edges = np.append(part["left"].to_numpy(), part["right"].iloc[-1])
                # bins as a list: seaborn 0.13.2 compares bins == "auto", ambiguous for arrays
                sns.histplot(
                    data=bars,
                    x="value",
                    weights="share",
                    bins=edges.tolist(),
                    ax=ax,
                    color=colors[value],
                    element="step" if hue else "bars",
                    fill=not hue or value == hue_values[0],
                    alpha=0.6 if hue else 0.85,
                    linewidth=0.6 if hue else 0,
                )
            ax.set_ylabel(str(row_value) if j == 0 else "")
            ax.set_xlabel("")
            if i == 0:
                ax.set_title(f"layer {layer}")
    fig.suptitle(title)
    fig.supxlabel(
        "activation value (values beyond the range are counted in the edge bins)", fontsize="small"
    )
    if hue:
        handles = [matplotlib.patches.Patch(color=colors[v], label=str(v)) for v in hue_values]
        fig.legend(handles=handles, loc="outside upper right", frameon=False)
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
