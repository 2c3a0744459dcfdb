"""The HTML report of a results folder: ``render_report(DIR)``.

Three layers, as in ydata-profiling: what goes into the page (:mod:`benchinit.report_sections`
for text and tables, :mod:`benchinit.report_figures` for figures and their numbers,
:mod:`benchinit.plugin_sections` for plugins' sections), how figures are drawn
(:mod:`benchinit.figures`, :mod:`benchinit.facet_figures`), and the markup (``templates/``
through :mod:`benchinit.templating`, which owns the Jinja2 environment). This module only
wires them together.

The page is one self-contained file: figures are data URIs (each with its numbers as a CSV
data URI), CSS and the small scripts that sort, filter and hide table columns are inline,
and nothing is fetched when it opens. ``render_report(DIR)`` needs only the results folder:
the page of a copied folder, with no study file and no plugins, is the page ``benchinit
run`` wrote.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchinit import figures
from benchinit._version import __version__
from benchinit.plugin_sections import call_plugins, checked
from benchinit.report_figures import FigureJob, figure_jobs
from benchinit.report_sections import (
    header,
    leaderboard,
    prepare,
    problems,
    ranked,
    reproducibility,
)
from benchinit.results import load_results
from benchinit.store import Store
from benchinit.templating import csv_uri, environment, markdown, number

__all__ = ["draw_all", "environment", "markdown", "number", "render_report"]


def _draw(job: FigureJob) -> figures.Image:
    return figures.render_image(job.draw, *job.args, **job.kwargs)


def draw_all(jobs: list[FigureJob], parallel: int) -> list[figures.Image]:
    """Render the figures, in ``parallel`` spawned worker processes when that pays.

    Starting a worker costs about 2 s here (matplotlib, seaborn, pandas imports), so fewer
    than 8 figures are drawn in this process. Spawned workers import the caller's main module
    again: a script that asks for ``parallel > 1`` needs an ``if __name__ == "__main__":``
    guard, as with any multiprocessing code.
    """
    if parallel > 1 and len(jobs) >= 8:
        import multiprocessing

        with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_draw, jobs))
    return [_draw(job) for job in jobs]


def _figures(jobs: list[FigureJob], images: list[figures.Image]) -> dict[str, list[dict]]:
    """Figures by section, each with its image, caption and CSV download."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    names: set[str] = set()
    for job, image in zip(jobs, images, strict=True):
        name, n = job.name, 1
        while name in names:
            n += 1
            name = f"{job.name}-{n}"
        names.add(name)
        grouped.setdefault(job.section, []).append(
            {
                "caption": job.caption,
                "src": image.src,
                "width": image.width,
                "height": image.height,
                "csv": csv_uri(job.data),
                "csv_name": f"{name}.csv",
            }
        )
    return grouped


def render_report(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    registry: Any = None,
    parallel: int = 1,
) -> Path:
    """Write the report of a results folder (``DIR/index.html`` unless ``out``).

    With a ``registry`` (as ``benchinit run`` passes), plugin report sections are computed
    and stored in the folder; without one, the stored sections are shown, checked exactly
    like fresh ones. ``parallel``: worker processes for the figures (see :func:`draw_all`).
    Raises ResultsError (a damaged folder) or OutputError (the page cannot be written).
    """
    store = Store(path)
    results = prepare(load_results(path))
    if registry is not None:
        sections = call_plugins(registry, results)
        store.write_sections(sections)
    else:
        sections = store.read_sections() or []
    sections = checked(sections, store.sections_path)
    summary = ranked(results)  # once: the leaderboard and the figures share it
    jobs = figure_jobs(results, summary)
    html = (
        environment()
        .get_template("report.html")
        .render(
            version=__version__,
            header=header(results),
            leaderboard=leaderboard(results, summary),
            figures=_figures(jobs, draw_all(jobs, parallel)),
            problems=problems(results),
            plugin_sections=sections,
            repro=reproducibility(results, store.study_toml()),
        )
    )
    return store.write_report(html, out)
