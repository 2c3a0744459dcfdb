"""Per-layer statistics stacked in one figure, a row each (benchinit.figures.stacked): the
marks of each row are the marks of the statistic's own figure, the shared parts (panel
titles, x axis, legend) are drawn once, and a report stacks only where the panels fit."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from reportdata import drawn_as, statistics, write_results

from benchinit import load_results
from benchinit.figures import facets
from benchinit.figures.drawing import style
from benchinit.figures.stacked import Row, stackable, stacked_plot
from benchinit.metrics import metric_info
from benchinit.report.page import figure_jobs
from benchinit.report.sections import ranked

GRAD, SATURATED = metric_info("grad_norm", "layer"), metric_info("saturated_frac", "layer")


def _table(activations: list[str], layers: int, scale: float, stages: list[str]) -> pd.DataFrame:
    rows = []
    for k, (act, init, stage, layer) in enumerate(
        itertools.product(activations, ["he", "zeros"], stages, range(1, layers + 1))
    ):
        mean = scale * (1 + k % 5) / 6
        rows.append((act, init, stage, layer, mean, mean * 0.8, mean * 1.2, 3))
    columns = ["activation", "initializer", "stage", "layer", "mean", "low", "high", "seeds"]
    return pd.DataFrame(rows, columns=columns)


def _marks(ax) -> list[np.ndarray]:
    """Every line's points on an axes (dots, interval bars, bands' edges, dashes)."""
    return [np.asarray(line.get_xydata(), float) for line in ax.lines]


@pytest.mark.parametrize(
    ("dots", "layers", "stages"), [(True, 2, ["init", "adam · final"]), (False, 5, ["final"])]
)
def test_each_row_draws_what_its_own_figure_draws(dots, layers, stages):
    activations = ["relu", "tanh", "sigmoid"]
    grad = _table(activations, layers, 1000.0, stages)  # spans decades: a log axis
    saturated = _table(activations, layers, 1.0, stages)
    theory = grad.assign(mean=grad["mean"] * 1.1)
    names = ["activation", "stage"] if len(stages) > 1 else ["activation"]
    grad = grad if len(stages) > 1 else grad.drop(columns="stage")
    saturated = saturated if len(stages) > 1 else saturated.drop(columns="stage")
    theory = theory if len(stages) > 1 else theory.drop(columns="stage")
    rows = [Row(grad, GRAD, theory), Row(saturated, SATURATED)]
    assert stackable(rows, names, dots)
    own = facets.dot_plot if dots else facets.band_plot
    with style():
        fig = stacked_plot(rows, "layer", "initializer", names, dots=dots)
        alone = [
            own(grad, "layer", "initializer", names, GRAD, dashed=theory, size=facets.SMALL),
            own(saturated, "layer", "initializer", names, SATURATED, size=facets.SMALL),
        ]
        fig.draw_without_rendering()
    grid = np.array([ax for ax in fig.axes if ax.get_visible()]).reshape(2, 3)
    for row, single, metric in zip(grid, alone, (GRAD, SATURATED), strict=True):
        panels = [ax for ax in single.axes if ax.get_visible()]
        assert len(panels) == 3
        for stacked_ax, own_ax in zip(row, panels, strict=True):
            mine, theirs = _marks(stacked_ax), _marks(own_ax)
            assert len(mine) == len(theirs) > 0
            for a, b in zip(mine, theirs, strict=True):
                np.testing.assert_allclose(a, b)
            assert stacked_ax.get_yscale() == own_ax.get_yscale()
        assert " ".join(row[0].get_ylabel().split()) == metric.label, "each row says its metric"
        assert all(ax.get_ylabel() == "" for ax in row[1:])
    assert grid[0][0].get_yscale() == "log" and grid[1][0].get_yscale() == "linear"
    assert [ax.get_title() for ax in grid[0]] == activations, "titles over the top row only"
    assert all(ax.get_title() == "" for ax in grid[1])
    for ax in grid[0]:
        shown = [t for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text()]
        assert shown == [], "the x axis is drawn under the bottom row only"
    for ax in grid[1]:
        assert [t.get_text() for t in ax.get_xticklabels(which="both") if t.get_text()]
        assert ax.get_xlabel().startswith("layer")
    assert len(fig.legends) == 1
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["he", "zeros", "mean-field theory"]


def test_rows_stack_only_where_their_panels_fit_one_row():
    three = _table(["a", "b", "c"], 2, 1.0, ["final"]).drop(columns="stage")
    five = _table(list("abcde"), 2, 1.0, ["final"]).drop(columns="stage")
    four = _table(list("abcd"), 2, 1.0, ["init", "adam · final"])
    row = Row(three, SATURATED)
    assert stackable([row, Row(three, GRAD)], ["activation"], dots=False)
    assert not stackable([row], ["activation"], dots=False), "one statistic: its own figure"
    assert not stackable([Row(five, GRAD), Row(five, SATURATED)], ["activation"], dots=False)
    grouped = [Row(four, GRAD), Row(four, SATURATED)]
    assert not stackable(grouped, ["activation", "stage"], dots=True), "3 across with groups"
    other = three.assign(activation=three["activation"].replace("c", "z"))
    assert not stackable([row, Row(other, GRAD)], ["activation"], dots=False), "other panels"


@pytest.mark.parametrize(("activations", "stacked"), [(3, True), (5, False)])
def test_the_report_stacks_what_fits_and_draws_the_rest_alone(tmp_path, activations, stacked):
    """Three activations: the signal's size is one stack (a lone fraction, the only one
    above 0, keeps a figure of its own); five panels of lines do not fit a row: a figure each,
    the same statistics drawn."""
    axes = {"initializer": ["a", "b"], "activation": [f"act{i}" for i in range(activations)]}
    folder = write_results(tmp_path / "f", axes, kind="signal", layers=4)
    results = load_results(folder)
    jobs = [j for j in figure_jobs(results, ranked(results)) if j.section == "signal"]
    drawn = statistics(jobs)
    assert {"preact_std", "act_std", "grad_norm"} <= set(drawn)
    assert {drawn_as(job) for job in jobs} == {"lines"}
    if stacked:
        assert jobs[0].name == "signal-size"
        size = drawn["preact_std"]
        assert size is drawn["grad_norm"] and size.draw is stacked_plot
        assert list(size.data["statistic"].unique()) == ["preact_std", "act_std", "grad_norm"]
        assert "a row per statistic" in size.caption and "One column per activation" in size.caption
    else:
        assert all(job.draw is facets.band_plot for job in jobs)
        assert len({id(job) for job in drawn.values()}) == len(drawn), "a figure each"
