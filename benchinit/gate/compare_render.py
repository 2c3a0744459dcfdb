"""How a comparison is shown: the terminal summary, ``compare.html``, JSON for machines, and
GitHub-flavoured Markdown for pull requests and ``$GITHUB_STEP_SUMMARY``.

Every string from a study (titles, grid labels, notes) is escaped for where it goes:
Jinja2's autoescaping in HTML, backslash and entity escapes in Markdown, so a label like
``a|b`` or ``<script>`` shows as text and never breaks a table.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from benchinit._version import __version__
from benchinit.analysis import stats
from benchinit.gate import evidence, verdicts
from benchinit.gate.outcomes import CompareOutcome
from benchinit.report.templating import environment as jinja_environment
from benchinit.results.outputs import step_summary, write_output

CORRECTION_NAMES = {
    "holm": "Holm (family-wise error)",
    "bh": "Benjamini-Hochberg (false discovery rate)",
    "none": "none (each test alone)",
}
ORDER = {"regressed": 0, "improved": 1, "inconclusive": 2, "unchanged": 3}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def correction_text(correction: str, alpha: float) -> str:
    """'p adjusted by Holm (family-wise error), alpha 0.05'."""
    return f"p adjusted by {CORRECTION_NAMES[correction]}, alpha {alpha:g}"


def number(value: Any, digits: int = 4) -> str:
    """A number for text and Markdown: 4 significant digits, '–' for missing, '∞' for
    a change no test could detect; never '-0'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    text = f"{float(value) + 0.0:.{digits}g}"
    return "0" if text in ("-0", "0") else text


def ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Regressions first, then improvements, then the rest (stable within each)."""
    key = table["verdict"].map(ORDER)
    return table.assign(_o=key).sort_values("_o", kind="stable").drop(columns="_o")


def shown(value: Any) -> str:
    """An environment or settings value for text and Markdown: 'none' for a value one side
    does not have (never Python's 'None')."""
    return "none" if value is None else str(value)


def study_sentence(row: dict[str, Any], level: float) -> str:
    """'test_accuracy: regressed: mean difference -0.21, 95% interval [-0.28, -0.14], p
    adjusted 0.003 (paired t over 3 seeds of the mean over the configurations; mean over 6
    of 6 configurations)'."""
    if row["configurations"] == 0:
        reason = "identical inputs" if row["identical"] else "no configuration could be tested"
        return f"{row['metric']}: {row['verdict']} ({reason}; {row['note']})"
    return (
        f"{row['metric']}: {row['verdict']}: mean difference {number(row['diff'])}, "
        f"{level:.0%} interval [{number(row['ci_low'])}, {number(row['ci_high'])}], p adjusted "
        f"{number(row['p_adjusted'], 2)} ({row['test']}; {row['note']})"
    )


def study_lines(study: pd.DataFrame, priors: pd.DataFrame, level: float) -> list[str]:
    """The study-level verdicts, one line per metric, and the priors the configurations'
    variances were moderated with."""
    if not len(study):
        return []
    lines = [f"study as a whole, {study_sentence(r, level)}" for r in study.to_dict("records")]
    if len(priors):
        clauses = [
            f"{p['metric']} {evidence.prior_text(p)}" for p in priors.to_dict(orient="records")
        ]
        lines.append("variances moderated: " + "; ".join(clauses))
    return lines


# --- the terminal ------------------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def text_summary(outcome: CompareOutcome, rows: int = 12) -> str:
    table = outcome.table
    head = (
        f"compare {outcome.base.study['name']}: {len(table)} comparisons: "
        f"{_counts_text(outcome.counts())} ({correction_text(outcome.correction, outcome.alpha)})"
    )
    columns = {
        "configuration": "configuration",
        "metric": "metric",
        "base": "base",
        "new": "new",
        "diff": "diff",
        "ci_low": "ci_low",
        "ci_high": "ci_high",
        "p_adjusted": "p_adj",
        "detectable": "detectable",
        "initial_weights": "init",
        "verdict": "verdict",
        "note": "note",
    }
    selected = ordered(table).head(rows)[list(columns)].rename(columns=columns)
    lines = [head, *study_lines(outcome.study, outcome.priors, 1 - outcome.alpha)]
    lines += ["", selected.to_string(index=False, float_format=number)]
    if len(table) > rows:
        lines.append(f"... {len(table) - rows} more in {outcome.html or 'the table'}")
    if outcome.warning:
        lines.append(outcome.warning)
    changed = [e for e in outcome.environment if e["differs"]]
    if changed:
        lines.append(
            "environments differ: "
            + "; ".join(f"{e['key']} {shown(e['base'])} -> {shown(e['new'])}" for e in changed)
        )
    if outcome.html is not None:
        lines.append(f"report: {outcome.html}")
    return "\n".join(lines)


# --- JSON --------------------------------------------------------------------------------


def public(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader sees: without the per-seed values the tests were made from and
    the study row's bookkeeping."""
    return table.drop(columns=[c for c in (*verdicts.VALUES, "copy") if c in table])


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN and infinity become null)."""
    return json.loads(public(table).to_json(orient="records"))


def json_summary(outcome: CompareOutcome) -> dict[str, Any]:
    return {
        "study": outcome.base.study["name"],
        "base": str(outcome.base.path),
        "new": str(outcome.new.path),
        "regressed": outcome.regressed,
        "counts": outcome.counts(),
        "correction": outcome.correction,
        "alpha": outcome.alpha,
        "power": stats.POWER,
        "warning": outcome.warning,
        "environment": outcome.environment,
        "study_level": records(outcome.study) if len(outcome.study) else [],
        "priors": records(outcome.priors) if len(outcome.priors) else [],
        "comparisons": records(outcome.table),
    }


# --- Markdown ----------------------------------------------------------------------------


def md(value: Any) -> str:
    """Text safe in a Markdown table cell: HTML entities for & < >, backslashes before
    Markdown's active characters (| included), one line."""
    text = html.escape(str(value), quote=False)
    return " ".join(_MARKDOWN_SPECIAL.sub(r"\\\1", text).split())


def markdown_table(table: pd.DataFrame, level: float) -> list[str]:
    """The verdicts as a GitHub-flavoured Markdown table (lines)."""
    header = [
        "configuration",
        "metric",
        "base",
        "new",
        "difference",
        f"{level:.0%} interval",
        "p (adjusted)",
        f"detectable ({stats.POWER:.0%} power)",
        "initial weights",
        "verdict",
        "note",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in ordered(table).to_dict(orient="records"):
        verdict = (
            f"**{r['verdict']}**" if r["verdict"] in ("regressed", "improved") else r["verdict"]
        )
        cells = [
            md(r["configuration"]),
            md(r["metric"]),
            number(r["base"]),
            number(r["new"]),
            number(r["diff"]),
            f"[{number(r['ci_low'])}, {number(r['ci_high'])}]",
            number(r["p_adjusted"], 2),
            number(r["detectable"], 2),
            md(r["initial_weights"]),
            verdict,
            md("; ".join(filter(None, [r["note"], r["tuned"], r["test"]]))),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def environment_lines(environment: list[dict[str, Any]]) -> list[str]:
    changed = [e for e in environment if e["differs"]]
    if not changed:
        return ["No differences in environment, provenance or settings."]
    return ["Differences:", ""] + [
        f"- {md(e['key'])}: {md(shown(e['base']))} → {md(shown(e['new']))}" for e in changed
    ]


def markdown_study(study: pd.DataFrame, priors: pd.DataFrame, level: float) -> list[str]:
    """The study-level verdicts as Markdown lines (bold when they fail or pass a change)."""
    lines = []
    for row in study.to_dict(orient="records"):
        text = md(study_sentence(row, level))
        if row["verdict"] in ("regressed", "improved"):
            text = text.replace(f"{row['verdict']}:", f"**{row['verdict']}**:", 1)
        lines.append(f"- Study as a whole, {text}")
    if len(priors):
        clauses = [md(f"{p['metric']} {evidence.prior_text(p)}") for p in priors.to_dict("records")]
        lines.append("- Variances moderated: " + "; ".join(clauses))
    return [*lines, ""] if lines else []


def markdown(outcome: CompareOutcome) -> str:
    """The verdict table, a summary line, the power warning and the environment
    differences, as GitHub-flavoured Markdown."""
    lines = [
        f"### benchinit compare: {md(outcome.base.study['title'])}",
        "",
        f"**{len(outcome.table)} comparisons: {_counts_text(outcome.counts())}** "
        f"({md(correction_text(outcome.correction, outcome.alpha))}; base {md(outcome.base.path)}, "
        f"new {md(outcome.new.path)})",
        "",
        *markdown_study(outcome.study, outcome.priors, 1 - outcome.alpha),
        *markdown_table(outcome.table, 1 - outcome.alpha),
        "",
    ]
    if outcome.warning:
        lines += [f"> {md(outcome.warning)}", ""]
    lines += environment_lines(outcome.environment)
    return "\n".join(lines) + "\n"


def write_outputs(
    data: dict[str, Any],
    markdown: str,
    json_out: str | os.PathLike[str] | None,
    markdown_out: str | os.PathLike[str] | None,
) -> None:
    """A verdict page's machine outputs: ``--json``, ``--markdown``, and the GitHub step
    summary when ``$GITHUB_STEP_SUMMARY`` is set (compare and history alike)."""
    if json_out:
        marked = {"generator": f"benchinit {__version__}", **data}  # see benchinit.results.outputs
        write_output(json_out, json.dumps(marked, indent=2, default=str), "json")
    if markdown_out:
        write_output(markdown_out, markdown, "markdown")
    append_step_summary(markdown)


def append_step_summary(text: str) -> Path | None:
    """Append ``text`` to the file ``$GITHUB_STEP_SUMMARY`` names (GitHub Actions shows it
    on the job's page), under the rule every output follows (benchinit.results.outputs); nothing
    when the variable is unset."""
    target = step_summary()
    return None if target is None else write_output(target, text, "markdown", append=True)


# --- HTML --------------------------------------------------------------------------------


def html_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the templates, with the detectable change spelled out where it is infinite."""
    rows: list[dict[str, Any]] = []
    for row in public(table).to_dict(orient="records"):
        r = {str(k): v for k, v in row.items()}
        r["detectable_text"] = (
            "none (fewer than 2 seeds)"
            if math.isinf(r["detectable"])
            else number(r["detectable"], 3)
        )
        rows.append(r)
    return rows


def study_html(study: pd.DataFrame, level: float) -> list[dict[str, Any]]:
    """The study-level rows for the templates, with their sentence."""
    rows = []
    for row in public(study).to_dict(orient="records"):
        rows.append({**{str(k): v for k, v in row.items()}, "sentence": study_sentence(row, level)})
    return rows


def prior_texts(priors: pd.DataFrame) -> list[str]:
    """'test_accuracy paired: prior df 4.2, own noise sd 0.031, from 6 configurations'."""
    by = [c for c in ("step", "metric") if c in priors]
    texts = []
    for p in priors.to_dict(orient="records"):
        where = " ".join(f"step {p[c]}" if c == "step" else str(p[c]) for c in by)
        texts.append(f"{where} {evidence.prior_text(p)}")
    return texts


def difference_figures(table: pd.DataFrame, alpha: float) -> list[dict[str, str]]:
    from benchinit.figures import drawing as figures  # matplotlib and seaborn: a page is drawn

    images = []
    for metric, frame in table.groupby("metric", sort=False):
        if frame["diff"].notna().any():
            images.append(
                {
                    "caption": f"{metric}: NEW - BASE, signed so that right is better, with "
                    f"{1 - alpha:.0%} intervals; the band is the tolerance",
                    "src": figures.render(figures.difference_plot, frame),
                }
            )
    return images


def write_html(outcome: CompareOutcome, path: Path) -> Path:

    page = (
        jinja_environment()
        .get_template("compare.html")
        .render(
            version=__version__,
            study=outcome.base.study,
            base=outcome.base.path,
            new=outcome.new.path,
            counts=outcome.counts(),
            study_rows=study_html(outcome.study, 1 - outcome.alpha),
            priors=prior_texts(outcome.priors),
            regressed=outcome.regressed,
            rows=html_rows(outcome.table),
            tuned=bool((outcome.table["tuned"] != "").any()),
            steps=False,
            table_id="verdict-table",
            environment=outcome.environment,
            figures=difference_figures(outcome.table, outcome.alpha),
            alpha=outcome.alpha,
            correction=CORRECTION_NAMES[outcome.correction],
            power=stats.POWER,
            warning=outcome.warning,
        )
    )
    return write_output(path, page, "html")
