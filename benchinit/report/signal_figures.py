"""The report's signal section: per-layer statistics of the probes (benchinit.engine.probes)
drawn over depth, one figure per statistic of ``SIGNAL_FIGURES``.

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
from typing import Any

import numpy as np
import pandas as pd

from benchinit.figures import facets as facet_figures
from benchinit.metrics import metric_info
from benchinit.report.once import STAGE, collapse_init, init_note, staged
from benchinit.report.section_figures import (
    SHALLOW,
    FigureJob,
    aggregate,
    band_note,
    layout,
    panels_note,
    slug,
)
from benchinit.report.sections import layer_names
from benchinit.results.tables import Results

SIGNAL_FIGURES = [
    ("preact_std", "Pre-activation std per layer", True),
    ("act_std", "Activation std per layer", False),
    ("grad_norm", "Gradient norm of each layer's weights", False),
    ("saturated_frac", "Per-layer saturated fraction (phi' < 10% of max)", False),
    ("dead_frac", "Per-layer dead fraction (output exactly 0)", False),
    (
        "dead_unit_frac",
        "Per-layer dead units (0 on every probe sample; channels for convolutions)",
        False,
    ),
    (
        "saturated_unit_frac",
        "Per-layer saturated units (phi' < 10% of max on every probe sample; channels for "
        "convolutions)",
        False,
    ),
]
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


def signal_jobs(results: Results) -> list[FigureJob]:
    """Per-layer statistics: lines over depth, or dots for shallow models; init panels once
    where they do not vary (:mod:`benchinit.report.once`), a dead statistic only where it
    is not its saturated twin."""
    layers = results.labelled("layers")
    layers = layers[layers["status"] != "failed"]
    if layers.empty:
        return []
    train = results.study["kind"] == "train"
    hue, facets = layout(results, ["phase"] if train else [])
    keys = [*results.varying, "phase", "layer"]
    shallow = layers["layer"].nunique() <= SHALLOW
    draw = facet_figures.dot_plot if shallow else facet_figures.band_plot
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
    jobs = []
    for name, title, with_theory in SIGNAL_FIGURES:
        metric = metric_info(name, "layer")
        table, clipped = per_layer(name)
        if not _drawn(name, table, merged):
            continue
        table, panels, collapsed = collapse_init(table, facets, keys)
        kwargs: dict[str, Any] = {"size": facet_figures.SMALL, "names": layer_names(results)}
        data = table
        if with_theory and not theory.empty:
            dashed = staged(theory, collapsed, [a for a in panels if a != STAGE])
            kwargs["dashed"] = dashed
            title += f" ({'dashes' if shallow else 'dashed'}: mean-field theory, Poole et al. 2016)"
            data = table.merge(
                dashed[[*keys, "mean"]].rename(columns={"mean": "theory"}), on=keys, how="left"
            )
        what = "dots and bars" if shallow else "bands"
        along = facet_figures.along_x(table, panels, kwargs.get("dashed")) if shallow else None
        caption = (
            f"{title}; {band_note(table, metric, clipped, what)}."
            + notes.get(name, "")
            + panels_note(table, panels, along)
            + init_note(collapsed, along == STAGE)
        )
        jobs.append(
            FigureJob(
                "signal",
                caption,
                slug("signal", name),
                draw,
                (table, "layer", hue, panels, metric),
                kwargs,
                data=data,
            )
        )
    return jobs
