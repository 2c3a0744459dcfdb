"""The report's tuning section: per configuration, the value each tuned parameter was given,
how sure that choice is, and the validation metric against every value tried.

The section is read from the stored runs alone, so a copied folder without its study file's
plugins gives the same page: the :class:`~benchinit.study.tuning.TuneSpec` is rebuilt from the
tuning runs (the ``tuned.<axis>.<param>`` columns give the parameters and the values
tried) and the resolved ``study.toml`` beside them (``[tune] select`` and ``seeds``; a
folder without it falls back to the main metric's validation twin and the seeds found).
The choice is then :func:`benchinit.execution.stages.choose`'s, the function the run chose with, and
the figure's numbers are :func:`benchinit.execution.stages.sensitivity`'s.

With several tuned parameters, each gets its own figure: per configuration and value of
that parameter, the best trial over the others (a profile: how good the metric can be with
the parameter there). A parameter's axis is logarithmic when its values are positive and
span 10x or more (:attr:`benchinit.study.tuning.Tuned.log_scale`).
"""

from __future__ import annotations

import tomllib
from typing import Any

import pandas as pd

from benchinit.execution.stages import ACCURACY_POINTS, LOSS_RELATIVE, choose, sensitivity
from benchinit.figures import analysis as analysis_figures
from benchinit.metrics import metric_info
from benchinit.report.section_figures import FigureJob, grid_sorted, layout, panels_note, slug
from benchinit.results.schema import TUNED_PREFIX
from benchinit.results.store import Store
from benchinit.results.tables import Results
from benchinit.study.tuning import (
    TASK_METRICS,
    TUNE_SEED_BASE,
    VALIDATION_METRICS,
    Tuned,
    TuneSpec,
)


def _resolved_tune(results: Results) -> dict[str, Any]:
    """The resolved ``[tune]`` table as the run stored it in meta.json; for folders written
    before it was kept there, the resolved study.toml's, or {} (no file, or one that does
    not parse)."""
    if results.study.get("tune"):
        return dict(results.study["tune"])
    try:
        table = tomllib.loads(Store(results.path).study_toml()).get("tune", {})
    except (tomllib.TOMLDecodeError, OSError):
        return {}
    return table if isinstance(table, dict) else {}


def _select(results: Results, stored: Any) -> str:
    if isinstance(stored, str) and stored in VALIDATION_METRICS and stored in results.tuning:
        return stored
    twin = "val_" + results.metric.removeprefix("test_")
    if twin in VALIDATION_METRICS:
        return twin
    return TASK_METRICS.get(results.study["task"], ("val_loss",))[0]


def tune_spec(results: Results) -> TuneSpec | None:
    """The TuneSpec of a tuned study, rebuilt from its folder (module docstring); None for
    an untuned one."""
    tuning = results.tuning
    columns = [c for c in tuning.columns if c.startswith(TUNED_PREFIX)]
    if tuning.empty or not columns:
        return None
    stored = _resolved_tune(results)
    params = []
    for column in columns:
        axis, _, param = column.removeprefix(TUNED_PREFIX).partition(".")
        tried = pd.to_numeric(tuning[column], errors="coerce").dropna().unique()
        params.append(Tuned(axis, param, values=tuple(sorted(float(v) for v in tried))))
    count = stored.get("seeds")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        seeds = tuple(TUNE_SEED_BASE + i for i in range(count))
    else:
        seeds = tuple(sorted(int(s) for s in tuning["seed"].unique()))
    select = _select(results, stored.get("select"))
    return TuneSpec(tuple(params), select, VALIDATION_METRICS[select], seeds, tuple(results.axes))


def _tried(p: Tuned) -> str:
    values = p.values
    if len(values) <= 6:
        return ", ".join(f"{v:g}" for v in values)
    return f"{values[0]:g} to {values[-1]:g} ({len(values)} values)"


def _config(row: dict[str, Any], axes: list[str]) -> list[str]:
    return [str(row[a]) for a in axes] if axes else ["all"]


def tuning_section(results: Results, spec: TuneSpec, chosen: pd.DataFrame) -> dict[str, Any]:
    """The section's text and table: per configuration the chosen values, the score, the
    edge warning, the tunability and the trials that counted, diverged or failed."""
    axes = results.varying
    chosen = grid_sorted(chosen, results.study["values"])
    used = _used(results, spec) if _transfer(results) else None
    rows, edges, unchosen = [], [], []
    for row in chosen.to_dict("records"):
        config = _config(row, axes)
        trials = int(row["trials"])
        near = round(float(row["tunability"]) * trials)
        key = tuple(str(row[a]) for a in spec.axes)
        rows.append(
            {
                "config": config,
                "chosen": bool(row["chosen"]),
                "values": [f"{row[p.column]:g}" if row["chosen"] else "none" for p in spec.params],
                "used": None if used is None else used.get(key, ["none"] * len(spec.params)),
                "score": row["score"],
                "edge": row["edge_note"] if row["edge"] else "",
                "near": f"{near} of {trials}",
                **{k: int(row[k]) for k in ("trials", "counted", "diverged", "failed")},
            }
        )
        if row["edge"]:
            edges.append(f"{', '.join(config)}: {row['edge_note']}")
        if not row["chosen"]:
            unchosen.append(", ".join(config))
    direction = spec.direction
    return {
        "select": spec.select,
        "direction": "higher is better" if direction == "max" else "lower is better",
        "near": (
            f"within {ACCURACY_POINTS * 100:g} point of accuracy of the best"
            if direction == "max"
            else f"within {LOSS_RELATIVE:.0%} of the best"
        ),
        "params": [{"key": p.key, "tried": _tried(p), "log": p.log_scale} for p in spec.params],
        "seeds": len(spec.seeds),
        "axes": axes or ["configuration"],
        "rows": rows,
        "edges": edges,
        "unchosen": unchosen,
        "transfer": _transfer(results),
    }


def _transfer(results: Results) -> str:
    """``[tune] transfer`` as the run stored it (``model.width = 64``), or ""."""
    stored = _resolved_tune(results).get("transfer")
    if not isinstance(stored, dict) or len(stored) != 1:
        return ""
    ((axis, value),) = stored.items()
    return f"{axis} = {value}"


def _used(results: Results, spec: TuneSpec) -> dict[tuple[str, ...], list[str]]:
    """Per configuration (its grid labels as text), the tuned values its final runs used."""
    runs = results.runs
    columns = [p.column for p in spec.params]
    if runs.empty or not set(columns) <= set(runs) or not set(spec.axes) <= set(runs):
        return {}
    used = {}
    for key, group in runs.groupby(list(spec.axes), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = [pd.to_numeric(group[c], errors="coerce").iloc[0] for c in columns]
        used[tuple(map(str, key))] = ["none" if pd.isna(v) else f"{v:g}" for v in values]
    return used


def _profile(table: pd.DataFrame, spec: TuneSpec, p: Tuned) -> pd.DataFrame:
    """Per configuration and value of ``p``: the best trial over the other parameters."""
    if len(spec.params) == 1:
        return table
    ranked = table.sort_values("mean", ascending=spec.direction == "min", na_position="last")
    keys = [*spec.axes, p.column]
    return ranked.drop_duplicates(keys).sort_index()


def sensitivity_jobs(results: Results, spec: TuneSpec, chosen: pd.DataFrame) -> list[FigureJob]:
    """One figure per tuned parameter: the select metric against its values."""
    metric = metric_info(spec.select, "train")
    table = sensitivity(results.tuning, spec)
    low, high = metric.bounds
    clipped = bool(((table["low"] < low) | (table["high"] > high)).any())
    table["low"], table["high"] = table["low"].clip(low, high), table["high"].clip(low, high)
    picks = chosen[chosen["chosen"]][[*spec.axes, *spec.columns]].assign(chosen=True)
    table = table.merge(picks, on=[*spec.axes, *spec.columns], how="left")
    table["chosen"] = table["chosen"].astype("boolean").fillna(False).astype(bool)
    hue, facets = layout(results, [])
    seeds = len(spec.seeds)
    over = f"{seeds} tuning seed{'s' if seeds != 1 else ''}"
    diverged, failed = int(chosen["diverged"].sum()), int(chosen["failed"].sum())
    trials = int(chosen["trials"].sum())
    jobs = []
    for p in spec.params:
        frame = _profile(table, spec, p)
        profile = " (for each value, the best trial over the other tuned parameters)"
        caption = (
            f"{metric.label.capitalize()} against {p.key}, per configuration"
            f"{profile if len(spec.params) > 1 else ''}: mean and 95% t-interval over {over}"
            f"{' (one seed: no interval)' if seeds == 1 else ''}"
            f"{', clipped to ' + metric.range_text() if clipped else ''}; ★ the chosen value; "
            f"× a trial where a tuning seed diverged or failed (never chosen; at the panel's "
            f"edge when no seed finished): {diverged} of {trials} trials had a diverged seed, "
            f"{failed} a failed one."
            + (" Log x axis: the values span 10x or more." if p.log_scale else "")
            + panels_note(frame, facets)
        )
        data = grid_sorted(frame, results.study["values"])
        jobs.append(
            FigureJob(
                "tuning",
                caption,
                slug("tuning", p.key, "sensitivity"),
                analysis_figures.sensitivity_plot,
                (data, p.column, hue, facets, metric),
                {"log_x": p.log_scale},
                data=data,
            )
        )
    return jobs


def tuning_report(results: Results) -> tuple[dict[str, Any] | None, list[FigureJob]]:
    """The tuning section's data and figures; (None, []) for an untuned study."""
    spec = tune_spec(results)
    if spec is None or spec.select not in results.tuning:
        return None, []
    chosen = choose(results.tuning, spec)
    if chosen.empty:
        return None, []
    section = tuning_section(results, spec, chosen)
    return section, sensitivity_jobs(results, spec, chosen)
