"""Compare two result sets of one study: improved, regressed, unchanged or inconclusive.

Configurations pair by their grid values, runs by seed. For each configuration and metric
the difference d = NEW - BASE is signed so that positive is better (accuracy up, loss down),
and decided with a tolerance ``tol`` (the smallest difference that matters) and a 95%
interval (1 - ``alpha``):

- seeds that pair (at least two in common): a paired t-test over the per-seed differences;
- otherwise: a percentile bootstrap interval of the difference of the means.

Verdicts: ``improved`` when the interval excludes 0 and d > tol; ``regressed`` when the
interval excludes 0 and d < -tol; ``unchanged`` when the whole interval lies within
[-tol, tol] (two identical result sets are unchanged whatever the tolerance);
``inconclusive`` otherwise (too few seeds or too much spread to tell). More diverged or
failed seeds in NEW than in BASE is a regression of that configuration too.

Default tolerance: 0.005 for metrics on [0, 1] (accuracy, fractions: half a point),
otherwise 1% of the baseline mean's magnitude.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchinit import figures
from benchinit.errors import BenchinitError, ResultsError, did_you_mean
from benchinit.metrics import METRICS
from benchinit.results import Results, load_results
from benchinit.stats import bootstrap_diff, paired_t
from benchinit.store import write_atomic

UNIT_METRICS = {"test_accuracy", "saturated_frac", "dead_frac"}
ENVIRONMENT_KEYS = (
    "benchinit",
    "torch",
    "python",
    "numpy",
    "pandas",
    "device",
    "platform",
    "cuda",
    "threads",
    "deterministic",
)


@dataclass
class CompareOutcome:
    """The verdicts (one row per configuration and metric) and where they were written."""

    table: pd.DataFrame
    base: Results
    new: Results
    html: Path | None = None
    environment: list[dict[str, Any]] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool((self.table["verdict"] == "regressed").any())

    def counts(self) -> dict[str, int]:
        verdicts = ("improved", "regressed", "unchanged", "inconclusive")
        return {v: int((self.table["verdict"] == v).sum()) for v in verdicts}

    def summary(self, rows: int = 12) -> str:
        counts = self.counts()
        head = f"compare {self.base.study['name']}: {len(self.table)} comparisons: " + ", ".join(
            f"{n} {v}" for v, n in counts.items()
        )
        order = {"regressed": 0, "improved": 1, "inconclusive": 2, "unchanged": 3}
        shown = (
            self.table.assign(_o=self.table["verdict"].map(order))
            .sort_values(["_o", "metric"], kind="stable")
            .head(rows)
        )
        columns = [
            "configuration",
            "metric",
            "base",
            "new",
            "diff",
            "ci_low",
            "ci_high",
            "verdict",
            "note",
        ]
        lines = [head, "", shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        if len(self.table) > rows:
            lines.append(f"... {len(self.table) - rows} more in {self.html or 'the table'}")
        changed = [e for e in self.environment if e["differs"]]
        if changed:
            lines.append(
                "environments differ: "
                + "; ".join(f"{e['key']} {e['base']} -> {e['new']}" for e in changed)
            )
        if self.html is not None:
            lines.append(f"report: {self.html}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.base.study["name"],
            "regressed": self.regressed,
            "counts": self.counts(),
            "environment": self.environment,
            "comparisons": json.loads(self.table.to_json(orient="records")),
        }


def default_tolerance(metric: str, base_mean: float) -> float:
    if metric in UNIT_METRICS:
        return 0.005
    return 0.01 * abs(base_mean) if math.isfinite(base_mean) else 0.0


def _check_comparable(base: Results, new: Results) -> None:
    a, b = base.study, new.study
    if (a["name"], a["kind"]) != (b["name"], b["kind"]):
        raise ResultsError(
            f"these result sets come from different studies: '{a['name']}' ({a['kind']}) in "
            f"{base.path} and '{b['name']}' ({b['kind']}) in {new.path}; compare two runs of "
            "one study"
        )
    if set(a["axes"]) != set(b["axes"]):
        raise ResultsError(
            f"the grids differ: {base.path} varies {', '.join(a['axes'])}, {new.path} varies "
            f"{', '.join(b['axes'])}"
        )


def _decide(d: float, low: float, high: float, tol: float) -> str:
    if any(math.isnan(v) for v in (d, low, high)):
        return "inconclusive"
    if low >= -tol and high <= tol:
        return "unchanged"
    if low > 0 and d > tol:
        return "improved"
    if high < 0 and d < -tol:
        return "regressed"
    return "inconclusive"


def _compare_metric(
    metric: str,
    direction: str,
    base: pd.DataFrame,
    new: pd.DataFrame,
    tolerance: float | None,
    alpha: float,
) -> dict[str, Any]:
    """One configuration's verdict on one metric; base/new hold its runs (all statuses)."""
    sign = 1.0 if direction == "max" else -1.0
    b_ok = base[base["status"] == "ok"].set_index("seed")[metric].dropna()
    n_ok = new[new["status"] == "ok"].set_index("seed")[metric].dropna()
    common = sorted(set(b_ok.index) & set(n_ok.index))
    base_mean = float(b_ok.mean()) if len(b_ok) else math.nan
    new_mean = float(n_ok.mean()) if len(n_ok) else math.nan
    tol = default_tolerance(metric, base_mean) if tolerance is None else tolerance
    test = "none"
    d = low = high = p = math.nan
    if len(common) >= 2:
        diffs = [sign * (n_ok[s] - b_ok[s]) for s in common]
        d, low, high, p = paired_t(diffs, level=1 - alpha)
        test = f"paired t over {len(common)} seeds"
    elif len(b_ok) >= 2 and len(n_ok) >= 2:
        d, low, high, p = bootstrap_diff(
            (sign * b_ok).tolist(), (sign * n_ok).tolist(), level=1 - alpha
        )
        test = f"bootstrap, {len(b_ok)} vs {len(n_ok)} seeds"
    verdict = _decide(d, low, high, tol)
    notes = []
    for status in ("diverged", "failed"):
        before, after = int((base["status"] == status).sum()), int((new["status"] == status).sum())
        if after > before:
            verdict = "regressed"
            notes.append(f"{status} in {after} of {len(new)} seeds (base: {before})")
        elif after < before:
            notes.append(f"{status} in {after} of {len(new)} seeds (base: {before})")
    return {
        "metric": metric,
        "base": base_mean,
        "new": new_mean,
        "diff": d,
        "ci_low": low,
        "ci_high": high,
        "p": p,
        "tolerance": tol,
        "test": test,
        "verdict": verdict,
        "note": "; ".join(notes),
        "direction": direction,
    }


def _environment(base: Results, new: Results) -> list[dict[str, Any]]:
    rows = []
    for key in ENVIRONMENT_KEYS:
        a = base.meta.get("environment", {}).get(key)
        b = new.meta.get("environment", {}).get(key)
        if a is None and b is None:
            continue
        rows.append({"key": key, "base": a, "new": b, "differs": a != b})
    return rows


def compare(
    base: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    metrics: list[str] | None = None,
    tolerance: float | None = None,
    alpha: float = 0.05,
    out: str | os.PathLike[str] | None = None,
    json_out: str | os.PathLike[str] | None = None,
) -> CompareOutcome:
    """Compare result folders ``base`` and ``new``; write ``compare.html`` (default in NEW).

    Raises ResultsError (exit 2 in the CLI) for missing, corrupt or incomparable folders.
    """
    if not 0 < alpha < 1:
        raise BenchinitError(f"--alpha must be between 0 and 1, got {alpha}")
    if tolerance is not None and tolerance < 0:
        raise BenchinitError(f"--tolerance must be at least 0, got {tolerance}")
    a, b = load_results(base), load_results(new)
    _check_comparable(a, b)
    kind = a.study["kind"]
    metrics = metrics or [a.metric]
    for metric in metrics:
        if metric not in METRICS[kind]:
            raise BenchinitError(
                f"--metric {metric}: not a metric of {kind} studies."
                f"{did_you_mean(metric, METRICS[kind])} Valid: {', '.join(METRICS[kind])}."
            )
    axes = a.axes
    base_groups = dict(_groups(a.runs, axes))
    new_groups = dict(_groups(b.runs, axes))
    common = [key for key in base_groups if key in new_groups]
    if not common:
        raise ResultsError(
            f"{base} and {new} have no configuration in common (grid values differ "
            "everywhere): nothing to compare"
        )
    rows = []
    for key in common:
        label = ", ".join(str(v) for v in key)
        for metric in metrics:
            row = _compare_metric(
                metric, METRICS[kind][metric], base_groups[key], new_groups[key], tolerance, alpha
            )
            rows.append({"configuration": label, **dict(zip(axes, key, strict=True)), **row})
    table = pd.DataFrame(rows)
    outcome = CompareOutcome(table, a, b, environment=_environment(a, b))
    outcome.html = _write_html(outcome, Path(out) if out else Path(new) / "compare.html", alpha)
    if json_out:
        write_atomic(Path(json_out), json.dumps(outcome.to_json(), indent=2, default=str))
    return outcome


def _groups(runs: pd.DataFrame, axes: list[str]):
    for key, frame in runs.groupby(axes, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), frame


def _write_html(outcome: CompareOutcome, path: Path, alpha: float) -> Path:
    from benchinit._version import __version__
    from benchinit.report import environment as jinja_environment

    images = []
    for metric, frame in outcome.table.groupby("metric", sort=False):
        if frame["diff"].notna().any():
            images.append(
                {
                    "caption": f"{metric}: NEW - BASE, signed so that right is better, with "
                    f"{1 - alpha:.0%} intervals; the band is the tolerance",
                    "src": figures.render(figures.difference_plot, frame),
                }
            )
    html = (
        jinja_environment()
        .get_template("compare.html")
        .render(
            version=__version__,
            study=outcome.base.study,
            base=outcome.base.path,
            new=outcome.new.path,
            counts=outcome.counts(),
            rows=outcome.table.to_dict(orient="records"),
            environment=outcome.environment,
            figures=images,
            alpha=alpha,
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, html)
    return path
