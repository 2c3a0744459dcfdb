"""The HTML report: what goes in it (this module), how it is drawn (benchinit.figures), and
the markup (``templates/``). This module owns the Jinja2 environment and its filters.

The page is one self-contained file: figures are PNG data URIs, CSS and the table-sorting
script are inline, and nothing is fetched when it opens. Every string that comes from a
study or a plugin goes through Jinja2's autoescaping; Markdown (a study's description, a
plugin section's text) is rendered with raw HTML disabled.

``render_report(DIR)`` needs only the results folder: the page of a copied folder, with no
study file and no plugins, is the page ``benchinit run`` wrote.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shlex
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markdown_it import MarkdownIt
from markupsafe import Markup

from benchinit import figures
from benchinit._version import __version__
from benchinit.descriptors import ReportSection
from benchinit.metrics import METRICS
from benchinit.results import Results, load_results, mean_ci_by
from benchinit.store import Store

LEADERBOARD_ROWS = 500  # beyond this the table lists the best ones and says so
_IMAGE_URI = re.compile(r"^data:image/(png|jpeg|gif|svg\+xml);base64,[A-Za-z0-9+/=\s]+$")


# --- the Jinja2 environment -------------------------------------------------------------


def number(value: Any, digits: int = 4) -> str:
    """A number for a table: 4 significant digits, '–' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int | bool):
        return str(value)
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return str(value)


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


def markdown(text: str) -> Markup:
    """Markdown to HTML with raw HTML disabled (it shows as text); links stay, scripts don't."""
    return Markup(_markdown().render(text or ""))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("benchinit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    env.filters["markdown"] = markdown
    return env


# --- aggregation for figures ------------------------------------------------------------


def aggregate(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean and 95% t-interval of ``value`` over seeds, per combination of ``keys``."""
    return mean_ci_by(frame, keys)[[*keys, "mean", "low", "high"]]


def _hue_and_facets(results: Results, extra: list[str]) -> tuple[str, list[str]]:
    """Lines per initializer (the product's question); one panel per combination of every
    other varying axis, so lines never mix configurations."""
    varying = results.varying
    hue = "initializer" if "initializer" in varying or not varying else varying[0]
    return hue, [a for a in varying if a != hue] + extra


# --- sections ---------------------------------------------------------------------------


def _header(results: Results) -> dict[str, Any]:
    meta = results.meta
    env = meta["environment"]
    values = meta["study"]["values"]
    return {
        "title": results.study["title"],
        "description": results.study.get("description", ""),
        "kind": results.study["kind"],
        "metric": results.metric,
        "direction": "higher is better" if results.direction() == "max" else "lower is better",
        "axes": [(axis, values.get(axis, [])) for axis in results.axes],
        "seeds": results.study["seeds"],
        "counts": results.counts(),
        "cells": len(results.runs),
        "device": env.get("device", "?"),
        "versions": {k: env.get(k) for k in ("benchinit", "torch", "python", "numpy", "pandas")},
        "platform": env.get("platform", ""),
        "started": meta["started"],
        "finished": meta["finished"],
        "command": shlex.join(meta["command"]),
        "components": meta["components"],
    }


def _leaderboard(results: Results, summary: pd.DataFrame) -> dict[str, Any] | None:
    if results.runs.empty:
        return None
    others = [
        m
        for m in METRICS[results.study["kind"]]
        if m != results.metric and m in results.runs and results.runs[m].notna().any()
    ]
    ok = results.runs[results.runs["status"] == "ok"]
    means = ok.groupby(results.axes, sort=False, dropna=False)[others].mean() if others else None
    rows = []
    for rank, row in enumerate(summary.head(LEADERBOARD_ROWS).itertuples(index=False), start=1):
        row = row._asdict()
        key = tuple(row[a] for a in results.axes)
        extra = {}
        if means is not None and key in means.index:
            extra = (
                means.loc[key].to_dict() if len(results.axes) > 1 else means.loc[key[0]].to_dict()
            )
        rows.append(
            {
                "rank": rank,
                "axes": [row[a] for a in results.axes],
                **row,
                "others": [extra.get(m, math.nan) for m in others],
            }
        )
    return {
        "axes": results.axes,
        "metric": results.metric,
        "others": others,
        "rows": rows,
        "total": len(summary),
        "shown": min(len(summary), LEADERBOARD_ROWS),
    }


def _label(frame: pd.DataFrame, axes: list[str]) -> pd.Series:
    return frame[axes].astype(str).agg(", ".join, axis=1) if axes else pd.Series("all", frame.index)


Job = tuple[str, str, Callable[..., Any], tuple, dict]


def _figure_jobs(results: Results, summary: pd.DataFrame) -> list[Job]:
    """(section, caption, drawing function, args, kwargs) for every figure of the report."""
    jobs: list[Job] = []
    ok = results.runs[results.runs["status"] == "ok"]
    train = results.study["kind"] == "train"
    metric, direction, varying = results.metric, results.direction(), results.varying

    def band(
        section: str,
        caption: str,
        frame: pd.DataFrame,
        x: str,
        hue: str,
        facets: list[str],
        ylabel: str,
        **kwargs: Any,
    ) -> None:
        panels = frame.groupby(facets, sort=False).ngroups if facets else 1
        if panels > figures.MAX_PANELS:
            caption += (
                f" (the first {figures.MAX_PANELS} of {panels} panels; every "
                "configuration is in the leaderboard)"
            )
        jobs.append((section, caption, figures.band_plot, (frame, x, hue, facets, ylabel), kwargs))

    if not ok.empty and ok[metric].notna().any():
        summary = summary.copy()
        summary["configuration"] = _label(summary, varying)
        if len(summary) > 1:
            jobs.append(
                (
                    "results",
                    f"{metric} per configuration, best first (95% CI over "
                    "seeds; the 30 best are drawn)",
                    figures.interval_plot,
                    (summary, "configuration", metric),
                    {},
                )
            )
        if len(varying) >= 2:
            pair = ("activation", "initializer")
            x, y = pair if set(pair) <= set(varying) else (varying[1], varying[0])
            facets = [a for a in varying if a not in (x, y)]
            jobs.append(
                (
                    "results",
                    f"Mean {metric} over {y} x {x}"
                    + (f", one panel per {', '.join(facets)}" if facets else ""),
                    figures.heatmap,
                    (summary, x, y, facets, metric, direction),
                    {"order": results.study.get("values", {})},
                )
            )

    curves = results.labelled("curves")
    curves = curves[curves["status"] == "ok"]
    if not curves.empty:
        hue, facets = _hue_and_facets(results, [])
        keys = [*varying, "epoch"]
        for split, name, label in (
            ("train", "loss", "training loss"),
            ("test", "loss", "test loss"),
            ("test", "accuracy", "test accuracy"),
            ("test", "mse", "test MSE"),
        ):
            part = curves[(curves["split"] == split) & (curves["metric"] == name)]
            if not part.empty:
                band(
                    "curves",
                    f"{label.capitalize()} per epoch: mean and 95% CI over seeds",
                    aggregate(part, keys),
                    "epoch",
                    hue,
                    facets,
                    label,
                )
        params = curves[curves["split"] == "params"]
        if not params.empty:
            epochs = pd.DataFrame({"epoch": sorted(params["epoch"].unique())})
            truth = (
                curves[curves["split"] == "truth"].drop(columns="epoch").merge(epochs, how="cross")
            )
            band(
                "curves",
                "Parameters w and b per epoch (dashed: the true values)",
                aggregate(params, [*keys, "metric"]),
                "epoch",
                hue,
                [*facets, "metric"],
                "value",
                dashed=aggregate(truth, [*keys, "metric"]),
                log=False,
            )

    layers = results.labelled("layers")
    layers = layers[layers["status"] != "failed"]
    if not layers.empty:
        hue, facets = _hue_and_facets(results, ["phase"] if train else [])
        keys = [*varying, "phase", "layer"]

        def per_layer(name: str) -> pd.DataFrame:
            return aggregate(layers[layers["metric"] == name], keys)

        theory = per_layer("theory_std")
        band(
            "signal",
            "Pre-activation std per layer (dashed: mean-field theory, Poole et al. 2016)",
            per_layer("preact_std"),
            "layer",
            hue,
            facets,
            "pre-activation std",
            dashed=theory if not theory.empty else None,
        )
        band(
            "signal",
            "Activation std per layer",
            per_layer("act_std"),
            "layer",
            hue,
            facets,
            "activation std",
        )
        band(
            "signal",
            "Gradient norm of each layer's weights (log scale): vanishing gradients "
            "fall toward layer 1",
            per_layer("grad_norm"),
            "layer",
            hue,
            facets,
            "gradient norm",
            log=True,
        )
        for name, label in (
            ("saturated_frac", "saturated fraction (phi' < 10% of max)"),
            ("dead_frac", "dead fraction (output exactly 0)"),
        ):
            frac = per_layer(name)
            if frac["mean"].fillna(0).abs().max() > 0:
                band("signal", f"Per-layer {label}", frac, "layer", hue, facets, label, log=False)

    hists = results.labelled("histograms")
    hists = hists[hists["status"] != "failed"]
    if not hists.empty:
        rows_axis = "initializer"
        others = [a for a in varying if a != rows_axis]
        keys = [rows_axis, *others, "phase", "layer", "bin", "left", "right"]
        summed = hists.groupby(keys, sort=False, dropna=False)["count"].sum().reset_index()
        groups = list(summed.groupby(others, sort=False)) if others else [((), summed)]
        for key, frame in groups[: figures.MAX_PANELS]:
            key = key if isinstance(key, tuple) else (key,)
            title = ", ".join(f"{a} = {v}" for a, v in zip(others, key, strict=True)) or "all cells"
            caption = f"Activation histograms, {title}: rows = initializer, columns = layers" + (
                " (init and after training)" if train else ""
            )
            if len(groups) > figures.MAX_PANELS:
                caption += f" ({len(groups)} combinations; the first {figures.MAX_PANELS} drawn)"
            jobs.append(
                (
                    "histograms",
                    caption,
                    figures.histogram_grid,
                    (frame, rows_axis, title),
                    {"hue": "phase" if train else None},
                )
            )
    return jobs


def _draw(job: tuple[str, str, Callable[..., Any], tuple, dict]) -> str:
    _, _, draw, args, kwargs = job
    return figures.render(draw, *args, **kwargs)


def draw_all(jobs: list, parallel: int) -> list[str]:
    """Render the figures, in ``parallel`` spawned worker processes when that pays.

    Starting a worker costs about 2 s here (matplotlib, seaborn, pandas imports), so fewer
    than 8 figures are drawn in this process. Spawned workers import the caller's main module
    again: a script that asks for ``parallel > 1`` needs an ``if __name__ == "__main__":``
    guard, as with any multiprocessing code.
    """
    if parallel > 1 and len(jobs) >= 8:
        import multiprocessing

        with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_draw, jobs))
    return [_draw(job) for job in jobs]


def _problems(results: Results) -> dict[str, list[dict[str, Any]]]:
    runs, axes = results.runs, results.axes
    diverged = []
    for key, group in runs[runs["status"] == "diverged"].groupby(axes, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        diverged.append(
            {
                "config": ", ".join(str(k) for k in key),
                "count": len(group),
                "epochs": sorted(group["diverged_epoch"].dropna().astype(int).tolist()),
            }
        )
    failed = []
    for error, group in runs[runs["status"] == "failed"].groupby("error", sort=False):
        configs = sorted(
            {", ".join(str(v) for v in row) for row in group[axes].itertuples(index=False)}
        )
        failed.append({"error": error, "count": len(group), "configs": configs})
    return {"diverged": diverged, "failed": failed}


def _reproducibility(results: Results, study_toml: str) -> dict[str, Any]:
    cells = results.runs[["cell", *results.axes, "seed", "status"]]
    return {
        "study_toml": study_toml,
        "plugins": results.meta["plugins"],
        "environment": results.meta["environment"],
        "axes": results.axes,
        "cells": cells.itertuples(index=False),
    }


# --- plugin sections --------------------------------------------------------------------


def plugin_sections(registry: Any, results: Results) -> list[dict[str, Any]]:
    """Call ``benchinit_report_sections`` of every plugin; check and flatten the answers."""
    sections = []
    for impl in registry.hook().benchinit_report_sections.get_hookimpls():
        info = registry.plugins[impl.plugin_name]
        try:
            provided = list(impl.function(results=results) or ())
        except Exception as exc:  # a broken plugin section is reported, not fatal
            provided = [
                ReportSection(f"{info.name}: section failed", text=f"`{type(exc).__name__}: {exc}`")
            ]
        for section in provided:
            sections.append(_section_data(section, info.describe()))
    return sections


def _section_data(section: Any, source: str) -> dict[str, Any]:
    if not isinstance(section, ReportSection):
        return {
            "title": f"invalid section from {source}",
            "source": source,
            "text": f"expected ReportSection, got {type(section).__name__}",
            "table": None,
            "figure": "",
        }
    table = section.table
    if table is not None:
        frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
        table = {
            "columns": [str(c) for c in frame.columns],
            "rows": [[str(v) for v in row] for row in frame.itertuples(index=False)],
        }
    figure = section.figure if _IMAGE_URI.match(section.figure or "") else ""
    return {
        "title": str(section.title),
        "source": source,
        "text": str(section.text or ""),
        "table": table,
        "figure": figure,
    }


# --- rendering --------------------------------------------------------------------------


def render_report(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    registry: Any = None,
    parallel: int = 1,
) -> Path:
    """Write the report of a results folder (``DIR/index.html`` unless ``out``).

    With a ``registry`` (as ``benchinit run`` passes), plugin report sections are computed
    and stored in the folder; without one, the stored sections are shown. ``parallel``:
    worker processes for the figures (see :func:`draw_all`).
    """
    store = Store(path)
    results = load_results(path)
    if registry is not None:
        sections = plugin_sections(registry, results)
        store.write_sections(sections)
    else:
        sections = store.read_sections() or []
    summary = results.summary()  # once: the leaderboard and the figures share it
    jobs = _figure_jobs(results, summary)
    images = draw_all(jobs, parallel)
    grouped: dict[str, list[dict[str, str]]] = {}
    for (section, caption, *_), image in zip(jobs, images, strict=True):
        grouped.setdefault(section, []).append({"caption": caption, "src": image})
    html = (
        environment()
        .get_template("report.html")
        .render(
            version=__version__,
            header=_header(results),
            leaderboard=_leaderboard(results, summary),
            figures=grouped,
            problems=_problems(results),
            plugin_sections=sections,
            repro=_reproducibility(results, store.study_toml()),
        )
    )
    return store.write_report(html, out)
