"""Per-layer figures: small panels titled like a table, labelled once, narrow enough to pair."""

from __future__ import annotations

import itertools

import pandas as pd

from benchinit.figures import facets, histograms
from benchinit.figures.drawing import style
from benchinit.metrics import metric_info


def _frame(stages: list[str]) -> pd.DataFrame:
    rows = [
        {"activation": a, "stage": s, "initializer": i, "layer": layer, "mean": 1.0}
        for a, s, i, layer in itertools.product(["relu", "tanh"], stages, ["he", "xavier"], [1, 2])
    ]
    frame = pd.DataFrame(rows)
    return frame.assign(low=frame["mean"] - 0.1, high=frame["mean"] + 0.1)


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_a_full_grid_is_titled_like_a_table():
    frame = _frame(["init", "adam · final", "sgd · final"])
    metric = metric_info("act_std", "layer")
    with style():
        fig = facets.band_plot(
            frame, "layer", "initializer", ["activation", "stage"], metric, size=facets.SMALL
        )
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes[:3]] == ["init", "adam · final", "sgd · final"]
    assert not any(ax.get_title() for ax in axes[3:]), "columns are named once, on top"
    assert _texts(axes[2]) == ["relu"] and _texts(axes[5]) == ["tanh"], "rows on the right"
    assert fig.get_suptitle() == "rows: activation, columns: stage"
    assert fig.get_supylabel() == metric.label and not any(ax.get_ylabel() for ax in axes)
    assert [bool(ax.get_xlabel()) for ax in axes] == [False] * 3 + [True] * 3
    assert fig.get_figwidth() * 96 < 600, "two such figures fit side by side on the page"


def test_panels_that_are_no_full_grid_keep_their_own_titles():
    frame = _frame(["init", "adam · final", "sgd · final"])
    frame = frame[~((frame["activation"] == "tanh") & (frame["stage"] == "init"))]
    with style():
        fig = facets.band_plot(
            frame, "layer", "initializer", ["activation", "stage"], metric_info("act_std", "layer")
        )
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_visible()]
    assert titles[0] == "relu · init" and titles[-1] == "tanh · sgd · final"
    assert fig.get_suptitle() == "panels: activation · stage"
    assert not any(_texts(ax) for ax in fig.axes)


def test_declared_layer_names_label_the_layer_axis_and_the_histogram_columns():
    from types import SimpleNamespace

    from benchinit.report.sections import layer_names

    frame = _frame(["init", "final"])
    names = {1: "stem", 2: "block1.conv1"}
    with style():
        fig = facets.band_plot(
            frame,
            "layer",
            "initializer",
            ["activation", "stage"],
            metric_info("act_std", "layer"),
            names=names,
        )
    # one x axis for the grid: its labels under the bottom row (hidden above)
    labelled = [ax for ax in fig.axes if ax.get_visible() and ax.get_xticklabels()]
    assert labelled and len(labelled) < len(fig.axes)
    for ax in labelled:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["stem", "block1.conv1"]
    hist = pd.DataFrame(
        {"layer": [1, 2], "bin": [0, 0], "left": [0.0, 0.0], "right": [1.0, 1.0], "count": [1, 1]}
    )
    fig = histograms.histogram_grid(hist, None, "relu", names=names)
    assert [ax.get_title() for ax in fig.axes] == ["stem", "block1.conv1"]

    def runs(*declared):
        return SimpleNamespace(runs=pd.DataFrame({"layer_names": list(declared)}))

    assert layer_names(runs("stem,block1.conv1", "stem,block1.conv1")) == names
    assert layer_names(runs("", "")) is None, "the MLP: numbers"
    assert layer_names(runs("stem,b", "conv1,conv2")) is None, "two models: numbers"


def test_a_shallow_dot_plot_draws_its_stages_as_groups_along_x():
    """Dots for a shallow model: one panel per activation, init and each optimizer's final
    side by side on one axis (a third of the panels of a grid), every dot in its group."""
    from benchinit.report.section_figures import panels_note

    stages = ["init", "adam · final", "sgd · final"]
    frame = _frame(stages)
    # each dot's value says where it belongs: 10 x its stage's index + its layer
    frame["mean"] = frame["stage"].map({s: 10.0 * i for i, s in enumerate(stages)}) + frame["layer"]
    frame = frame.assign(low=frame["mean"] - 0.1, high=frame["mean"] + 0.1)
    metric = metric_info("act_std", "layer")
    facet_axes = ["activation", "stage"]
    assert facets.along_x(frame, facet_axes) == "stage"
    with style():
        fig = facets.dot_plot(frame, "layer", "initializer", facet_axes, metric, size=facets.SMALL)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["relu", "tanh"]
    assert fig.get_suptitle() == "panels: activation; stage along x"
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == stages
        assert [t.get_text() for t in ax.get_xticklabels(minor=True)] == ["1", "2"] * 3
        points = [
            (x, y) for line in ax.lines if line.get_marker() == "o" for x, y in line.get_xydata()
        ]
        assert len(points) == 2 * len(stages) * 2  # hues x stages x layers
        for x, y in points:
            slot = round(x)  # the hue's offset is under half a slot
            assert (slot // 3, slot % 3 + 1) == (int(y // 10), int(y % 10)), (x, y)
    assert fig.get_figwidth() <= facets.PAGE_WIDTH, "the figure fits the page's width"
    ys = [ax.get_position().y0 for ax in axes]
    assert max(ys) - min(ys) < 1e-9, "the panels run across: one wide, short figure"
    note = panels_note(frame, facet_axes, "stage")
    assert note == " One panel per activation, its stage values along the x axis."
    one_stage = _frame(["init"])
    assert facets.along_x(one_stage, facet_axes) is None, "a single stage stays a panel title"
