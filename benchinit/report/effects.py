"""The report's "What matters most" section: the main metric's variance over the grid's
varying axes and their two-way interactions (:func:`benchinit.analysis.effects.effects`), as a
table, a figure and one plain sentence.

Choices, and why:

- Terms are ranked by omega-squared, the share of variance corrected for what seed noise
  alone would give; a term whose bootstrap interval reaches 0 or below is said plainly to
  show no evidence that it matters. eta-squared is in the table beside it (it cannot be
  below 0, so its interval never says "nothing").
- With one finished seed in some configuration there is nothing to resample: no
  intervals, and the page says so rather than printing intervals of zero width.
- When the interactions would leave no residual degrees of freedom (one seed per
  configuration), the model is fitted with main effects only: the interactions then make
  up the residual, and the page says that too.
- Only finished runs count (a diverged or failed cell has no metric); for a tuned study,
  these are the final runs, at each configuration's chosen values.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchinit.analysis.effects import RESAMPLES, effects
from benchinit.figures import analysis as analysis_figures
from benchinit.report.section_figures import FigureJob, slug
from benchinit.report.sections import main_metric
from benchinit.results.tables import Results

SMALL = 0.01  # a term explaining less than this share of the variance does not matter much


def _interval(row: dict[str, Any], name: str) -> tuple[float, float] | None:
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return None
    return float(low), float(high)


def _percent(value: float) -> str:
    return f"{max(value, 0.0) * 100:.2g}%"


def _sentences(terms: list[dict[str, Any]], metric: str, column: str) -> list[str]:
    """What mattered most, and what shows no evidence of mattering, in plain words."""
    top = terms[0]
    interval = _interval(top, column)
    symbol = "omega²" if column == "omega_sq" else "eta²"
    value = float(top[column])
    within = f", 95% interval [{interval[0]:.2g}, {interval[1]:.2g}]" if interval else ""
    if interval is not None and interval[0] <= 0:
        lead = (
            f"No term shows clear evidence of mattering for {metric}: even the largest, "
            f"{top['term']} ({symbol} = {value:.2g}{within}), has an interval that covers 0."
        )
    else:
        lead = (
            f"What mattered most for {metric}: {top['term']} ({symbol} = {value:.2g}{within}), "
            f"about {_percent(value)} of its variance across the grid"
            + (", corrected for noise" if column == "omega_sq" else "")
            + (": no term matters much." if value < SMALL else ".")
            + ("" if interval else " No interval to judge it by: see the note below.")
        )
    nulls = [t["term"] for t in terms[1:] if (i := _interval(t, column)) is not None and i[0] <= 0]
    out = [lead]
    if nulls:
        names = ", ".join(nulls)
        verb = "matters" if len(nulls) == 1 else "matter"
        out.append(
            f"No evidence that {names} {verb}: "
            f"{'its' if len(nulls) == 1 else 'their'} {symbol} interval"
            f"{'' if len(nulls) == 1 else 's'} cover{'s' if len(nulls) == 1 else ''} 0."
        )
    return out


def _fit(runs: pd.DataFrame, factors: list[str], metric: str) -> tuple[pd.DataFrame, list[str]]:
    """The effects table and what the page must say about how it was fitted."""
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    per_config = ok.groupby(factors, sort=False, dropna=False).size()
    notes = []
    resamples = RESAMPLES
    if len(per_config) and per_config.min() < 2:
        resamples = 0
        notes.append(
            "A configuration with a single finished seed leaves the bootstrap nothing to "
            "resample: no intervals are given."
        )
    table = effects(ok, factors, metric, resamples=resamples)
    residual = table[table["kind"] == "residual"]
    if len(residual) and not float(residual["df"].iloc[0]) > 0:
        table = effects(ok, factors, metric, interactions=False, resamples=resamples)
        notes.append(
            "With one seed per configuration the interactions leave no residual to judge "
            "them by: main effects only, the interactions counted as the residual."
        )
    return table, notes


def effects_report(results: Results) -> tuple[dict[str, Any] | None, list[FigureJob]]:
    """The section's data and its figure; (None, []) with fewer than two varying axes."""
    factors = results.varying
    metric = results.metric
    if len(factors) < 2 or metric not in results.runs:
        return None, []
    table, notes = _fit(results.runs, factors, metric)
    terms = table[table["kind"] != "residual"].to_dict("records")
    if not terms:
        return None, []
    column = "omega_sq" if pd.notna(table["omega_sq"]).any() else "eta_sq"
    if column == "eta_sq":
        notes.append("No residual variance to correct by: terms are ranked by eta².")
        terms.sort(key=lambda t: -float(t["eta_sq"]))
    residual = table[table["kind"] == "residual"].to_dict("records")
    pairs = any(t["kind"] == "interaction" for t in terms)
    section = {
        "metric": metric,
        "sentences": _sentences(terms, metric, column),
        "notes": notes,
        "rows": [
            {
                "rank": rank,
                "term": t["term"],
                "omega": t["omega_sq"],
                "omega_ci": _interval(t, "omega_sq"),
                "eta": t["eta_sq"],
                "eta_ci": _interval(t, "eta_sq"),
                "p": t["p"],
            }
            for rank, t in enumerate(terms, start=1)
        ],
        "residual": f"{residual[0]['eta_sq'] * 100:.2g}%" if residual else None,
        "residual_is": "seeds, higher interactions" if pairs else "seeds, interactions",
        "seeds": sorted({int(s) for s in results.runs["seed"]}),
    }
    symbol = "omega²" if column == "omega_sq" else "eta²"
    caption = (
        f"What mattered most for {main_metric(results).label}: {symbol} per grid factor"
        + (" and two-way interaction" if pairs else "")
        + " (the share of the metric's variance it explains"
        + (", beyond noise" if column == "omega_sq" else "")
        + "), best first"
        + (", with 95% bootstrap intervals over seeds" if _interval(terms[0], column) else "")
        + ". An interval that reaches 0 is no evidence that the term matters."
    )
    job = FigureJob(
        "effects",
        caption,
        slug("effects", metric),
        analysis_figures.effects_plot,
        (pd.DataFrame(terms), column, f"{symbol} of {metric}"),
        data=table.astype({"rank": "float64"}),  # the residual has none: NaN, as CSV reads it
    )
    return section, [job]
