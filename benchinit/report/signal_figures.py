"""The report's signal section: per-layer statistics of the probes (benchinit.engine.probes)
drawn over depth, the statistics of ``SIGNAL_FIGURES`` in the two ``STACKS``.

- Each stack is one question, its statistics a row each (benchinit.figures.stacked): how
  the signal's size travels (pre-activation std beside mean-field theory, activation std,
  gradient norm) and how many units stop passing it (saturated and dead fractions and
  units). Where the panels do not fit one row, or only one statistic of a stack is drawn,
  each statistic is a figure of its own (named ``signal-<statistic>``).

- Lines over layers, or dots for models with at most ``SHALLOW`` hidden layers; init panels
  once where training settings cannot change them (:mod:`benchinit.report.once`).
- A fraction (a name ending in ``_frac``) is drawn only when some value is above 0: a
  figure of zeros says less than its absence, and folders made before a statistic existed
  (``dead_unit_frac``, ``saturated_unit_frac``) simply lack its figure.
- A dead statistic that is, for every configuration, 0 or its saturated twin (ReLU: a dead
  unit's derivative is 0, so the two are one number) is not drawn; the twin's caption says
  so (``DEAD_TWINS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchinit.figures import facets as facet_figures
from benchinit.figures.stacked import Row, stackable, stacked_plot
from benchinit.metrics import Metric, metric_info
from benchinit.report.once import STAGE, collapse_init, init_note, staged
from benchinit.report.section_figures import (
    SHALLOW,
    FigureJob,
    aggregate,
    band_note,
    layout,
    panels_note,
    slug,
    stack_notes,
)
from benchinit.report.sections import layer_names
from benchinit.results.tables import Results

# (statistic, its own figure's title, its row in a stack, with the mean-field theory)
SIGNAL_FIGURES = [
    ("preact_std", "Pre-activation std per layer", "pre-activation std", True),
    ("act_std", "Activation std per layer", "activation std", False),
    (
        "grad_norm",
        "Gradient norm of each layer's weights",
        "gradient norm of each layer's weights",
        False,
    ),
    (
        "saturated_frac",
        "Per-layer saturated fraction (phi' < 10% of max)",
        "saturated fraction (phi' < 10% of max)",
        False,
    ),
    (
        "dead_frac",
        "Per-layer dead fraction (output exactly 0)",
        "dead fraction (output exactly 0)",
        False,
    ),
    (
        "dead_unit_frac",
        "Per-layer dead units (0 on every probe sample; channels for convolutions)",
        "dead units (0 on every probe sample; channels for convolutions)",
        False,
    ),
    (
        "saturated_unit_frac",
        "Per-layer saturated units (phi' < 10% of max on every probe sample; channels for "
        "convolutions)",
        "saturated units (phi' < 10% of max on every probe sample; channels for convolutions)",
        False,
    ),
]
# the statistics drawn together (benchinit.figures.stacked), each stack a question: how the
# signal's size travels through the layers, and how many units stop passing it
STACKS = {
    "size": ("Signal size per layer", ("preact_std", "act_std", "grad_norm")),
    "units": (
        "Units that stop passing signal, per layer",
        ("saturated_frac", "dead_frac", "dead_unit_frac", "saturated_unit_frac"),
    ),
}
# dead statistic -> its saturated twin, which is drawn instead where they agree
DEAD_TWINS = {"dead_frac": "saturated_frac", "dead_unit_frac": "saturated_unit_frac"}
SAME_AS_DEAD = (
    " Where units die (output exactly 0) the dead fraction is this same number (a dead unit's "
    "derivative is 0: ReLU): it is not drawn again."
)
SAME_AS_DEAD_UNITS = (
    " Where units die (0 on every probe sample) the share of dead units is this same number "
    "(a dead unit's derivative is 0: ReLU): it is not drawn again."
)


def _dead_is_saturated(
    per_layer: Callable[[str], tuple[pd.DataFrame, bool]],
    dead_name: str = "dead_frac",
    saturated_name: str = "saturated_frac",
) -> bool:
    """Every configuration's dead statistic is 0 or its saturated twin's (ReLU's are one
    and the same): the dead figure would repeat a panel of the saturated one."""
    dead, saturated = per_layer(dead_name)[0], per_layer(saturated_name)[0]
    if dead.empty or saturated.empty or len(dead) != len(saturated):
        return False
    keys = [c for c in dead.columns if c not in ("mean", "low", "high", "seeds")]
    pair = dead.merge(saturated, on=keys, how="left", suffixes=("", "_sat"))
    values = pair[["mean", "low", "high"]].to_numpy(float)
    equal = np.isclose(values, pair[["mean_sat", "low_sat", "high_sat"]].to_numpy(float))
    return bool((equal.all(axis=1) | (pair["mean"].fillna(0) == 0)).all())


def _drawn(name: str, table: pd.DataFrame, merged: dict[str, bool]) -> bool:
    """Whether statistic ``name``'s figure is drawn: not empty, not a fraction that is 0
    everywhere, not a dead statistic that repeats its saturated twin."""
    if table.empty or merged.get(name, False):
        return False
    return not name.endswith("_frac") or table["mean"].fillna(0).abs().max() > 0


@dataclass(frozen=True)
class _Statistic:
    """One statistic ready to draw: its table faceted as :func:`collapse_init` left it."""

    name: str
    title: str  # of its own figure
    row: str  # its row's words in a stack
    table: pd.DataFrame
    panels: list[str]
    collapsed: list[str]
    clipped: bool
    dashed: pd.DataFrame | None
    data: pd.DataFrame  # the CSV: the table, and the theory beside it
    note: str  # what else its caption says (a dead twin not drawn)

    @property
    def metric(self) -> Metric:
        return metric_info(self.name, "layer")


def _statistics(results: Results, layers: pd.DataFrame, facets: list[str]) -> list[_Statistic]:
    """The statistics drawn (:func:`_drawn`), each aggregated over seeds per configuration,
    phase and layer, init panels once (:func:`collapse_init`), theory beside
    the pre-activation std."""
    keys = [*results.varying, "phase", "layer"]
    order = results.study["values"]
    cache: dict[str, tuple[pd.DataFrame, bool]] = {}

    def per_layer(name: str) -> tuple[pd.DataFrame, bool]:
        if name not in cache:
            part = layers[layers["metric"] == name]
            cache[name] = aggregate(part, keys, metric_info(name, "layer"), order)
        return cache[name]

    theory, _ = per_layer("theory_std")
    merged = {dead: _dead_is_saturated(per_layer, dead, twin) for dead, twin in DEAD_TWINS.items()}
    notes = {
        "saturated_frac": SAME_AS_DEAD if merged["dead_frac"] else "",
        "saturated_unit_frac": SAME_AS_DEAD_UNITS if merged["dead_unit_frac"] else "",
    }
    shown = []
    for name, title, row, with_theory in SIGNAL_FIGURES:
        table, clipped = per_layer(name)
        if not _drawn(name, table, merged):
            continue
        table, panels, collapsed = collapse_init(table, facets, keys)
        dashed, data = None, table
        if with_theory and not theory.empty:
            dashed = staged(theory, collapsed, [a for a in panels if a != STAGE])
            data = table.merge(
                dashed[[*keys, "mean"]].rename(columns={"mean": "theory"}), on=keys, how="left"
            )
        note = notes.get(name, "")
        stat = _Statistic(name, title, row, table, panels, collapsed, clipped, dashed, data, note)
        shown.append(stat)
    return shown


def _theory(stat: _Statistic, shallow: bool) -> str:
    if stat.dashed is None:
        return ""
    return f" ({'dashes' if shallow else 'dashed'}: mean-field theory, Poole et al. 2016)"


def _own_job(stat: _Statistic, hue: str | None, shallow: bool, names: Any) -> FigureJob:
    """A statistic in a figure of its own (its panels do not fit a stack's row)."""
    what = "dots and bars" if shallow else "bands"
    along = facet_figures.along_x(stat.table, stat.panels, stat.dashed) if shallow else None
    title = stat.title + _theory(stat, shallow)
    caption = (
        f"{title}; {band_note(stat.table, stat.metric, stat.clipped, what)}."
        + stat.note
        + panels_note(stat.table, stat.panels, along)
        + init_note(stat.collapsed, along == STAGE)
    )
    kwargs: dict[str, Any] = {"size": facet_figures.SMALL, "names": names}
    if stat.dashed is not None:
        kwargs["dashed"] = stat.dashed
    return FigureJob(
        "signal",
        caption,
        slug("signal", stat.name),
        facet_figures.dot_plot if shallow else facet_figures.band_plot,
        (stat.table, "layer", hue, stat.panels, stat.metric),
        kwargs,
        data=stat.data,
    )


def _stack_job(
    key: str,
    heading: str,
    stats: list[_Statistic],
    rows: list[Row],
    hue: str | None,
    shallow: bool,
    names: Any,
) -> FigureJob:
    """The statistics of one ``STACKS`` entry (``rows`` their tables) in one figure, a row
    each."""
    what = "dots and bars" if shallow else "bands"
    first = stats[0]
    along = facet_figures.along_x(first.table, first.panels, first.dashed) if shallow else None
    words = "; ".join(s.row + _theory(s, shallow) for s in stats)
    notes = stack_notes([(s.row.split(" (")[0], s.table, s.metric, s.clipped) for s in stats], what)
    caption = (
        f"{heading}, a row per statistic: {words}; {notes}."
        + "".join(s.note for s in stats)
        + panels_note(first.table, first.panels, along, "column")
        + init_note(first.collapsed, along == STAGE)
    )
    data = pd.concat([s.data.assign(statistic=s.name) for s in stats], ignore_index=True)
    data = data[["statistic", *[c for c in data.columns if c != "statistic"]]]
    return FigureJob(
        "signal",
        caption,
        slug("signal", key),
        stacked_plot,
        (rows, "layer", hue, first.panels),
        {"dots": shallow, "size": facet_figures.SMALL, "names": names},
        data=data,
    )


def signal_jobs(results: Results) -> list[FigureJob]:
    """Per-layer statistics: lines over depth, or dots for shallow models; init panels once
    where they do not vary (:mod:`benchinit.report.once`), a dead statistic only where it
    is not its saturated twin; the statistics of each ``STACKS`` entry in one figure, a
    row each, where their panels fit a row (benchinit.figures.stacked), else a figure each."""
    layers = results.labelled("layers")
    layers = layers[layers["status"] != "failed"]
    if layers.empty:
        return []
    train = results.study["kind"] == "train"
    hue, facets = layout(results, ["phase"] if train else [])
    shallow = layers["layer"].nunique() <= SHALLOW
    names = layer_names(results)
    stats = _statistics(results, layers, facets)
    jobs = []
    for key, (heading, members) in STACKS.items():
        group = [s for s in stats if s.name in members]
        rows = [Row(s.table, s.metric, s.dashed) for s in group]
        same = all(s.panels == group[0].panels for s in group)
        if group and same and stackable(rows, group[0].panels, shallow):
            jobs.append(_stack_job(key, heading, group, rows, hue, shallow, names))
        else:
            jobs.extend(_own_job(s, hue, shallow, names) for s in group)
    stacked = {name for _, members in STACKS.values() for name in members}
    jobs.extend(_own_job(s, hue, shallow, names) for s in stats if s.name not in stacked)
    return jobs
