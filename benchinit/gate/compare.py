"""Compare two result sets of one study: per configuration and metric, did NEW improve,
regress, stay unchanged, or can the seeds not tell (inconclusive)?

Configurations pair by their grid values, runs by seed. The statistics and the decision
rule (moderated t-tests, the study as a whole, a correction over every verdict of the
command, the detectable change) live in :mod:`benchinit.gate.verdicts`; this module reads the
folders, pairs them, and reports beside each verdict what else changed:

- ``initial_weights``: ``identical`` when every paired seed's ``init_hash`` (a fingerprint
  of the cell's initial weights) matches, ``changed`` when one differs, ``unknown`` when the
  folders do not record it or no seed pairs. It tells a changed initializer stream (a torch
  release, a plugin version) from a changed training;
- ``tuned``: the value a tuned study chose per configuration (runs columns ``tuned.<param>``),
  with a change of value called out in the note;
- the environment and provenance (versions, device, git commit, torch build, host, plugin
  versions, study settings) side by side, differences marked.

``compare.html`` (and Markdown, JSON) are drawn by :mod:`benchinit.gate.compare_render`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchinit.errors import BenchinitError, ResultsError, did_you_mean
from benchinit.gate import compare_render as comparison_render
from benchinit.gate import evidence, verdicts
from benchinit.gate.differences import environment_differences
from benchinit.gate.outcomes import CompareOutcome
from benchinit.metrics import METRICS
from benchinit.results.meta import StudyInfo
from benchinit.results.outputs import check_verdict_outputs
from benchinit.results.schema import TUNED_PREFIX
from benchinit.results.tables import Results, load_results


def check_recorded(results: Results) -> None:
    """Refuse a result set with no record at all, naming its folder."""
    if results.runs.empty:
        raise ResultsError(
            f"'{results.path}' has no finished or failed cell yet (an interrupted run?): "
            "nothing to compare. Run its study into it again to finish it"
        )


def check_comparable(base: Results, new: Results) -> None:
    """Refuse result sets of different studies or grids, or with no record, naming the
    folders."""
    check_recorded(base)
    check_recorded(new)
    a, b = base.study, new.study
    if (a["name"], a["kind"]) != (b["name"], b["kind"]):
        raise ResultsError(
            f"these result sets come from different studies: '{a['name']}' ({a['kind']}) in "
            f"{base.path} and '{b['name']}' ({b['kind']}) in {new.path}; compare runs of "
            "one study"
        )
    if set(a["axes"]) != set(b["axes"]):
        raise ResultsError(
            f"the grids differ: {base.path} varies {', '.join(a['axes'])}, {new.path} varies "
            f"{', '.join(b['axes'])}"
        )


def check_metrics(results: Results, metrics: Sequence[str] | None) -> list[str]:
    """The metrics to compare (default: the study's main one), each a metric of its kind."""
    kind = results.study["kind"]
    chosen = list(dict.fromkeys(metrics or [results.metric]))  # once each: one family
    for metric in chosen:
        if metric not in METRICS[kind]:
            raise BenchinitError(
                f"'{metric}' is not a metric of {kind} studies."
                f"{did_you_mean(metric, METRICS[kind])} Valid: {', '.join(METRICS[kind])}."
            )
    return chosen


def check_values(runs: Sequence[Results], metrics: Sequence[str]) -> None:
    """Refuse a metric that some folders' finished runs have values of and another's have
    none of (a validation split dropped, an accuracy target removed or never reached): a
    gate must not pass on values that are not there, and cannot call a missing record a
    regression of the code. A folder with no finished run is judged by its statuses
    instead; a metric no folder has a value of is compared as it is (a folder compared with
    itself is unchanged)."""
    for metric in metrics:
        has, lacking = [], []
        for results in runs:
            finished = results.runs[results.runs["status"] == "ok"]
            if metric in finished and finished[metric].notna().any():
                has.append(results)
            elif len(finished):
                lacking.append(results)
        if has and lacking:
            raise ResultsError(
                f"'{metric}' has no value in any finished run of {lacking[0].path} but has "
                f"values in {has[0].path}: the runs differ in what they record (a "
                "validation split or an accuracy target on one side only), or no run of "
                "the first reached the accuracy target. The metric cannot be compared: "
                "compare another metric, or rerun so that both record it"
            )


def _groups(runs: pd.DataFrame, axes: list[str]) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    for key, frame in runs.groupby(axes, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), frame


def initial_weights(base: pd.DataFrame, new: pd.DataFrame) -> str:
    """``identical``, ``changed`` or ``unknown``: the initial-weight fingerprints
    (``init_hash``) of the seeds both ran."""
    if "init_hash" not in base or "init_hash" not in new:
        return "unknown"
    a = base.set_index("seed")["init_hash"]
    b = new.set_index("seed")["init_hash"]
    pairs = [
        (a[s], b[s])
        for s in sorted(set(a.index) & set(b.index))
        if isinstance(a[s], str) and isinstance(b[s], str) and a[s] and b[s]
    ]
    if not pairs:
        return "unknown"
    return "changed" if any(x != y for x, y in pairs) else "identical"


def _chosen(frame: pd.DataFrame, column: str) -> str:
    if column not in frame:
        return "–"
    values = sorted({str(v) for v in frame[column].dropna() if str(v) != ""})
    return "/".join(values) if values else "–"


def tuned_values(base: pd.DataFrame, new: pd.DataFrame) -> tuple[str, list[str]]:
    """The chosen values of a tuned study's hyperparameters (``tuned.*`` columns) and, for
    each whose choice changed, a note."""
    columns = sorted(
        {c for frame in (base, new) for c in frame.columns if str(c).startswith(TUNED_PREFIX)}
    )
    shown, notes = [], []
    for column in columns:
        name = column[len(TUNED_PREFIX) :]
        before, after = _chosen(base, column), _chosen(new, column)
        if before == after:
            shown.append(f"{name}={after}")
        else:
            shown.append(f"{name}: {before} → {after}")
            notes.append(f"chosen {name} changed: {before} → {after}")
    return "; ".join(shown), notes


def _values(frame: pd.DataFrame, metric: str) -> pd.Series:
    """The metric's column, NaN where a folder never recorded it (no such column)."""
    return frame[metric] if metric in frame else pd.Series(math.nan, index=frame.index)


def _status_change(base: pd.DataFrame, new: pd.DataFrame, metric: str) -> tuple[str, list[str]]:
    """How the configuration's diverged and failed seeds, and its finished seeds with no
    value of the metric, changed: "fixed" (none finished in base, some in new), "worse"
    (more of any), "better" (fewer) or ""; and notes."""
    notes, worse, better = [], False, False

    def missing(frame: pd.DataFrame) -> pd.Series:
        return (frame["status"] == "ok") & _values(frame, metric).isna()

    for name, before, after in (
        ("diverged", base["status"] == "diverged", new["status"] == "diverged"),
        ("failed", base["status"] == "failed", new["status"] == "failed"),
        (f"no {metric} value", missing(base), missing(new)),
    ):
        b, a = int(before.sum()), int(after.sum())
        if a != b:
            notes.append(f"{name} in {a} of {len(new)} seeds (base: {b})")
        worse, better = worse or a > b, better or a < b
    if not (base["status"] == "ok").any() and (new["status"] == "ok").any():
        return "fixed", ["no seed finished in base", *notes]
    return ("worse" if worse else "better" if better else ""), notes


def same_records(base: pd.DataFrame, new: pd.DataFrame, metric: str) -> int:
    """How many seeds both sides recorded, when each of them has the same status and the
    same value of ``metric`` on both (a missing value equal to a missing value); else 0."""
    columns = ["seed", "status"]
    a = base[columns].assign(value=_values(base, metric)).set_index("seed")
    b = new[columns].assign(value=_values(new, metric)).set_index("seed")
    common = a.index.intersection(b.index)
    if common.empty or not (a.index.is_unique and b.index.is_unique):
        return 0
    a, b = a.loc[common], b.loc[common]
    same_value = (a["value"] == b["value"]) | (a["value"].isna() & b["value"].isna())
    return len(common) if bool(((a["status"] == b["status"]) & same_value).all()) else 0


def _metric_row(
    metric: str,
    direction: str,
    base: pd.DataFrame,
    new: pd.DataFrame,
    tolerance: float | None,
) -> dict[str, Any]:
    sign = 1.0 if direction == "max" else -1.0

    def finished(frame: pd.DataFrame) -> pd.Series:
        ok = frame[frame["status"] == "ok"]
        return _values(ok, metric).set_axis(ok["seed"]).dropna()

    b_ok, n_ok = finished(base), finished(new)
    row = evidence.seed_moments(b_ok, n_ok, sign, same_records(base, new, metric))
    status_change, notes = _status_change(base, new, metric)
    tol = verdicts.default_tolerance(metric, row["base"]) if tolerance is None else tolerance
    return {
        "metric": metric,
        "direction": direction,
        **row,
        "tolerance": tol,
        "seeds": f"{len(b_ok)} / {len(n_ok)}",
        "status_change": status_change,
        "note": "; ".join(notes),
    }


def _in_grid(key: tuple[Any, ...], axes: list[str], study: StudyInfo) -> bool:
    """Whether ``study``'s grid holds the configuration ``key`` (values compared as text)."""
    values = study["values"]
    return all(
        isinstance(values.get(axis), list) and str(v) in {str(x) for x in values[axis]}
        for axis, v in zip(axes, key, strict=True)
    )


def _unmatched(
    key: tuple[Any, ...], axes: list[str], other: Results, in_base: bool
) -> tuple[str, str]:
    """A configuration only one side recorded (``in_base``: BASE did), given the other
    side: its status change and note. Absent from NEW though NEW's grid holds it is
    ``missing``, a regression: NEW is incomplete."""
    side = "NEW" if in_base else "BASE"
    if _in_grid(key, axes, other.study):
        return ("missing" if in_base else ""), f"no record in {side}, though its grid has it"
    return "", f"not in {side}'s grid: not compared"


def comparison_rows(
    base: Results,
    new: Results,
    metrics: Sequence[str],
    tolerance: float | None,
) -> pd.DataFrame:
    """One row per configuration either side recorded and metric: what its test needs, not
    yet a test (the prior needs every configuration first: :func:`evidence.test_rows`) nor
    a verdict (the correction needs every test of the command: :func:`verdicts.judge`).
    A configuration only one side recorded has a row too, with no test, so nothing
    disappears from a comparison silently (see :func:`_unmatched`)."""
    axes = base.axes
    kind = base.study["kind"]
    base_groups = dict(_groups(base.runs, axes))
    new_groups = dict(_groups(new.runs, axes))
    if not any(key in new_groups for key in base_groups):
        raise ResultsError(
            f"{base.path} and {new.path} have no configuration in common (grid values "
            "differ everywhere): nothing to compare"
        )
    rows = []
    for key in dict.fromkeys([*base_groups, *new_groups]):
        b = base_groups.get(key, base.runs.iloc[0:0])
        n = new_groups.get(key, new.runs.iloc[0:0])
        matched = key in base_groups and key in new_groups
        tuned, tuned_notes = tuned_values(b, n) if matched else ("", [])
        context = {
            "configuration": ", ".join(str(v) for v in key),
            **dict(zip(axes, key, strict=True)),
            "initial_weights": initial_weights(b, n),
            "tuned": tuned,
        }
        for metric in metrics:
            row = _metric_row(metric, METRICS[kind][metric], b, n, tolerance)
            if not matched:
                in_base = key in base_groups
                other = new if in_base else base
                row["status_change"], row["note"] = _unmatched(key, axes, other, in_base)
            row["note"] = "; ".join(filter(None, [row["note"], *tuned_notes]))
            rows.append({**context, **row})
    return pd.DataFrame(rows)


def compare(
    base: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    metrics: list[str] | None = None,
    tolerance: float | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    out: str | os.PathLike[str] | None = None,
    json_out: str | os.PathLike[str] | None = None,
    markdown_out: str | os.PathLike[str] | None = None,
) -> CompareOutcome:
    """Compare result folders ``base`` and ``new``; write ``compare.html`` (default in NEW),
    and JSON and Markdown when asked. When ``$GITHUB_STEP_SUMMARY`` names a file, the
    Markdown is appended to it (GitHub shows it on the job's page).

    Raises ResultsError (exit 2 in the CLI) for missing, corrupt or incomparable folders and
    BenchinitError for bad settings (a NaN tolerance, alpha outside (0, 1)).
    """
    verdicts.check_options(alpha, tolerance, correction)
    html_path = Path(out) if out else Path(new) / "compare.html"
    check_verdict_outputs(html_path, json_out, markdown_out)
    a, b = load_results(base), load_results(new)
    check_comparable(a, b)
    chosen = check_metrics(a, metrics)
    check_values([a, b], chosen)
    rows = comparison_rows(a, b, chosen, tolerance)
    tested, study, priors = evidence.test_rows(rows, ["metric"], 1 - alpha)
    table, study = verdicts.judge(tested, alpha=alpha, correction=correction, study=study)
    outcome = CompareOutcome(
        table,
        a,
        b,
        correction,
        alpha,
        environment=environment_differences(a.meta, b.meta),
        study=study,
        priors=priors,
    )
    outcome.html = comparison_render.write_html(outcome, html_path)
    comparison_render.write_outputs(
        comparison_render.json_summary(outcome),
        comparison_render.markdown(outcome),
        json_out,
        markdown_out,
    )
    return outcome
