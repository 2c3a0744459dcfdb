"""The report's width section: learning rates across width, and the coordinate check.

Drawn only when the study varies ``model.width``:

- **Rates** (a tuned study whose ``[tune]`` tries ``optimizer.lr``): per configuration, the
  validation metric the tuning runs reached against the rate, one line per width, and the
  fitted slope of log(best rate) on log(width) with its 95% interval
  (benchinit.analysis.transfer). The claim of muP (Yang et al. 2022): under ``standard`` the
  best rate falls with width (with Adam a slope near -1), under ``mup`` it stays within about
  one grid step (a slope near 0). Then the transfer itself: the metric at every width at the
  rate tuned at the narrowest width, against each width's own best.
- **Coordinate check** (``[train] coord_steps``): the mean |x| of each hidden layer's output
  and of the logits against width after t = 0..k steps (benchinit.engine.coordinates), and how
  far those steps moved them. The widths must share a rate for this to mean anything: in a
  study tuned over ``optimizer.lr`` it is drawn from the tuning cells at the transferred rate
  (the narrowest width's best), not from the final cells (each at its own chosen rate).
"""

from __future__ import annotations

import math

import pandas as pd

from benchinit.analysis.transfer import best_rates, narrowest, rate_slopes, transferred
from benchinit.figures import width as width_figures
from benchinit.report.section_figures import FigureJob, panels_note, slug
from benchinit.report.tuning import _select
from benchinit.results.store import Store
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
    moved = transferred(table, best, facets, minimize=minimize)
    return [
        FigureJob(
            "width",
            caption,
            slug("width-rates", metric),
            width_figures.rate_plot,
            (table, best, slopes, facets, metric),
            data=data,
        ),
        FigureJob(
            "width",
            f"Tune small, train wide: {metric} against width at the rate tuned at the "
            f"narrowest width (solid) and at each width's own best rate (dashed). "
            f"{_transfer_text(moved, facets, metric)}" + panels_note(moved, facets),
            slug("width-transfer", metric),
            width_figures.transfer_plot,
            (moved, facets, metric),
            data=moved,
        ),
    ]


def _transfer_text(moved: pd.DataFrame, facets: list[str], metric: str) -> str:
    """At the widest width, per configuration: the transferred rate's metric against the
    width's own best."""
    if moved.empty:
        return ""
    parts = []
    ordered = moved.sort_values("width", kind="stable")
    last = ordered.groupby(facets, sort=False).tail(1) if facets else ordered.tail(1)
    for _, row in last.iterrows():
        name = " · ".join(str(row[f]) for f in facets) or "all"
        parts.append(
            f"{name}: {row['transferred_value']:.3g} at {row['transferred_lr']:.3g} against "
            f"{row['best_value']:.3g} at {row['best_lr']:.3g}"
        )
    widest = int(moved["width"].max())
    return f"At width {widest}, {metric} at the transferred rate against the best: " + (
        "; ".join(parts) + "."
    )


def coordinate_jobs(results: Results) -> list[FigureJob]:
    """The coordinate check's figures: sizes, then changes (module docstring)."""
    if WIDTH not in results.varying:
        return []
    coord, note = _coordinates(results)
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
            f"blow up as the network widens.{note}" + panels_note(table, facets)
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


def _coordinates(results: Results) -> tuple[pd.DataFrame, str]:
    """The coordinate check's curves at one rate per configuration, and a note saying which
    (module docstring): the final cells' in an untuned study, else the tuning cells' at the
    rate tuned at the narrowest width."""
    tuning = results.tuning
    if tuning.empty or LR not in tuning:
        curves = results.labelled("curves")
        if curves.empty or "split" not in curves:
            return curves, ""
        return curves[curves["split"] == COORD], ""
    store = Store(results.path)
    _, kept = store.read_kept(("runs",))
    mine = kept[kept["cell"].isin(set(tuning["cell"]))] if len(kept) else kept
    curves = store.read(("curves",), kept=mine).get("curves") if len(mine) else None
    if curves is None or curves.empty:
        return pd.DataFrame(), ""
    curves = curves[curves["split"] == COORD]
    facets = [a for a in results.varying if a != WIDTH and a in tuning]
    metric = _select(results, results.study.get("tune", {}).get("select"))
    best = best_rates(tuning, facets, metric=metric, minimize=results.direction(metric) == "min")
    rate = narrowest(best, facets)[[*facets, "grid_lr"]].rename(columns={"grid_lr": LR})
    cells = tuning.merge(rate, on=[*facets, LR], how="inner")
    labelled = curves.merge(cells[["cell", *facets, WIDTH]], on="cell", how="inner")
    return labelled, (
        " Measured in the tuning runs at the rate tuned at the narrowest width, so every "
        "width trains at one rate."
    )


def width_jobs(results: Results) -> list[FigureJob]:
    """Every figure of the width section, in order."""
    return [*rate_jobs(results), *coordinate_jobs(results)]
