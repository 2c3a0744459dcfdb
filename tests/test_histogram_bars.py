"""Histograms keep the mass beyond their range apart from their edge bins, in the figure too."""

from __future__ import annotations

import math

import matplotlib.patches
import pandas as pd

from benchinit.figures import histograms


def _frame(apart: bool) -> pd.DataFrame:
    """One layer's histogram over [0, 3] in 3 bins: 10 values inside, 30 above the range."""
    rows = [(b, float(b), float(b + 1), c) for b, c in zip(range(3), (5, 3, 2), strict=True)]
    if apart:
        rows = [(-1, -math.inf, 0.0, 0), *rows, (3, 3.0, math.inf, 30)]
    else:
        rows[-1] = (2, 2.0, 3.0, 32)  # a folder made when the outside was folded in
    frame = pd.DataFrame(rows, columns=["bin", "left", "right", "count"])
    return frame.assign(layer=1)


def _hatched(fig) -> list[matplotlib.patches.Rectangle]:
    return [p for ax in fig.axes for p in ax.patches if p.get_hatch()]


def test_mass_above_the_range_is_a_hatched_bar_past_the_end():
    frame = _frame(apart=True)
    fig = histograms.histogram_grid(frame, None, "relu")
    (bar,) = _hatched(fig)  # "below" holds nothing: no bar
    assert bar.get_x() == 4.0 and bar.get_width() == 1.0  # a bin's gap past hi = 3
    assert bar.get_height() == 30 / 40  # its share of every value, not of those inside
    assert "hatched" in fig._supxlabel.get_text()
    assert histograms.apart(frame)


def test_an_older_folder_says_its_edge_bins_hold_the_outside():
    frame = _frame(apart=False)
    fig = histograms.histogram_grid(frame, None, "relu")
    assert not _hatched(fig) and not histograms.apart(frame)
    assert "edge bins" in histograms.outside_text(frame)
    assert "edge bins" in fig._supxlabel.get_text()


def test_a_grid_of_few_layers_takes_a_third_of_the_page_its_title_over_its_legend():
    """One or two layer columns: the grid is a third of the page wide (a section's three
    grids share a row), its phase legend above the panels under the title; five layers keep
    2.2 inches a column and a plain title."""
    one = _frame(apart=True)
    phases = pd.concat([one.assign(phase=p) for p in ("init", "final")])
    two_layers = pd.concat([phases, phases.assign(layer=2)])
    fig = histograms.histogram_grid(two_layers, None, "activation = relu", hue="phase")
    assert fig.get_figwidth() == histograms.THIRD
    (legend,) = fig.legends
    assert legend.get_title().get_text() == "activation = relu" and not fig.get_suptitle()
    assert [t.get_text() for t in legend.get_texts()] == ["init", "final"]
    five = pd.concat([one.assign(layer=k) for k in range(1, 6)])
    wide = histograms.histogram_grid(five, None, "activation = tanh")
    assert wide.get_figwidth() == 5 * histograms.LAYER_WIDTH + 1.2
    assert wide.get_suptitle() == "activation = tanh" and not wide.legends
