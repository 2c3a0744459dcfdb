"""The HTML report of a real run: sections, tables, figures, escaping, plugin sections, and
each reading finding of issue 15 checked on a stored run (axes per metric, intervals inside
the range, facet titles that fit, overrides shown, dots for shallow models, CSV data)."""

from __future__ import annotations

import base64
import io
import math
import re
import shutil
import struct
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from htmlcheck import Page, assert_no_live_markup
from matplotlib.backends.backend_agg import FigureCanvasAgg

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.figures.drawing import SHARP, style
from benchinit.metrics import metric_info
from benchinit.plugins.registry import Registry
from benchinit.report.page import figure_jobs
from benchinit.report.sections import ranked

EXTRAS = """
    import matplotlib.figure
    from benchinit import Initializer, ReportSection, hookimpl
    from benchinit.figures.drawing import render

    def broken(weight, generator, activation):
        "An initializer that always fails with ``ValueError`` (see :class:`ValueError`)."
        raise ValueError("<img src=x onerror=alert('err')> cannot initialize")

    def _figure():
        fig = matplotlib.figure.Figure(figsize=(3, 2))
        fig.subplots().plot([0, 1, 4])
        return fig

    @hookimpl
    def benchinit_initializers():
        return [Initializer("broken", broken)]

    @hookimpl
    def benchinit_report_sections(results):
        counts = results.runs["status"].value_counts()
        rows = [{"status": s, "cells": int(n), "delta": -0.0} for s, n in counts.items()]
        return [ReportSection(
            title="Extra <b>checks</b>",
            text="Cells per status, from a plugin. <script>alert('section')</script> "
            "![tracker](http://example.com/pixel.png)",
            table=rows,
            figure=render(_figure),
        )]
"""

STUDY = '''
    [study]
    name = "small"
    title = "Small <script>alert('title')</script> study"
    kind = "train"
    seeds = 2
    plugins = ["extras.py"]
    description = """
    A **small** run of 3 epochs. <script>alert('description')</script>
    [a link](javascript:alert('link')) and <img src=x onerror=alert('md')>
    ![remote](https://example.com/remote.png)
    """
    [data]
    name = "blobs"
    samples = 200
    [model]
    depth = 2
    width = 16
    [train]
    epochs = 3
    batch_size = 32
    [grid]
    initializer = ["kaiming_normal", "xavier_normal", "broken"]
    activation = ["relu", "tanh"]
    optimizer = ["sgd(lr=0.1)", "sgd(lr=1e6)"]
'''


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    (folder / "extras.py").write_text(textwrap.dedent(EXTRAS))
    (folder / "study.toml").write_text(textwrap.dedent(STUDY))
    argv = ["run", str(folder / "study.toml"), "--out", str(folder / "out"), "--quiet"]
    status = main([*argv, "--set", "train.epochs=2"])
    assert status == 1, "failed cells make the run exit 1"
    return folder / "out"


@pytest.fixture(scope="module")
def page(small) -> Page:
    return Page((small / "index.html").read_text())


@pytest.fixture(scope="module")
def jobs(small):
    results = load_results(small)
    return figure_jobs(results, ranked(results))


def test_run_wrote_a_self_contained_report(small, page):
    assert {
        "summary",
        "leaderboard",
        "results",
        "curves",
        "signal",
        "histograms",
        "problems",
        "reproducibility",
        "leaderboard-table",
    } <= page.ids()
    for attrs in page.tags("img"):
        assert attrs["src"].startswith(("data:image/png;base64,", "data:image/svg+xml;base64,"))
        assert attrs.get("alt")
    assert len(page.tags("img")) >= 8
    assert not page.tags("link") and all("src" not in a for a in page.tags("script"))


def test_header_and_leaderboard(small, page):
    summary = page.text("summary")
    assert "train study; main metric test_accuracy (higher is better)" in summary
    counts = load_results(small).counts()
    assert counts["ok"] > 0 and counts["diverged"] > 0 and counts["failed"] == 8
    assert "= 24 cells" in summary and "benchinit run" in summary and "torch 2." in summary
    assert f"{counts['ok']} ok · {counts['diverged']} diverged · 8 failed" in summary
    assert "He et al. 2015" in summary  # what each component is
    table = page.text("leaderboard-table")
    for word in ("rank", "initializer", "activation", "optimizer", "test_accuracy", "95% CI"):
        assert word in table
    assert "kaiming_normal" in table and "sgd(lr=0.1)" in table
    best = load_results(small).summary().iloc[0]
    assert f"{best['mean']:.4g}" in table


def test_problems_section_groups_diverged_and_failed(page):
    text = page.text("problems")
    assert "Diverged" in text and "relu, sgd(lr=1000000)" in text
    assert "Failed" in text and "8 cells: 4 configurations" in text
    assert "ValueError: <img src=x onerror=alert('err')> cannot initialize" in text


def test_untrusted_strings_are_escaped(small, page):
    html = (small / "index.html").read_text()
    assert_no_live_markup(page)
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert('description')&lt;/script&gt;" in html
    assert "<strong>small</strong>" in html  # Markdown still renders
    assert "&lt;img src=x onerror=alert(&#39;err&#39;)&gt;" in html


def test_markdown_images_never_load_from_the_network(small, page):
    sources = [a.get("src") or "" for a in page.tags("img")]
    assert not [s for s in sources if "example.com" in s]
    text = page.text("summary")
    assert "[image not loaded: remote]" in text
    assert "[image not loaded: tracker]" in (small / "index.html").read_text()


def test_plugin_section_is_shown_and_kept(small):
    html = (small / "index.html").read_text()
    assert "Extra &lt;b&gt;checks&lt;/b&gt;" in html
    assert "&lt;script&gt;alert('section')&lt;/script&gt;" in html  # Markdown text, escaped
    assert "Added by plugin file" in html and (small / "sections.json").is_file()


def test_no_negative_zero_in_any_table(small):
    html = (small / "index.html").read_text()
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
    assert any(c.strip() == "0" for c in cells), "the plugin's -0.0 is shown as 0"
    negative_zero = re.compile(r"(?<![\w.])-0(\.0*)?(?![\w.])")
    assert not [c for c in cells if negative_zero.search(c)]


def test_plugin_docs_render_restructuredtext_markup(small, page):
    html = (small / "index.html").read_text()
    assert "always fails with <code>ValueError</code> (see <code>ValueError</code>)." in html
    summary = page.text("summary")
    assert "``" not in summary and ":class:" not in summary


def test_overrides_are_shown_right_under_the_description(small, page):
    assert "train.epochs=2" in page.text("overrides")
    html = (small / "index.html").read_text()
    description, overrides = html.index('class="description"'), html.index('id="overrides"')
    assert description < overrides < html.index('class="facts"')
    assert "</div><p" in html[description : overrides + 30], "right under the description"


def test_axis_scale_and_range_follow_the_metric(jobs):
    by_name = {job.name: job for job in jobs}
    with style():
        accuracy = by_name["curves-val_accuracy"]
        fig = accuracy.draw(*accuracy.args, **accuracy.kwargs)
        assert fig.get_supylabel() == "validation accuracy"  # said once, left of the panels
        for ax in (a for a in fig.axes if a.get_visible()):
            assert ax.get_yscale() == "linear"
            low, high = ax.get_ylim()
            assert -0.1 < low <= 0 and 1 <= high < 1.1, "accuracy is drawn over [0, 1]"
        loss = by_name["curves-train_loss"]
        fig = loss.draw(*loss.args, **loss.kwargs)
        assert {ax.get_yscale() for ax in fig.axes if ax.get_visible()} == {"log"}


def test_no_interval_outside_the_metric_range(page, jobs):
    intervals = re.findall(r"\[(-?[\d.e+-]+), (-?[\d.e+-]+)\]", page.text("leaderboard-table"))
    assert intervals
    for low, high in intervals:
        assert 0 <= float(low) <= float(high) <= 1
    assert "clipped" in page.text("leaderboard"), "2 seeds: t = 12.7, something was clipped"
    for job in jobs:
        metric = job.args[-1] if job.args and hasattr(job.args[-1], "bounds") else None
        if metric is None or "low" not in job.data:
            continue
        low, high = metric.bounds
        assert (job.data["low"].dropna() >= low).all(), job.name
        assert (job.data["high"].dropna() <= high).all(), job.name
    clipped = [job for job in jobs if "clipped to the metric's range" in job.caption]
    assert clipped and all("over 2 seeds" in j.caption or "seeds" in j.caption for j in clipped)


def test_captions_say_how_many_seeds_a_band_stands_on(jobs):
    bands = [job for job in jobs if job.section in ("curves", "signal")]
    assert bands
    for job in bands:
        assert re.search(r"over (\d+ to )?\d+ seeds?", job.caption), job.caption


def test_facet_titles_fit_their_panels(jobs):
    faceted = [job for job in jobs if job.section in ("curves", "signal", "results")]
    for job in faceted:
        with style():
            fig = job.draw(*job.args, **job.kwargs)
            renderer = FigureCanvasAgg(fig).get_renderer()
            fig.draw_without_rendering()
            titles = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
            for ax in titles:
                width = ax.title.get_window_extent(renderer).width
                assert width <= ax.get_window_extent(renderer).width + 1, (job.name, ax.get_title())
                for axis in ("initializer", "activation", "optimizer", "phase"):
                    assert f"{axis}=" not in ax.get_title(), "values only; names said once"


def test_shallow_models_get_dots_per_layer(jobs):
    from reportdata import drawn_as

    signal = [job for job in jobs if job.section == "signal"]
    assert signal and {drawn_as(job) for job in signal} == {"dots"}, "depth 2"
    assert all("dots and bars" in job.caption for job in signal)


def _png_size(src: str) -> tuple[int, int]:
    data = base64.b64decode(src.split(",", 1)[1])
    return struct.unpack(">II", data[16:24])


def test_a_figure_drawn_once_on_its_canvas_is_the_figure_savefig_writes(jobs):
    """The report's PNGs are drawn once on an Agg canvas (figures.drawing._sharp_png), not by
    savefig, which lays a figure out in a draw of its own: the pixels must be savefig's."""
    import numpy as np
    from PIL import Image

    from benchinit.figures.drawing import DPI, _sharp_png
    from benchinit.figures.layout import fit_ticks

    with style():
        for job in jobs[:4]:
            fig = job.draw(*job.args, **job.kwargs)
            fit_ticks(fig)
            png, size = _sharp_png(fig)
            saved = io.BytesIO()
            fig.savefig(saved, format="png", dpi=DPI * SHARP)
            reference = Image.open(saved).convert("RGB")
            assert size == reference.size, job.name
            quantized = reference.quantize(256, method=Image.Quantize.FASTOCTREE).convert("RGB")
            ours = Image.open(io.BytesIO(png)).convert("RGB")
            assert np.array_equal(np.asarray(ours), np.asarray(quantized)), job.name


def test_figures_are_sharp_and_carry_their_numbers(small, page, jobs):
    figures = [a for t, a in page.elements if t == "img" and a.get("width")]
    links = [a for t, a in page.elements if t == "a" and "data" in (a.get("class") or "")]
    assert len(figures) == len(jobs) == len(links)
    for image in figures:
        if image["src"].startswith("data:image/png"):
            width, height = _png_size(image["src"])
            assert width >= SHARP * int(image["width"]) - 2, "SHARP device pixels per CSS pixel"
            assert height >= SHARP * int(image["height"]) - 2
    for job, link in zip(jobs, links, strict=True):
        assert link["href"].startswith("data:text/csv;charset=utf-8;base64,")
        assert link["download"].endswith(".csv")
        text = base64.b64decode(link["href"].split(",", 1)[1]).decode()
        frame = pd.read_csv(io.StringIO(text))
        assert list(frame.columns) == [str(c) for c in job.data.columns], job.name
        assert len(frame) == len(job.data), job.name
        if "mean" in frame:
            pd.testing.assert_series_equal(
                frame["mean"], job.data["mean"].reset_index(drop=True), rtol=1e-5, check_dtype=False
            )


def test_report_of_a_copied_folder_is_the_same_page(small, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(small, copy)
    (copy / "index.html").unlink()
    monkeypatch.chdir(tmp_path)  # no study file and no plugin file in reach
    assert main(["report", str(copy)]) == 0
    assert (copy / "index.html").read_bytes() == (small / "index.html").read_bytes()


def test_report_errors_are_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a benchinit results folder" in capsys.readouterr().err


class XssPlugin:
    """An in-memory plugin whose name and docs are hostile."""

    def __init__(self) -> None:
        from benchinit import Initializer, hookimpl

        def xss_init(weight, generator, activation):
            weight.normal_(0, 0.1, generator=generator)

        xss_init.__doc__ = "<img src=x onerror=alert('doc')> and <script>alert('doc')</script>"

        @hookimpl
        def benchinit_initializers():
            return [Initializer("xss_init", xss_init)]

        self.benchinit_initializers = benchinit_initializers


def test_hostile_plugin_name_and_doc_are_escaped(tmp_path, write_study):
    name = "<script>alert('name')</script><img src=x onerror=alert('name')>"
    registry = Registry(autoload=False, objects=[(XssPlugin(), name)])
    study = load_study(
        write_study("""
        [study]
        kind = "signal"
        seeds = 1
        [data]
        samples = 50
        features = 8
        [model]
        depth = 2
        width = 8
        [grid]
        initializer = ["xss_init", "xavier_normal"]
        activation = "tanh"
    """),
        registry=registry,
    )
    outcome = run(study, tmp_path / "out", progress=False)
    html = outcome.report.read_text()
    assert_no_live_markup(Page(html))
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in html  # the plugin table
    assert "&lt;img src=x onerror=alert(" in html  # the components table (Markdown, escaped)
    assert "onerror=alert('doc')>" not in html


@pytest.mark.slow
def test_a_big_study_gives_a_bounded_readable_page(tmp_path):
    from synthetic import write_synthetic

    from benchinit.figures.drawing import MAX_PANELS
    from benchinit.report.page import render_report

    cells = write_synthetic(tmp_path / "big", seeds=2, epochs=5)
    html = render_report(tmp_path / "big").read_text()
    page = Page(html)
    assert cells == 200
    rows = [a for t, a in page.elements if t == "tr"]
    assert len(rows) > 100  # leaderboard (100 configurations) and the cell table, all kept
    images = page.tags("img")
    histograms = [i for i in images if "Activation histograms" in (i.get("alt") or "")]
    assert 0 < len(histograms) <= MAX_PANELS, "one histogram grid per (activation, optimizer)"
    assert len(images) <= 3 + 5 + 5 + MAX_PANELS, "aggregated over seeds, never one per cell"
    assert "Diverged" in page.text("problems")


def test_lines_never_mix_configurations(tmp_path):
    from synthetic import write_synthetic

    write_synthetic(tmp_path / "four", seeds=2, epochs=3, losses=("cross_entropy", "mse"))
    results = load_results(tmp_path / "four")
    assert results.varying == ["initializer", "activation", "optimizer", "loss"]
    bands = [job for job in figure_jobs(results, ranked(results)) if job.section != "results"]
    bands = [job for job in bands if job.draw.__name__ == "band_plot"]
    assert bands
    for job in bands:
        frame, x, hue, facets, _ = job.args
        assert {"activation", "optimizer", "loss"} <= set(facets), job.caption
        assert not frame.duplicated([hue, *facets, x]).any(), job.caption
        capped = "(the first 24 of 40 panels; every configuration is in the leaderboard)"
        assert (capped in job.caption) == (job.section == "signal"), job.caption


def test_depth_decides_lines_or_dots(tmp_path):
    from reportdata import drawn_as, write_results

    for layers, form in ((3, "dots"), (4, "lines")):
        folder = write_results(tmp_path / str(layers), {"initializer": ["a", "b"]}, layers=layers)
        results = load_results(folder)
        signal = [j for j in figure_jobs(results, ranked(results)) if j.section == "signal"]
        assert signal and {drawn_as(job) for job in signal} == {form}


def test_metric_table_agrees_with_the_probes():
    from benchinit.engine import probes

    assert metric_info("act_entropy", "signal").bounds[1] == pytest.approx(math.log2(probes.BINS))


def test_long_facet_values_are_wrapped_or_shrunk_to_fit():
    from benchinit.figures.facets import band_plot
    from benchinit.metrics import curve_info

    long = [
        "sgd(lr=0.05, momentum=0.9, schedule='step', step_size=5, gamma=0.5)",
        "adamw(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01)",
    ]
    rows = [
        {"optimizer": o, "activation": a, "initializer": i, "epoch": e, "mean": 0.5}
        for o in long
        for a in ("relu", "leaky_relu(negative_slope=0.2)")
        for i in ("kaiming_normal", "xavier_normal")
        for e in range(3)
    ]
    frame = pd.DataFrame(rows).assign(low=0.4, high=0.6, seeds=3)
    with style():
        fig = band_plot(
            frame,
            "epoch",
            "initializer",
            ["activation", "optimizer"],
            curve_info("test", "accuracy"),
        )
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw_without_rendering()
        titled = [ax for ax in fig.axes if ax.get_title()]
        assert len(titled) == 4
        for ax in titled:
            assert (
                ax.title.get_window_extent(renderer).width <= ax.get_window_extent(renderer).width
            )
            assert ax.title.get_fontsize() >= 5
            assert "momentum" in ax.get_title() or "betas" in ax.get_title()
        assert fig.get_suptitle() == "panels: activation · optimizer"


def test_long_values_become_short_labels_and_never_squeeze_a_panel():
    import warnings

    from benchinit.figures.drawing import heatmap
    from benchinit.figures.layout import label
    from benchinit.metrics import metric_info

    assert label("relu") == "relu"
    assert label("x" * 60) == "x" * 24 + "\n" + "x" * 23 + "…"
    assert label("x" * 60, 60, 1) == "x" * 60
    assert label("x" * 61, 60, 1) == "x" * 59 + "…"
    assert label("a" * 20 + " " + "b" * 20 + " " + "c" * 20) == "a" * 20 + "\n" + "b" * 20 + "…"
    long = [
        "sgd(lr=0.05, momentum=0.9, schedule='step', step_size=5, gamma=0.5)",
        "adamw(lr=0.001, betas=(0.9, 0.999), weight_decay=0.01)",
        "<script>alert('x')</script><img src=x onerror=alert(1)>",
    ]
    rows = [
        {"optimizer": o, "initializer": i, "activation": a, "mean": 0.5 + 0.1 * k}
        for k, o in enumerate(long)
        for i in long
        for a in ("relu", "tanh")
    ]
    with style(), warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when a panel collapses to nothing
        fig = heatmap(
            pd.DataFrame(rows),
            "optimizer",
            "initializer",
            ["activation"],
            metric_info("test_accuracy", "results"),
        )
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw_without_rendering()
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2
    for ax in panels:
        assert ax.get_window_extent(renderer).width > 100, "the panel keeps its room"
        ticks = [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
        assert len(ticks) == 6
        assert all(len(line) <= 24 for t in ticks for line in t.split("\n"))


def test_the_reproducibility_appendix_is_folded_with_its_versions_in_view(small):
    """Environment, plugins and cell ids are folded (the page's reader scrolls past them),
    the environment's summary line saying the versions that matter."""
    import json

    html = (small / "index.html").read_text()
    appendix = html[html.index('<section id="reproducibility">') :]
    appendix = appendix[: appendix.index("</section>")]
    environment = json.loads((small / "meta.json").read_text())["environment"]
    summary = re.search(r"<summary>Environment: ([^<]*)</summary>", appendix)
    assert summary, "the environment is folded"
    assert f"torch {environment['torch']}" in summary.group(1)
    assert f"device {environment['device']}" in summary.group(1)
    outside = re.sub(r"<details>.*?</details>", "", appendix, flags=re.S)
    assert "<table" not in outside, "every table of the appendix is folded"
    assert re.search(r"<summary>Plugins: \d+", appendix)
