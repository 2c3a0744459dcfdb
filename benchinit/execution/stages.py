"""The two stages of a tuned study: tuning cells -> chosen values -> final cells.

1. :func:`tune_cells`: per grid configuration x trial x tuning seed, an ordinary cell whose
   config has the trial's values set and ``"stage": "tune"``; its labels are the grid's
   (the label is not recomputed: ``optimizer`` stays ``sgd``), ``stage`` and one
   ``tuned.<axis>.<param>`` column per tuned parameter.
2. :func:`choose`: per configuration, the trial with the best **mean over tuning seeds**
   of the select metric (a validation metric). It reads only the columns it needs, so no
   test metric can influence it.
3. :func:`final_cells`: the configuration at its chosen values over the study's seeds,
   ``"stage": "final"``.

What counts (DeepOBS and AlgoPerf treat a diverged run as a failed run):

- A trial **counts** only when every tuning seed finished ``ok`` with a finite metric. A
  trial with a diverged, failed or missing seed ranks below every trial that counts: it is
  never chosen (a learning rate that diverges on one seed in two is not safe to report).
  ``diverged`` and ``failed`` count such trials per configuration.
- A configuration none of whose trials counts has **no chosen value**: its final cells
  are not run; :func:`final_cells` returns them apart, and the runner records each as
  ``failed`` with :data:`NOT_TUNED` as its error, so the leaderboard counts them failed and
  the failures section says why (its tuning cells hold the individual errors).
- Ties go to the smaller values (in ``[tune]`` order), so the choice never depends on the
  order of rows. Means are taken over rows sorted by seed (the same float sums every time).
- ``edge``: a chosen value is the lowest or highest value tried for it (with two or more
  tried): the optimum may lie beyond the range. ``edge_note`` says which.
- ``tunability``: the share of tried trials whose mean lies within a tolerance of the best
  one: 1 point of accuracy (:data:`ACCURACY_POINTS`, absolute) for metrics where higher is
  better, 5% of the best value (:data:`LOSS_RELATIVE`) for losses and errors. A trial that
  does not count is not within. Near 1: a wide flat optimum, easy to tune; ``1/trials``: a
  needle that the tried values happened to hit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchinit.metrics import Direction
from benchinit.results.schema import FINAL, STAGE, TUNE, TUNED_PREFIX
from benchinit.results.tables import mean_ci_by
from benchinit.study.cells import Cell, canonical_json
from benchinit.study.trials import trials
from benchinit.study.tuning import TuneSpec, Value

ACCURACY_POINTS = 0.01  # within this much (absolute) of the best accuracy counts as near it
LOSS_RELATIVE = 0.05  # within this share of the best loss or error counts as near it
NOT_TUNED = (
    "not run: every tuning trial of this configuration diverged or failed on some seed, so "
    "no value was chosen (its tuning cells hold the errors)"
)


# --- cells ----------------------------------------------------------------------------


def apply(config: Mapping[str, Any], values: Mapping[str, Value]) -> dict[str, Any]:
    """A copy of a cell config with ``config[axis]["params"][param] = value`` for each
    ``"<axis>.<param>": value``. Labels are not recomputed: the grid's label stays."""
    out = dict(config)
    for key, value in values.items():
        axis, _, param = key.partition(".")
        plugin = dict(out[axis])
        plugin["params"] = {**plugin["params"], param: value}
        out[axis] = plugin
    return out


def labels(grid_labels: Mapping[str, Any], stage: str, values: Mapping[str, Any]) -> dict:
    """A tuned cell's labels: the grid's, then ``stage``, then ``tuned.<key>`` per value."""
    return {**grid_labels, STAGE: stage, **{TUNED_PREFIX + k: v for k, v in values.items()}}


def configurations(cells: Sequence[Cell]) -> list[Cell]:
    """One cell per grid configuration (its first seed's), in grid order."""
    seen: dict[str, Cell] = {}
    for cell in cells:
        seen.setdefault(canonical_json({k: v for k, v in cell.config.items() if k != "seed"}), cell)
    return list(seen.values())


def tune_cells(grid_cells: Sequence[Cell], spec: TuneSpec) -> list[Cell]:
    """Per grid configuration x trial x tuning seed, one cell with ``"stage": "tune"``."""
    out = []
    for base in configurations(grid_cells):
        for values in trials(spec):
            config = apply(base.config, values)
            for seed in spec.seeds:
                cell_config = {**config, "seed": seed, STAGE: TUNE}
                out.append(Cell.of(cell_config, labels(base.labels, TUNE, values)))
    return out


def final_cells(
    grid_cells: Sequence[Cell], chosen: pd.DataFrame, spec: TuneSpec
) -> tuple[list[Cell], list[Cell]]:
    """(cells to run, cells not to run): each grid cell at its configuration's chosen
    values with ``"stage": "final"``. A configuration without a chosen value gives cells
    with the grid's config (plus ``stage``) and NaN ``tuned.*`` labels, to be recorded as
    ``failed`` with :data:`NOT_TUNED` without running."""
    rows = {
        tuple(row[a] for a in spec.axes): row for row in chosen.to_dict("records")
    }  # configuration labels -> its chosen row
    run, skip = [], []
    for cell in grid_cells:
        key = tuple(cell.labels[a] for a in spec.axes)
        if key not in rows:
            raise ValueError(
                f"no tuning result for configuration {dict(zip(spec.axes, key, strict=True))}"
            )
        row = rows[key]
        if not row["chosen"]:
            nan = {p.key: math.nan for p in spec.params}
            config = {**cell.config, STAGE: FINAL}
            skip.append(Cell.of(config, labels(cell.labels, FINAL, nan)))
            continue
        values = {p.key: _python(row[p.column], p.integer) for p in spec.params}
        config = {**apply(cell.config, values), STAGE: FINAL}
        run.append(Cell.of(config, labels(cell.labels, FINAL, values)))
    return run, skip


def transferred(chosen: pd.DataFrame, spec: TuneSpec, source: Any) -> pd.DataFrame:
    """``[tune] transfer`` (benchinit.study.transfer): each configuration's row with the
    choice of its source configuration (the same one with ``spec.transfer``'s axis at the
    label ``source``): its ``tuned.*`` values, ``chosen`` and ``score``; what tuning chose at
    the configuration itself is kept as ``direct.<axis>.<param>`` and ``direct_score``. A
    configuration whose source has no chosen value has none either."""
    assert spec.transfer is not None
    axis = spec.transfer[0]
    taken = [*spec.columns, "chosen", "score"]
    others = [a for a in spec.axes if a != axis]
    sources = chosen[chosen[axis] == source][[*others, *taken]]
    out = chosen.rename(columns={p.column: f"direct.{p.key}" for p in spec.params})
    out = out.rename(columns={"score": "direct_score"}).drop(columns="chosen")
    out = out.merge(sources, on=others, how="left") if others else out.merge(sources, how="cross")
    out["chosen"] = out["chosen"].astype("boolean").fillna(False).astype(bool)
    return out


def _python(value: Any, integer: bool) -> Value:
    """A chosen value as the plain int or float a config holds (not numpy's)."""
    return round(float(value)) if integer else float(value)


# --- choosing -------------------------------------------------------------------------


def _tune_rows(frame: pd.DataFrame, spec: TuneSpec) -> pd.DataFrame:
    """The tuning rows, with only the columns selection may read, sorted by seed."""
    if STAGE in frame:
        frame = frame[frame[STAGE] == TUNE]
    if spec.select not in frame:  # no trial recorded it: every one diverged or failed
        frame = frame.assign(**{spec.select: math.nan})
    columns = [*spec.axes, *spec.columns, "seed", "status", spec.select]
    rows = frame.loc[frame["seed"].isin(spec.seeds), columns]
    return rows.sort_values("seed", kind="stable")


def _trial_table(frame: pd.DataFrame, spec: TuneSpec) -> pd.DataFrame:
    """One row per configuration and trial: ``mean`` of the select metric over the seeds
    that finished; ``complete`` (every seed finished: the trial counts); ``diverged`` (a seed
    diverged) or else ``failed`` (a seed failed, is missing or has no finite metric)."""
    rows = _tune_rows(frame, spec)
    ok = (rows["status"] == "ok") & np.isfinite(rows[spec.select].astype(float))
    rows = rows.assign(
        _value=rows[spec.select].where(ok),
        _ok=ok,
        _diverged=rows["status"] == "diverged",
    )
    keys = [*spec.axes, *spec.columns]
    grouped = rows.groupby(keys, sort=False, dropna=False)
    table = grouped.agg(
        mean=("_value", "mean"),
        ok=("_ok", "sum"),
        diverged=("_diverged", "any"),
        seeds=("seed", "nunique"),
    ).reset_index()
    table["complete"] = table["ok"] == len(spec.seeds)
    table["failed"] = ~table["complete"] & ~table["diverged"]
    return table


def _near_best(means: pd.Series, best: float, direction: Direction) -> pd.Series:
    if direction == "max":
        return means >= best - ACCURACY_POINTS
    return means <= best + LOSS_RELATIVE * abs(best)


def _edges(trial_rows: pd.DataFrame, best: Mapping[str, Any], spec: TuneSpec) -> str:
    notes = []
    for p in spec.params:
        tried = trial_rows[p.column]
        if tried.nunique() < 2:
            continue
        value = best[p.column]
        side = "lowest" if value == tried.min() else "highest" if value == tried.max() else ""
        if side:
            notes.append(f"{p.key} at the {side} value tried ({value:g})")
    return "; ".join(notes)


def choose(frame: pd.DataFrame, spec: TuneSpec, direction: Direction | None = None) -> pd.DataFrame:
    """Per configuration (the grid columns ``spec.axes``), the chosen trial.

    ``frame``: the tuning cells' runs rows (grid columns, ``tuned.*`` columns, ``seed``,
    ``status`` and the select metric; other columns are ignored, rows of ``stage`` final
    too). ``direction`` defaults to the select metric's. Columns: the grid columns; the
    chosen ``tuned.*`` values (NaN when none); ``chosen`` (a value was chosen); ``score``
    (its mean select metric); ``trials`` (tried), ``counted``, ``diverged``, ``failed``
    (trials); ``edge`` and ``edge_note``; ``tunability`` (see the module docstring).
    """
    direction = direction or spec.direction
    table = _trial_table(frame, spec)
    out = []
    for _, group in table.groupby(list(spec.axes), sort=False, dropna=False):
        counted = group[group["complete"]]
        row: dict[str, Any] = {a: group[a].iloc[0] for a in spec.axes}
        row.update({c: math.nan for c in spec.columns})
        row.update(chosen=False, score=math.nan, edge=False, edge_note="", tunability=0.0)
        if len(counted):
            ascending = [direction == "min"] + [True] * len(spec.columns)
            ranked = counted.sort_values(["mean", *spec.columns], ascending=ascending)
            best = ranked.iloc[0]
            note = _edges(group, best, spec)
            near = _near_best(counted["mean"], float(best["mean"]), direction)
            row.update({c: best[c] for c in spec.columns})
            row.update(chosen=True, score=float(best["mean"]), edge=bool(note), edge_note=note)
            row["tunability"] = float(near.sum()) / len(group)
        row.update(
            trials=len(group),
            counted=int(group["complete"].sum()),
            diverged=int(group["diverged"].sum()),
            failed=int(group["failed"].sum()),
        )
        out.append(row)
    return pd.DataFrame(out)


def sensitivity(frame: pd.DataFrame, spec: TuneSpec, level: float = 0.95) -> pd.DataFrame:
    """Per configuration and trial: ``mean``, ``low``-``high`` (a Student-t interval at
    ``level``) and ``count`` over the tuning seeds that finished, of the select metric;
    ``complete`` says whether every seed finished (else the trial was never a candidate).
    Rows in the order of the runs; the sensitivity figure draws ``mean`` against each
    ``tuned.*`` column, one line and band per configuration."""
    rows = _tune_rows(frame, spec)
    ok = (rows["status"] == "ok") & np.isfinite(rows[spec.select].astype(float))
    keys = [*spec.axes, *spec.columns]
    table = mean_ci_by(rows.assign(value=rows[spec.select].where(ok)), keys, level)
    table["complete"] = table["count"] == len(spec.seeds)
    return table.drop(columns="std")
