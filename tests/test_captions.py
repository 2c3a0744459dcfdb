"""Captions say what their figures show (issue 23: every sentence checked against the
numbers): the spectrum density of a train study, the spread floor, log bands that reach 0,
dot plots' init groups, the metric label of one row of panels."""

from __future__ import annotations

import pandas as pd

from benchinit import load_study, run
from benchinit.figures import facets
from benchinit.figures.drawing import style
from benchinit.metrics import metric_info
from benchinit.report.once import init_note
from benchinit.report.page import figure_jobs
from benchinit.report.section_figures import band_note
from benchinit.report.sections import ranked
from benchinit.report.spectrum import SPREAD_FLOOR, _floor


def test_a_train_studys_spectrum_density_is_at_init_and_pools_what_changes_nothing(tmp_path):
    """A train study records the Jacobian spectrum at init, where the loss changes
    nothing: no 'colours = phase' with one phase, no row per loss, and the caption says so."""
    study = load_study(
        "losses",
        ["train.epochs=1", "study.seeds=2", 'grid.loss=["cross_entropy", "mse"]'],
    )
    outcome = run(study, tmp_path / "losses", report=False, progress=False)
    jobs = figure_jobs(outcome.results, ranked(outcome.results))
    (density,) = [j for j in jobs if j.draw.__name__ == "density_grid"]
    _, rows, cols, hue, *_ = density.args
    assert (rows, cols, hue) == (None, None, None)
    assert "at initialization" in density.caption
    assert "over loss (the same spectrum for each value)" in density.caption
    assert "colours" not in density.caption
    (intervals,) = [j for j in jobs if j.name.endswith("intervals")]
    assert "best are drawn" not in intervals.caption, "2 configurations: none left out"


def test_the_spread_floor_is_for_rounding_not_for_a_clipped_interval():
    table = pd.DataFrame(
        {
            "mean": [1e-12, 143.0, 2.0],
            "low": [1e-13, 0.0, 1e-10],
            "high": [2e-12, 435.0, 4.0],
            "seeds": [3, 3, 3],
        }
    )
    floored = _floor(table)
    assert floored["mean"].tolist() == [SPREAD_FLOOR, 143.0, 2.0]
    assert floored["low"].tolist() == [SPREAD_FLOOR, 0.0, SPREAD_FLOOR], "an interval's 0 is kept"
    assert floored["high"].tolist() == [SPREAD_FLOOR, 435.0, 4.0]


def test_a_log_band_that_reaches_zero_is_said():
    metric = metric_info("grad_norm", "layer")
    assert metric.scale == "log"
    reaches = pd.DataFrame({"mean": [0.5, 2.0], "low": [0.0, 1.0], "high": [1.0, 3.0]})
    reaches["seeds"] = 3
    assert "reaches 0" in band_note(reaches, metric, clipped=True)
    apart = reaches.assign(low=[0.1, 1.0])
    assert "reaches 0" not in band_note(apart, metric, clipped=False)


def test_init_notes_say_group_or_panel():
    assert "its group is drawn once in each panel" in init_note(["optimizer"], grouped=True)
    assert "its panel is drawn once" in init_note(["optimizer"])
    assert init_note([]) == ""


def test_one_row_of_panels_has_its_metric_label_beside_it():
    rows = [
        {"phase": p, "loss": loss, "layer": 1, "mean": 1.0, "low": 0.9, "high": 1.1}
        for p in ("init", "final")
        for loss in ("cross_entropy", "mse")
    ]
    metric = metric_info("act_std", "layer")
    with style():
        fig = facets.dot_plot(pd.DataFrame(rows), "layer", "loss", ["phase"], metric)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and fig.get_supylabel() == ""
    assert axes[0].get_ylabel().replace("\n", " ") == metric.label
    assert not axes[1].get_ylabel()
