"""``benchinit show DIR``: a results folder in a terminal, without a browser.

One table, one row per configuration: its grid values, the main metric's mean and 95%
interval over the seeds that finished, the seeds and the counts of diverged and failed
ones, the values a tuned study chose (``tuned.*``), the first error of a configuration
with failed cells and the epochs a diverged one diverged at. Below it, in text and
Markdown, the failed and diverged configurations in words (benchinit.results.failures). As text
(pandas' ``to_string``), Markdown (GitHub-flavoured), CSV (``to_csv``: the table alone) or
JSON (the table's rows, the problems, the study). Reads the folder only.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from typing import Any

import pandas as pd

from benchinit.report.templating import number
from benchinit.results.failures import all_problems, problems, report_lines
from benchinit.results.schema import TUNED_PREFIX
from benchinit.results.tables import Results, load_results

FORMATS = ("text", "markdown", "csv", "json")
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # Markdown's active characters, | included


def md(value: Any) -> str:
    """Text safe in a Markdown table cell, on one line (as compare's Markdown writes it,
    without loading compare's figures)."""
    return " ".join(_SPECIAL.sub(r"\\\1", html.escape(str(value), quote=False)).split())


def table(results: Results) -> pd.DataFrame:
    """One row per configuration, best first (see the module docstring)."""
    axes, metric = results.axes, results.metric
    summary = results.summary()
    tuned = [c for c in results.runs.columns if c.startswith(TUNED_PREFIX)]
    cols = [*axes, "mean", "ci_low", "ci_high", "seeds", "diverged", "failed"]
    shown = summary[cols].rename(columns={"mean": metric})
    if tuned and len(results.runs):
        chosen = results.runs.groupby(axes, sort=False, dropna=False)[tuned].first()
        shown = shown.merge(chosen.reset_index(), on=axes, how="left")
    shown["first_error"] = _by_config(shown, problems(results.runs, axes, "failed"), axes)
    diverged = problems(results.runs, axes, "diverged")
    shown["diverged_at"] = _by_config(shown, diverged, axes)
    return shown


def _by_config(shown: pd.DataFrame, found: list[Any], axes: list[str]) -> list[str]:
    details = {p.config: p.detail for p in found}
    labels = [", ".join(str(v) for v in row) for row in shown[axes].to_numpy().tolist()]
    return [details.get(label, "") for label in labels]


def _plain(value: Any) -> Any:
    """A JSON value: NaN as null, numpy scalars as Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _markdown(results: Results, rows: pd.DataFrame) -> list[str]:
    header = [str(c) for c in rows.columns]
    lines = [
        f"### {md(results.study['name'])}: {md(results.study.get('title', ''))}",
        "",
        "| " + " | ".join(md(h) for h in header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows.itertuples(index=False):
        lines.append("| " + " | ".join(md(number(v)) if v != "" else "" for v in row) + " |")
    return lines


def _text(rows: pd.DataFrame) -> str:
    shown = rows.drop(columns=["first_error", "diverged_at"])
    return shown.to_string(index=False, float_format=lambda v: number(v), na_rep="–")


def _counts(results: Results) -> str:
    c = results.counts()
    ok, diverged, failed = c["ok"], c["diverged"], c["failed"]
    return f"{len(results.runs)} cells ({ok} ok, {diverged} diverged, {failed} failed)"


def show(path: str | os.PathLike[str], fmt: str = "text") -> str:
    """The folder's table and problems as ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    results = load_results(path)
    rows = table(results)
    if fmt == "csv":
        return str(rows.to_csv(index=False))
    if fmt == "json":
        failed, diverged = all_problems(results)
        data = {
            "study": results.study["name"],
            "title": results.study.get("title", ""),
            "metric": results.metric,
            "counts": results.counts(),
            "leaderboard": [
                {k: _plain(v) for k, v in r.items()} for r in rows.to_dict(orient="records")
            ],
            "failed": [p.as_dict() for p in failed],
            "diverged": [p.as_dict() for p in diverged],
        }
        return json.dumps(data, indent=2)
    where = f"(the report's Problems section has every error: {results.path}/index.html)"
    lines = report_lines(results, where, limit=50)
    if fmt == "markdown":
        out = _markdown(results, rows)
        return "\n".join([*out, "", *(f"    {line}" for line in lines)]).rstrip() + "\n"
    head = f"{results.study['name']}: {_counts(results)}; ranked by {results.metric}"
    return "\n".join([head, "", _text(rows), "", *lines]).rstrip() + "\n"
