"""The HTML report of a real run: sections, tables, figures, escaping, plugin sections."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from htmlcheck import Page, assert_no_live_markup

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.registry import Registry

EXTRAS = """
    import matplotlib.figure
    from benchinit import Initializer, ReportSection, hookimpl
    from benchinit.figures import render

    def broken(weight, generator, activation):
        "An initializer that always fails."
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
        return [ReportSection(
            title="Extra <b>checks</b>",
            text="Cells per status, from a plugin. <script>alert('section')</script>",
            table=[{"status": s, "cells": int(n)} for s, n in counts.items()],
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
    A **small** run. <script>alert('description')</script>
    [a link](javascript:alert('link')) and <img src=x onerror=alert('md')>
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
    status = main(["run", str(folder / "study.toml"), "--out", str(folder / "out"), "--quiet"])
    assert status == 1, "failed cells make the run exit 1"
    return folder / "out"


def test_run_wrote_a_self_contained_report(small):
    html = (small / "index.html").read_text()
    page = Page(html)
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
        assert attrs["src"].startswith("data:image/png;base64,")
        assert attrs.get("alt")
    assert len(page.tags("img")) >= 8
    assert not page.tags("link") and all("src" not in a for a in page.tags("script"))


def test_header_and_leaderboard(small):
    page = Page((small / "index.html").read_text())
    summary = page.text("summary")
    assert "train study; main metric test_accuracy (higher is better)" in summary
    counts = load_results(small).counts()
    assert counts["ok"] > 0 and counts["diverged"] > 0 and counts["failed"] == 8
    assert "= 24 cells" in summary and "benchinit run" in summary and "torch 2." in summary
    assert f"{counts['ok']} ok · {counts['diverged']} diverged · 8 failed" in summary
    assert "He et al. 2015" in summary  # what each component is
    table = page.text("leaderboard-table")
    for word in (
        "rank",
        "initializer",
        "activation",
        "optimizer",
        "test_accuracy",
        "95% CI",
        "kaiming_normal",
        "sgd(lr=0.1)",
    ):
        assert word in table
    results = load_results(small)
    best = results.summary().iloc[0]
    assert f"{best['mean']:.4g}" in table


def test_problems_section_groups_diverged_and_failed(small):
    text = Page((small / "index.html").read_text()).text("problems")
    assert "Diverged" in text and "relu, sgd(lr=1000000)" in text
    assert "Failed" in text and "8 cells: 4 configurations" in text
    assert "ValueError: <img src=x onerror=alert('err')> cannot initialize" in text


def test_untrusted_strings_are_escaped(small):
    html = (small / "index.html").read_text()
    page = Page(html)
    assert_no_live_markup(page)
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert('description')&lt;/script&gt;" in html
    assert "<strong>small</strong>" in html  # Markdown still renders
    assert "&lt;img src=x onerror=alert(&#39;err&#39;)&gt;" in html


def test_plugin_section_is_shown_and_kept(small, tmp_path):
    html = (small / "index.html").read_text()
    assert "Extra &lt;b&gt;checks&lt;/b&gt;" in html
    assert "&lt;script&gt;alert('section')&lt;/script&gt;" in html  # Markdown text, escaped
    assert "Added by plugin file" in html and (small / "sections.json").is_file()


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
    page = Page(html)
    assert_no_live_markup(page)
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in html  # the plugin table
    assert "&lt;img src=x onerror=alert(&#39;doc&#39;)&gt;" in html  # the components table
    assert "onerror=alert('doc')>" not in html


@pytest.mark.slow
def test_a_big_study_gives_a_bounded_readable_page(tmp_path):
    from synthetic import write_synthetic

    from benchinit.figures import MAX_PANELS
    from benchinit.report import render_report

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

    from benchinit.report import _figure_jobs

    write_synthetic(tmp_path / "four", seeds=2, epochs=3, losses=("cross_entropy", "mse"))
    results = load_results(tmp_path / "four")
    assert results.varying == ["initializer", "activation", "optimizer", "loss"]
    bands = [
        job for job in _figure_jobs(results, results.summary()) if job[2].__name__ == "band_plot"
    ]
    assert bands
    for _, caption, _, (frame, x, hue, facets, _), _ in bands:
        assert {"activation", "optimizer", "loss"} <= set(facets), caption
        assert not frame.duplicated([hue, *facets, x]).any(), caption
    for section, caption, *_ in bands:  # 20 panels fit; with init and final phases, 40 do not
        capped = "(the first 24 of 40 panels; every configuration is in the leaderboard)"
        assert (capped in caption) == (section == "signal"), caption
