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
    """Every mark's points on an axes: lines (dots, caps, dashes) and collections (bands,
    interval bars)."""
    lines = [np.asarray(line.get_xydata(), float) for line in ax.lines]
    paths = [path.vertices for c in ax.collections for path in c.get_paths()]
    return lines + [np.asarray(v, float) for v in paths]


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


def test_a_stack_keeps_nan_panels_and_every_rows_stages():
    """A facet value that is NaN is a panel like any other (panels_of keeps it), and a
    stage only one statistic has (the other non-finite there) is still drawn."""
    frame = _table(["a", "b"], 2, 1.0, ["init", "adam · final", "sgd · final"])
    frame["activation"] = frame["activation"].map({"a": np.nan, "b": "b"})
    fewer = frame[frame["stage"] != "sgd · final"]
    rows = [Row(fewer, GRAD), Row(frame, SATURATED)]
    names = ["activation", "stage"]
    assert stackable(rows, names, dots=True)
    with style():
        fig = stacked_plot(rows, "layer", "initializer", names, dots=True)
        fig.draw_without_rendering()
    grid = np.array([ax for ax in fig.axes if ax.get_visible()]).reshape(2, 2)
    for ax, part in zip(
        grid[1], (frame[frame["activation"].isna()], frame[frame["activation"] == "b"]), strict=True
    ):
        drawn = sum(len(line.get_xydata()) for line in ax.lines if line.get_marker() == "o")
        assert drawn == len(part) == 12, "every stage, both initializers, both layers"
    groups = [t.get_text() for t in grid[1][0].get_xticklabels()]
    assert groups == ["init", "adam · final", "sgd · final"], "the second row's stages too"
    dots = sum(len(line.get_xydata()) for line in grid[0][0].lines if line.get_marker() == "o")
    assert dots == 8, "the first row has two stages"


def test_a_stacks_note_says_each_clause_for_the_rows_it_holds_for():
    from benchinit.report.section_figures import stack_notes

    spread = metric_info("jac_sv2_var", "layer")
    table = _table(["a"], 2, 10.0, ["final"]).drop(columns="stage")
    zero = table.assign(low=0.0)  # an interval down to 0 on a log axis
    fewer = table.assign(seeds=2)
    note = stack_notes(
        [("mean", zero, GRAD, True), ("spread", table, GRAD, False), ("var", fewer, spread, False)],
        "bands",
    )
    assert note.startswith("bands: mean and 95% t-interval over 2 to 3 seeds (")
    assert "clipped to the metric's range [0, ∞): mean" in note
    assert "runs to the bottom edge of the log axis: mean" in note
    assert note.count("bands:") == 1 and "spread" not in note and "var" not in note
    both = stack_notes([("a", table, SATURATED, True), ("b", table, SATURATED, True)], "bands")
    assert (
        both == "bands: mean and 95% t-interval over 3 seeds, clipped to the metric's range [0, 1]"
    )


def test_crowded_labels_of_a_stack_are_slanted_under_every_column():
    """The stack's axes share x: labels thinned and slanted under one column are thinned
    and slanted under all (benchinit.figures.layout.fit_ticks)."""
    from benchinit.figures.drawing import fitted_png
    from benchinit.figures.layout import fit_ticks

    table = _table(["a", "b", "c"], 30, 1.0, ["final"]).drop(columns="stage")
    names = {layer: f"block{layer}.conv" for layer in range(1, 31)}
    rows = [Row(table, GRAD), Row(table, SATURATED)]
    with style():
        fig = stacked_plot(rows, "layer", "initializer", ["activation"], dots=False, names=names)
        fitted_png(fig)
        fig.draw_without_rendering()
    bottom = [ax for ax in fig.axes if ax.get_visible()][3:]
    rotations = [{t.get_rotation() for t in ax.get_xticklabels() if t.get_text()} for ax in bottom]
    texts = [[t.get_text() for t in ax.get_xticklabels()] for ax in bottom]
    assert rotations == [{35.0}] * 3 and texts[0] == texts[1] == texts[2]
    assert sum(bool(t) for t in texts[0]) < 30, "thinned"
    assert not fit_ticks(fig, drawn=True), "fitted: nothing left to change"


@pytest.mark.parametrize(
    "axes",
    [{"initializer": ["a"]}, {"initializer": ["a", "b"], "model.width": [8, 16]}],
    ids=["one-configuration", "dotted-axis"],
)
def test_a_stack_of_one_panel_or_a_dotted_axis_draws(tmp_path, axes):
    """Nothing varying (one panel, no hue) and a grid axis with a dot in its name: the
    signal's size is still one stack, and it draws."""
    from benchinit.figures.drawing import render_image

    results = load_results(write_results(tmp_path / "f", axes, kind="signal", layers=2))
    jobs = [j for j in figure_jobs(results, ranked(results)) if j.section == "signal"]
    size = statistics(jobs)["preact_std"]
    assert size.draw is stacked_plot
    image = render_image(size.draw, *size.args, **size.kwargs)
    assert image.width > 0 and image.height > 0
    panels = size.args[3]
    assert panels == ([] if len(axes) == 1 else ["model.width"])
