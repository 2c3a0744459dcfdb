"""The report's width section: learning rates across width, and the coordinate check.

Drawn only when the study varies ``model.width``:

- **Rates** (a tuned study whose ``[tune]`` tries ``optimizer.lr``): per configuration, the
  validation metric the tuning runs reached against the rate, one line per width, and the
  fitted slope of log(best rate) on log(width) with its 95% interval
  (benchinit.analysis.transfer). The claim of muP (Yang et al. 2022): under ``standard`` the
  best rate falls with width (with Adam a slope near -1), under ``mup`` it stays within about
  one grid step (a slope near 0).
- **Coordinate check** (``[train] coord_steps``): the mean |x| of each hidden layer's output
  and of the logits against width after t = 0..k steps (benchinit.engine.coordinates), and how
  far those steps moved them.
"""

from __future__ import annotations

import math

import pandas as pd

from benchinit.analysis.transfer import best_rates, rate_slopes
from benchinit.figures import width as width_figures
from benchinit.report.section_figures import FigureJob, panels_note, slug
from benchinit.report.tuning import _select
from benchinit.results.tables import Results

WIDTH = "model.width"
LR = "tuned.optimizer.lr"
COORD = "coord"


def _slopes_text(slopes: pd.DataFrame, facets: list[str]) -> str:
    parts = []
    for _, row in slopes.iterrows():
        name = " · ".join(str(row[f]) for f in facets) or "all"
        if not math.isfinite(row["slope"]):
            parts.append(f"{name}: no slope (one width)")
            continue
        interval = (
            f" (95% interval {row['ci_low']:.2f} to {row['ci_high']:.2f})"
            if math.isfinite(row["ci_low"])
            else ""
        )
        edge = "; a best rate at the grid's edge" if row["edge"] else ""
        parts.append(
            f"{name}: {row['slope']:.2f}{interval}, best rates spread over "
            f"{row['steps']} grid step{'' if row['steps'] == 1 else 's'}{edge}"
        )
    return "; ".join(parts)


def rate_jobs(results: Results) -> list[FigureJob]:
    """The metric against the rate per width, with the slopes (module docstring)."""
    tuning = results.tuning
    if tuning.empty or LR not in tuning or WIDTH not in tuning:
        return []
    if tuning[WIDTH].nunique() < 2:
        return []
    metric = _select(results, results.study.get("tune", {}).get("select"))
    minimize = results.direction(metric) == "min"
    facets = [a for a in results.varying if a != WIDTH and a in tuning]
    best = best_rates(tuning, facets, metric=metric, minimize=minimize)
    slopes = rate_slopes(best, facets)
    values = pd.to_numeric(tuning[metric], errors="coerce")
    table = (
        tuning.assign(value=values)
        .groupby([*facets, WIDTH, LR], sort=False, dropna=False)["value"]
        .mean()
        .reset_index()
        .rename(columns={WIDTH: "width", LR: "lr"})
    )
    caption = (
        f"{metric} of the tuning runs against the learning rate, one line per width "
        f"(mean over tuning seeds); dotted: each width's best rate, refined between grid "
        f"points. Slope of log(best rate) on log(width): {_slopes_text(slopes, facets)}. "
        "Under muP the best rate should not move with width (slope near 0); under the "
        "standard parametrization with Adam it falls about as 1/width." + panels_note(table, facets)
    )
    data = table.merge(best, on=[*facets, "width"], how="left", suffixes=("", "_best"))
    return [
        FigureJob(
            "width",
            caption,
            slug("width-rates", metric),
            width_figures.rate_plot,
            (table, best, slopes, facets, metric),
            data=data,
        )
    ]


def coordinate_jobs(results: Results) -> list[FigureJob]:
    """The coordinate check's figures: sizes, then changes (module docstring)."""
    if WIDTH not in results.varying:
        return []
    curves = results.labelled("curves")
    if curves.empty or "split" not in curves:
        return []
    coord = curves[curves["split"] == COORD]
    if coord.empty:
        return []
    facets = [a for a in results.varying if a != WIDTH and a in coord]
    jobs = []
    for prefix, what in (("abs_", "size"), ("delta_", "change")):
        part = coord[coord["metric"].str.startswith(prefix)]
        if prefix == "delta_":
            part = part[part["epoch"] > 0]  # no change before the first step
        table = (
            part.assign(coordinate=part["metric"].str.removeprefix(prefix))
            .groupby([*facets, "coordinate", WIDTH, "epoch"], sort=False, dropna=False)["value"]
            .mean()
            .reset_index()
            .rename(columns={WIDTH: "width", "epoch": "step"})
        )
        caption = (
            f"Coordinate check, {what}: mean |x{'_t - x_0' if prefix == 'delta_' else ''}| "
            "of each hidden layer's output (h1, h2, ...) and of the logits on the probe "
            "batch, against width, after t training steps (mean over seeds). Flat lines: "
            "the coordinates do not grow with width (muP's promise); lines that rise: they "
            "blow up as the network widens." + panels_note(table, facets)
        )
        jobs.append(
            FigureJob(
                "width",
                caption,
                slug("coordinate-check", what),
                width_figures.coordinate_plot,
                (table, facets),
                data=table,
            )
        )
    return jobs


def width_jobs(results: Results) -> list[FigureJob]:
    """Every figure of the width section, in order."""
    return [*rate_jobs(results), *coordinate_jobs(results)]
