"""Tick labels never run together: measured on the laid-out figures that the report, compare
and history draw, with labels long or many enough to collide when left alone."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchinit.figures import drawing as figures
from benchinit.figures.analysis import sensitivity_plot
from benchinit.figures.layout import fit_ticks
from benchinit.metrics import metric_info

OPTIMIZERS = [
    "adam",
    "signsgd",
    "sgd(momentum=0.9)",
    "adamw(weight_decay=0.1)",
    "rmsprop",
    "adagrad",
    "lion(lr=0.0001)",
    "sgd(nesterov=True)",
]


def overlapping(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of visible tick labels of one axis that touch: unrotated, their boxes overlap;
    rotated (all by one angle), parallel lines of text closer than their height."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    found = []
    for ax in fig.axes:
        for name in ("x", "y"):
            labels = [t for t in getattr(ax, f"{name}axis").get_ticklabels() if t.get_visible()]
            labels = [t for t in labels if t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in labels]
            pairs = sorted(zip(boxes, labels, strict=True), key=lambda p: p[0].x0 + p[0].y0)
            for (a, ta), (b, tb) in itertools.pairwise(pairs):
                angle = ta.get_rotation() % 180
                if name == "x" and angle not in (0.0,):
                    lines = max(t.get_text().count("\n") + 1 for t in (ta, tb))
                    height = ta.get_fontsize() * fig.dpi / 72 * lines
                    spacing = abs(b.x1 - a.x1) * math.sin(math.radians(angle))
                    if spacing < height:
                        found.append((ta.get_text(), tb.get_text()))
                elif a.overlaps(b):
                    found.append((ta.get_text(), tb.get_text()))
    return found


def _drawn(draw: Any, *args: Any, fit: bool = True, **kwargs: Any) -> Figure:
    with figures.style():
        fig = draw(*args, **kwargs)
        if fit:
            fit_ticks(fig)
        fig.draw_without_rendering()
    return fig


def _heatmap_frame() -> pd.DataFrame:
    rows = [
        {"initializer": i, "optimizer": o, "mean": 0.1 * k + 0.01 * j}
        for k, i in enumerate(["kaiming_normal", "xavier_normal", "orthogonal"])
        for j, o in enumerate(OPTIMIZERS)
    ]
    return pd.DataFrame(rows)


def test_heatmap_tick_labels_never_overlap():
    frame = _heatmap_frame()
    metric = metric_info("test_accuracy", "train")
    with figures.style():
        crowded = figures.heatmap(frame, "optimizer", "initializer", [], metric)
        crowded.set_figwidth(3.0)  # a narrow panel: the labels collide as drawn
    assert overlapping(_drawn(lambda: crowded, fit=False)), "the case must be a crowded one"
    with figures.style():
        fitted = figures.heatmap(frame, "optimizer", "initializer", [], metric)
        fitted.set_figwidth(3.0)
    assert overlapping(_drawn(lambda: fitted)) == []


def test_the_report_fits_labels_on_the_figure_as_drawn_and_draws_again_only_then(monkeypatch):
    """figures.fitted_png: a crowded heatmap is drawn, measured, slanted and drawn again; a
    figure whose labels fit is drawn once."""
    drawings: list[Figure] = []
    sharp = figures._sharp_png
    monkeypatch.setattr(figures, "_sharp_png", lambda fig: drawings.append(fig) or sharp(fig))
    frame = _heatmap_frame()
    metric = metric_info("test_accuracy", "train")
    with figures.style():
        crowded = figures.heatmap(frame, "optimizer", "initializer", [], metric)
        crowded.set_figwidth(3.0)
        figures.fitted_png(crowded)
        assert len(drawings) == 2, "drawn, measured, fitted, drawn again"
        assert overlapping(crowded) == []
        roomy = figures.heatmap(frame.head(6), "optimizer", "initializer", [], metric)
        figures.fitted_png(roomy)
    assert drawings[2:] == [roomy], "nothing to change: drawn once"


def test_values_tried_as_ticks_never_overlap():
    tried = np.logspace(-4, -2, 9)
    frame = pd.DataFrame(
        {
            "tuned.optimizer.lr": tried,
            "mean": np.linspace(0.5, 0.9, len(tried)),
            "low": 0.4,
            "high": 0.95,
            "count": 2,
            "complete": True,
            "chosen": [False] * 8 + [True],
        }
    )
    metric = metric_info("val_accuracy", "train")
    args = (frame, "tuned.optimizer.lr", None, [], metric)
    assert overlapping(_drawn(sensitivity_plot, *args, log_x=True, fit=False))
    assert overlapping(_drawn(sensitivity_plot, *args, log_x=True)) == []


@pytest.mark.parametrize("rows", [5, 60])
def test_configuration_labels_never_overlap(rows):
    summary = pd.DataFrame(
        {
            "configuration": [
                f"kaiming_normal, relu, {OPTIMIZERS[i % 8]} #{i}" for i in range(rows)
            ],
            "mean": np.linspace(0.9, 0.5, rows),
            "ci_low": np.linspace(0.85, 0.45, rows),
            "ci_high": np.linspace(0.95, 0.55, rows),
        }
    )
    metric = metric_info("test_accuracy", "train")
    fig = _drawn(figures.interval_plot, summary, "configuration", metric, limit=rows)
    assert overlapping(fig) == []
    diff = summary.assign(
        diff=summary["mean"] - 0.7,
        ci_low=summary["ci_low"] - 0.7,
        ci_high=summary["ci_high"] - 0.7,
        tolerance=0.005,
        verdict="unchanged",
    )
    assert overlapping(_drawn(figures.difference_plot, diff, limit=rows)) == []


def test_the_compare_legend_sits_outside_the_intervals():
    frame = pd.DataFrame(
        {
            "configuration": [f"config {i}" for i in range(6)],
            "diff": np.linspace(-0.02, 0.03, 6),
            "ci_low": np.linspace(-0.04, 0.01, 6),
            "ci_high": np.linspace(0.0, 0.05, 6),
            "tolerance": 0.005,
            "verdict": ["regressed", "improved", "unchanged"] * 2,
        }
    )
    fig = _drawn(figures.difference_plot, frame)
    renderer = FigureCanvasAgg(fig).get_renderer()
    (ax,) = fig.axes
    (legend,) = fig.legends
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
