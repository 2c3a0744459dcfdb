"""How a history is shown: the trend page (``history.html``) and its Markdown summary.

Figures are drawn with seaborn's style through :func:`benchinit.figures.drawing.render` (PNG data
URIs: the page loads nothing), the page by ``templates/history.html`` with autoescaping, so
study titles and grid labels show as text. Links to each run's report are relative to the
page, so the folders and the page can be moved together.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # drawing loads matplotlib and seaborn: only when a page is drawn
    from matplotlib.figure import Figure

from benchinit._version import __version__
from benchinit.analysis import stats
from benchinit.gate import compare_render as comparison_render
from benchinit.gate import verdicts
from benchinit.gate.outcomes import HistoryOutcome
from benchinit.report.templating import environment as jinja_environment
from benchinit.results.outputs import write_output

# --- Markdown ----------------------------------------------------------------------------


def markdown(outcome: HistoryOutcome) -> str:
    """The last step's verdicts (the study as a whole first) and changes, and the power
    warning, as GitHub Markdown."""
    md = comparison_render.md
    method = comparison_render.correction_text(outcome.correction, outcome.alpha)
    lines = [
        f"### benchinit history: {md(outcome.runs[0].study['title'])}",
        "",
        f"**{len(outcome.runs)} runs, last run {md(outcome.runs[-1].path)}** ({md(method)}, "
        "over every step)",
        "",
    ]
    if outcome.steps:
        lines += [f"**{md(step_line(outcome, outcome.steps))}**", ""]
        last = outcome.step_table(outcome.steps)
        lines += comparison_render.markdown_study(
            outcome.step_study(outcome.steps), outcome.step_priors(outcome.steps), 1 - outcome.alpha
        )
        lines += [*comparison_render.markdown_table(last, 1 - outcome.alpha), ""]
        lines += comparison_render.environment_lines(outcome.changes[-1])
    if outcome.warning:
        lines += ["", f"> {md(outcome.warning)}"]
    return "\n".join(lines) + "\n"


# --- the page ----------------------------------------------------------------------------


def series_plot(
    series: pd.DataFrame, marks: pd.DataFrame, changed: list[int], runs: int, metric: str
) -> Figure:
    """One panel per configuration: the metric's mean and interval at each run; a run whose
    step regressed (improved) is marked red (green); a dashed line before a run whose
    environment changed."""
    configs = list(dict.fromkeys(series["configuration"]))
    cols = min(len(configs), 4)
    rows = -(-len(configs) // cols)
    from matplotlib.figure import Figure

    from benchinit.figures import drawing as figures

    fig = Figure(figsize=(3.4 * cols, 2.4 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True).flat
    for ax, config in zip(axes, configs, strict=False):
        frame = series[series["configuration"] == config].sort_values("run")
        error = [frame["mean"] - frame["ci_low"], frame["ci_high"] - frame["mean"]]
        ax.errorbar(frame["run"], frame["mean"], yerr=error, fmt="-o", color="0.35", ms=4)
        for verdict in ("regressed", "improved"):
            hit = marks[(marks["configuration"] == config) & (marks["verdict"] == verdict)]
            points = frame[frame["run"].isin(hit["step"] + 1)]
            color = figures.VERDICT_COLORS[verdict]
            ax.scatter(points["run"], points["mean"], s=70, color=color, zorder=3, label=verdict)
        for run in changed:
            ax.axvline(run - 0.5, color="0.5", linestyle="--", linewidth=0.8)
        title = config if len(config) <= 40 else config[:39] + "…"
        ax.set_title(title.replace("$", r"\$"), fontsize="small")
        ax.set_xticks(range(1, runs + 1))
    for ax in list(axes)[len(configs) :]:
        ax.set_visible(False)
    fig.supxlabel("run")
    fig.supylabel(metric)
    return fig


def _panels(outcome: HistoryOutcome, metric: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The configurations to draw (those that moved first, at most MAX_PANELS), the moves,
    and how many configurations there are in all."""
    series = outcome.series[outcome.series["metric"] == metric]
    moves = pd.DataFrame(columns=["configuration", "metric", "step", "verdict"])
    if len(outcome.table):
        table = outcome.table
        moved_rows = table["verdict"].isin(["regressed", "improved"])
        moves = table[(table["metric"] == metric) & moved_rows]
    every = list(dict.fromkeys(series["configuration"]))
    moved = [c for c in every if c in set(moves["configuration"])]
    from benchinit.figures.layout import MAX_PANELS

    shown = (moved + [c for c in every if c not in moved])[:MAX_PANELS]
    return series[series["configuration"].isin(shown)], moves, len(every)


def _figures(outcome: HistoryOutcome) -> list[dict[str, str]]:
    from benchinit.figures import drawing as figures

    # Commits change every night: only environment and settings changes get a line.
    changed = [
        i + 2
        for i, step in enumerate(outcome.changes)
        if any(not e["key"].startswith("git ") for e in step)
    ]
    images = []
    for metric in outcome.metrics:
        series, moves, total = _panels(outcome, metric)
        if series["mean"].notna().any():
            shown = series["configuration"].nunique()
            more = (
                f"; {shown} of {total} configurations, those that moved first"
                if shown < total
                else ""
            )
            images.append(
                {
                    "caption": f"{metric} per run: mean and {1 - outcome.alpha:.0%} interval over "
                    "seeds; red: that step regressed, green: improved; dashed: the environment or "
                    f"settings changed before that run (commits: see Runs){more}",
                    "src": figures.render(
                        series_plot, series, moves, changed, len(outcome.runs), metric
                    ),
                }
            )
    return images


def _link(run: Path, page: Path) -> str | None:
    """A relative link from the page to a run's report ("./" first, so a folder named like
    a URL scheme stays a path), or None when the run has no report."""
    report = run / "index.html"
    if not report.is_file():
        return None
    relative = Path(os.path.relpath(report.resolve(), page.resolve().parent)).as_posix()
    return urllib.parse.quote(relative if relative.startswith("..") else "./" + relative)


def _run_rows(outcome: HistoryOutcome, page: Path) -> list[dict[str, Any]]:
    rows = []
    for index, results in enumerate(outcome.runs, start=1):
        git = results.meta["provenance"].get("git") or {}
        step = index - 1
        rows.append(
            {
                "run": index,
                "path": str(results.path),
                "link": _link(results.path, page),
                "started": results.meta["started"],
                "torch": results.meta["environment"].get("torch", ""),
                "commit": (git.get("commit") or "")[:12],
                "counts": verdicts.counts(outcome.step_table(step)) if step else None,
                "study": comparison_render.study_html(outcome.step_study(step), 1 - outcome.alpha)
                if step
                else [],
                "changes": outcome.changes[step - 1] if step else [],
            }
        )
    return rows


def write_html(outcome: HistoryOutcome, path: Path) -> Path:

    table = outcome.table
    rows = comparison_render.html_rows(comparison_render.ordered(table)) if len(table) else []
    page = (
        jinja_environment()
        .get_template("history.html")
        .render(
            version=__version__,
            study=outcome.runs[0].study,
            runs=_run_rows(outcome, path),
            regressed=outcome.regressed,
            steps=outcome.steps,
            rows=rows,
            study_rows=comparison_render.study_html(
                outcome.step_study(outcome.steps), 1 - outcome.alpha
            ),
            priors=comparison_render.prior_texts(outcome.priors),
            moves=[r for r in rows if r["verdict"] in ("regressed", "improved")],
            tuned=bool(len(table) and (table["tuned"] != "").any()),
            table_id="history-verdicts",
            figures=_figures(outcome),
            alpha=outcome.alpha,
            correction=comparison_render.CORRECTION_NAMES[outcome.correction],
            power=stats.POWER,
            warning=outcome.warning,
        )
    )
    return write_output(path, page, "html")


# --- text and JSON ----------------------------------------------------------------


def step_line(outcome: HistoryOutcome, step: int) -> str:
    counts = verdicts.counts(outcome.step_table(step))
    line = f"step {step} → {step + 1}: " + ", ".join(f"{n} {v}" for v, n in counts.items())
    whole = outcome.step_study(step)
    if len(whole):
        line += "; study as a whole: " + ", ".join(
            f"{r['metric']} {r['verdict']}" for r in whole.to_dict(orient="records")
        )
    changed = outcome.changes[step - 1]
    if changed:
        shown = comparison_render.shown
        line += "; changed: " + "; ".join(
            f"{e['key']} {shown(e['base'])} → {shown(e['new'])}" for e in changed
        )
    return line


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def text_summary(outcome: HistoryOutcome) -> str:
    study = outcome.runs[0].study["name"]
    method = comparison_render.correction_text(outcome.correction, outcome.alpha)
    lines = [
        f"history {study}: {_plural(len(outcome.runs), 'run')}, "
        f"{_plural(outcome.steps, 'step')}, "
        f"{len(outcome.table)} verdicts ({method}, over the whole page)"
    ]
    lines += [step_line(outcome, step) for step in range(1, outcome.steps + 1)]
    last = outcome.step_table(outcome.steps)
    if outcome.steps:
        level = 1 - outcome.alpha
        lines += comparison_render.study_lines(
            outcome.step_study(outcome.steps), outcome.step_priors(outcome.steps), level
        )
    if outcome.regressed:
        bad = last[last["verdict"] == "regressed"]
        whole = outcome.step_study(outcome.steps)
        names = [*(bad["configuration"] + " " + bad["metric"])]
        worse = whole["metric"][whole["verdict"] == "regressed"] if len(whole) else []
        names += [f"the study as a whole ({m})" for m in worse]
        lines.append("last step regressed: " + "; ".join(names))
    if outcome.warning:
        lines.append(outcome.warning)
    if outcome.html is not None:
        lines.append(f"report: {outcome.html}")
    return "\n".join(lines)


def json_summary(outcome: HistoryOutcome) -> dict[str, Any]:
    return {
        "study": outcome.runs[0].study["name"],
        "regressed": outcome.regressed,
        "correction": outcome.correction,
        "alpha": outcome.alpha,
        "power": stats.POWER,
        "metrics": outcome.metrics,
        "warning": outcome.warning,
        "runs": [
            {"run": i, "path": str(r.path), "started": r.meta["started"]}
            for i, r in enumerate(outcome.runs, start=1)
        ],
        "steps": [
            {
                "step": step,
                "base": str(outcome.runs[step - 1].path),
                "new": str(outcome.runs[step].path),
                "counts": verdicts.counts(outcome.step_table(step)),
                "study_level": comparison_render.records(outcome.step_study(step))
                if len(outcome.study)
                else [],
                "changes": outcome.changes[step - 1],
            }
            for step in range(1, outcome.steps + 1)
        ],
        "series": comparison_render.records(outcome.series),
        "priors": comparison_render.records(outcome.priors) if len(outcome.priors) else [],
        "comparisons": comparison_render.records(outcome.table) if len(outcome.table) else [],
    }
