"""A series of result sets of one study (nightly runs, torch releases) -> one trend page.

The series is ordered as given, or by the time each run started (``sort="time"``, from
``meta["started"]``). Each consecutive step (run i -> run i + 1) is compared exactly as
``benchinit compare`` compares two folders (:func:`benchinit.gate.compare.comparison_rows`,
:func:`benchinit.gate.evidence.test_rows` and
:func:`benchinit.gate.verdicts.judge`): each step has its own priors for the moderated variances
and its own study-level verdict per metric (steps do not share a prior: a torch release or
a new commit may change the noise, and a step's tests should be the ones ``compare`` makes
for those two folders). One difference matters: the p-values of every step, configuration,
metric and study-level test on the page are adjusted together, so a long history does not
show a "regression" somewhere by chance. Between steps the page marks what changed in the
environment, provenance and settings (torch version, git commit, precision, ...).

The page goes to ``LAST/history.html`` by default (LAST: the newest run's folder, beside its
own ``index.html``), with relative links to each run's report: keep the folders side by side
(a CI artifact per run, downloaded into one folder) and the links work offline.

Exit status in the CLI: 1 when the last step has a regression, of a configuration or of the
study as a whole (what a nightly job gates on; an old regression that stayed is visible on
the page but no longer fails the job).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchinit.errors import BenchinitError, ResultsError, did_you_mean
from benchinit.gate import compare_render as comparison_render
from benchinit.gate import evidence, verdicts
from benchinit.gate import history_render as series_render
from benchinit.gate.compare import (
    check_comparable,
    check_metrics,
    check_recorded,
    check_values,
    comparison_rows,
)
from benchinit.gate.differences import environment_differences
from benchinit.gate.outcomes import HistoryOutcome
from benchinit.results.outputs import check_verdict_outputs
from benchinit.results.tables import Results, load_results

SORTS = ("given", "time")


def _order(runs: list[Results], sort: str) -> list[Results]:
    if sort not in SORTS:
        raise BenchinitError(
            f"unknown order '{sort}'.{did_you_mean(sort, SORTS)} Valid: {', '.join(SORTS)}."
        )
    if sort == "given":
        return runs

    def started(results: Results) -> datetime:
        text = results.meta["started"]
        try:
            moment = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            raise ResultsError(
                f"'{results.path / 'meta.json'}' has no valid start time ('started': "
                f"{text!r}); give the folders in order instead of sorting by time"
            ) from None
        # benchinit writes UTC with its offset; a time without one is read as UTC too
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    return sorted(runs, key=started)


def configuration_label(frame: pd.DataFrame, axes: list[str]) -> pd.Series:
    """The label compare gives a configuration: its grid values joined by ', '."""
    return frame[axes].astype(str).agg(", ".join, axis=1)


def _series(runs: list[Results], metrics: list[str]) -> pd.DataFrame:
    frames = []
    for index, results in enumerate(runs, start=1):
        for metric in metrics:
            summary = results.summary(metric)
            summary["configuration"] = configuration_label(summary, results.axes)
            frames.append(summary.assign(run=index, metric=metric))
    return pd.concat(frames, ignore_index=True)


def _steps(
    runs: list[Results], metrics: list[str], tolerance: float | None, alpha: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every step's tested rows, study-level tests and priors (not yet judged)."""
    frames = []
    for step in range(1, len(runs)):
        rows = comparison_rows(runs[step - 1], runs[step], metrics, tolerance)
        frames.append(rows.assign(step=step, step_label=f"{step} → {step + 1}"))
    if not frames:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    table, study, priors = evidence.test_rows(
        pd.concat(frames, ignore_index=True), ["step", "metric"], 1 - alpha
    )
    return table, study, priors


def history(
    dirs: Sequence[str | os.PathLike[str]],
    *,
    metrics: list[str] | None = None,
    tolerance: float | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    sort: str = "given",
    out: str | os.PathLike[str] | None = None,
    json_out: str | os.PathLike[str] | None = None,
    markdown_out: str | os.PathLike[str] | None = None,
) -> HistoryOutcome:
    """Compare each consecutive pair of ``dirs`` (results folders of one study) and write the
    trend page (default: ``history.html`` in the last folder of the series); JSON and
    Markdown when asked, and the Markdown appended to ``$GITHUB_STEP_SUMMARY`` when set.

    Raises ResultsError naming the folder for a missing or corrupt folder or one of another
    study, BenchinitError for bad settings.
    """
    verdicts.check_options(alpha, tolerance, correction)
    if not dirs:
        raise BenchinitError("history needs at least one results folder")
    runs = _order([load_results(d) for d in dirs], sort)
    html_path = Path(out) if out else runs[-1].path / "history.html"
    check_verdict_outputs(html_path, json_out, markdown_out)  # before any work
    check_recorded(runs[0])
    for other in runs[1:]:
        check_comparable(runs[0], other)
    chosen = check_metrics(runs[0], metrics)
    check_values(runs, chosen)
    table, study, priors = _steps(runs, chosen, tolerance, alpha)
    if len(table):
        table, study = verdicts.judge(table, alpha=alpha, correction=correction, study=study)
    changes = [
        [e for e in environment_differences(a.meta, b.meta) if e["differs"]]
        for a, b in itertools.pairwise(runs)
    ]
    outcome = HistoryOutcome(
        runs,
        table,
        _series(runs, chosen),
        changes,
        chosen,
        correction,
        alpha,
        study=study,
        priors=priors,
    )
    outcome.html = series_render.write_html(outcome, html_path)
    comparison_render.write_outputs(
        series_render.json_summary(outcome), series_render.markdown(outcome), json_out, markdown_out
    )
    return outcome
