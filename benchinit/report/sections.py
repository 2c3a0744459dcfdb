"""What goes into the report's text and table sections: one function per section, each
returning plain data (dicts, lists, strings) for its template partial.

Grid columns are read by name from records (``to_dict("records")``) or by position, never
as attributes: pandas' ``itertuples()`` renames columns such as ``model.depth``, ``class``
or ``1st``. A study where nothing varies, or with no finished cell, is a study like any
other: every function here returns its section's data or None, never raises.
"""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd

from benchinit.metrics import METRIC_TABLE, Metric, metric_info
from benchinit.results.tables import Results
from benchinit.study import seed_record

LEADERBOARD_ROWS = 500  # beyond this the table lists the best ones and says so


def main_metric(results: Results) -> Metric:
    return metric_info(results.metric, results.study["kind"])


def ranked(results: Results) -> pd.DataFrame:
    """``Results.summary()`` of the main metric (intervals clipped to its range)."""
    return results.summary()


def header(results: Results) -> dict[str, Any]:
    """What was run, how and where; the overrides the run was made with."""
    meta = results.meta
    env = meta["environment"]
    values = results.study["values"]
    metric = main_metric(results)
    return {
        "title": results.study["title"],
        "description": results.study["description"],
        "overrides": list(meta["overrides"]),
        "kind": results.study["kind"],
        "metric": results.metric,
        "direction": "higher is better" if metric.direction == "max" else "lower is better",
        "axes": [(axis, values.get(axis, [])) for axis in results.axes],
        "seeds": results.study["seeds"],
        "seed_span": seed_record.seed_span(results.study["seeding"])
        or f"{len(results.study['seeds'])} seeds",
        "seeding": seed_record.describe(results.study["seeding"]),
        "counts": results.counts(),
        "cells": len(results.runs),
        "device": env.get("device", "?"),
        "versions": {k: env.get(k) for k in ("benchinit", "torch", "python", "numpy", "pandas")},
        "started": meta["started"],
        "finished": meta["finished"],
        "command": shlex.join(meta["command"]),
        "components": meta["components"],
    }


def _grid_order(results: Results, axis: str, present: list[Any]) -> list[str]:
    """An axis's values as shown (strings), in grid order, those present only."""
    shown = [str(v) for v in present]
    order = [str(v) for v in results.study["values"].get(axis, [])]
    return [v for v in dict.fromkeys(order + shown) if v in shown]


def leaderboard(results: Results, summary: pd.DataFrame) -> dict[str, Any] | None:
    """Every configuration (the best ``LEADERBOARD_ROWS``), best first, with its interval
    and the other metrics' means; which grid columns can filter it (those with more than
    one value among the rows shown) and which columns can be hidden."""
    if summary.empty:
        return None
    axes, kind = results.axes, results.study["kind"]
    metric = main_metric(results)
    runs = results.runs
    others = [
        m.name
        for m in METRIC_TABLE
        if m.kind == kind and m.name != results.metric and m.name in runs
        if runs[m.name].notna().any()
    ]
    table = summary.head(LEADERBOARD_ROWS)
    if others:
        ok = runs[runs["status"] == "ok"]
        means = ok.groupby(axes, sort=False, dropna=False)[others].mean().reset_index()
        table = table.merge(means, on=axes, how="left")
    rows = []
    for rank, record in enumerate(table.to_dict("records"), start=1):
        rows.append(
            {
                "rank": rank,
                "axes": [record[a] for a in axes],
                **{k: record[k] for k in ("mean", "ci_low", "ci_high", "clipped")},
                **{k: int(record[k]) for k in ("seeds", "diverged", "failed")},
                "others": [record[m] for m in others],
            }
        )
    filters = [
        {"axis": axis, "column": 1 + i, "choices": _grid_order(results, axis, values)}
        for i, axis in enumerate(axes)
        if len(values := list(dict.fromkeys(table[axis].tolist()))) > 1
    ]
    columns = ["rank", *axes, results.metric, "95% CI", "seeds", "diverged", "failed", *others]
    return {
        "axes": axes,
        "metric": results.metric,
        "range": metric.range_text() if metric.bounded else "",
        "clipped": bool(table["clipped"].any()),
        "others": others,
        "rows": rows,
        "total": len(summary),
        "shown": len(rows),
        "filters": filters,
        "columns": list(enumerate(columns)),
    }


def _configuration(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values)


def problems(results: Results) -> dict[str, list[dict[str, Any]]]:
    """Diverged configurations (with their epochs) and failed cells grouped by error."""
    runs, axes = results.runs, results.axes
    diverged = []
    for key, group in runs[runs["status"] == "diverged"].groupby(axes, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        epochs = pd.to_numeric(group["diverged_epoch"], errors="coerce").dropna()
        diverged.append(
            {
                "config": _configuration(list(key)),
                "count": len(group),
                "epochs": sorted(int(e) for e in epochs),
            }
        )
    failed = []
    for error, group in runs[runs["status"] == "failed"].groupby("error", sort=False):
        configs = sorted({_configuration(row) for row in group[axes].to_numpy().tolist()})
        failed.append({"error": error, "count": len(group), "configs": configs})
    return {"diverged": diverged, "failed": failed}


def reproducibility(results: Results, study_toml: str) -> dict[str, Any]:
    """The resolved study, the plugins and environment, and every cell's id."""
    cells = results.runs[["cell", *results.axes, "seed", "status"]]
    return {
        "study_toml": study_toml,
        "plugins": results.meta["plugins"],
        "environment": results.meta["environment"],
        "axes": results.axes,
        "cells": cells.astype(object).where(cells.notna(), None).to_numpy().tolist(),
    }


def layer_names(results: Results) -> dict[int, str] | None:
    """Layer number -> the name its model declares (``runs.layer_names``), when every cell's
    model declares the same names (a study over one model); None: draw the numbers."""
    if "layer_names" not in results.runs:
        return None
    declared = set(results.runs["layer_names"].fillna("").astype(str))
    if len(declared) != 1 or not (only := declared.pop()):
        return None
    return {i + 1: name for i, name in enumerate(only.split(","))}
