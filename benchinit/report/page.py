"""The HTML report of a results folder: ``render_report(DIR)``.

Three layers, as in ydata-profiling: what goes into the page (:mod:`benchinit.report.sections`
for text and tables, :mod:`benchinit.report.section_figures` for figures and their numbers, one
module per analysis section: :mod:`~benchinit.report.phase`, :mod:`~benchinit.report.effects`,
:mod:`~benchinit.report.tuning`, :mod:`~benchinit.report.spectrum`, and
:mod:`benchinit.report.plugin_sections` for plugins' sections), how figures are drawn
(:mod:`benchinit.figures.drawing`, :mod:`benchinit.figures.facets`,
:mod:`benchinit.figures.analysis`),
and the markup (``templates/`` through :mod:`benchinit.report.templating`, which owns the Jinja2
environment). This module only wires them together, in the page order of ``SECTIONS``.

The page is one self-contained file: figures are data URIs (each with its numbers as a CSV
data URI), CSS and the small scripts that sort, filter and hide table columns are inline,
and nothing is fetched when it opens. ``render_report(DIR)`` needs only the results folder:
the page of a copied folder, with no study file and no plugins, is the page ``benchinit
run`` wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from benchinit._version import __version__
from benchinit.execution.progress import Progress
from benchinit.figures import drawing as figures
from benchinit.plugins.specs import SpecError, parse_spec
from benchinit.report.effects import effects_report
from benchinit.report.figure_workers import FigureWorkers
from benchinit.report.phase import phase_jobs
from benchinit.report.plugin_sections import call_plugins, checked
from benchinit.report.section_figures import (
    FigureJob,
    curve_jobs,
    histogram_jobs,
    results_jobs,
)
from benchinit.report.sections import header, leaderboard, problems, ranked, reproducibility
from benchinit.report.signal_figures import signal_jobs
from benchinit.report.spectrum import spectrum_jobs
from benchinit.report.templating import csv_uri, environment, markdown, number
from benchinit.report.tuning import tuning_report
from benchinit.report.width import width_jobs
from benchinit.results.folder_summary import settle
from benchinit.results.outputs import check_output, write_output
from benchinit.results.store import Store
from benchinit.results.tables import Results, load_results

__all__ = ["draw_all", "environment", "figure_jobs", "markdown", "number", "render_report"]

# The page's sections in order: (id, heading, navigation label, note under the heading).
SECTIONS = (
    ("results", "Results by configuration", "Results", ""),
    ("phase", "Phase diagram: order to chaos", "Phase", ""),
    ("effects", "What matters most", "What matters", ""),
    ("tuning", "Tuning", "Tuning", ""),
    ("width", "Width: learning rates and coordinates", "Width", ""),
    ("curves", "Learning curves", "Curves", ""),
    ("signal", "Signal propagation", "Signal", "Per hidden layer, mean and 95% CI over seeds."),
    (
        "spectrum",
        "Jacobian spectrum",
        "Spectrum",
        "The input-output Jacobian J of the hidden stack, from the input to a layer "
        "(benchinit.engine.jacobian): its squared singular values say how much it stretches each "
        "direction. Dynamical isometry, all of them near 1, is what lets a deep network "
        "train fast (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017).",
    ),
    ("histograms", "Activation histograms", "Histograms", ""),
)


def _draw(job: FigureJob) -> figures.Image:
    return figures.render_image(job.draw, *job.args, **job.kwargs)


def draw_all(
    jobs: list[FigureJob], parallel: int | FigureWorkers, bar: Progress | None = None
) -> list[figures.Image]:
    """Render the figures in order, advancing ``bar`` by one per figure: in ``parallel``
    spawned worker processes when that pays and is safe (a started
    :class:`~benchinit.report.figure_workers.FigureWorkers` is used as it is; see there).

    Spawned workers import the caller's main module again, so a script without an
    ``if __name__ == "__main__":`` guard has its figures drawn in this process
    (benchinit.report.spawning): no script needs a guard for a report.
    """
    bar = bar or Progress(0, "report", enabled=False)
    if isinstance(parallel, int):
        with FigureWorkers(parallel) as workers:
            return draw_all(jobs, workers, bar)
    images = []
    for image in parallel.map(_draw, jobs):
        images.append(image)
        bar.advance(1)
    return images


def analyses(
    results: Results, summary: pd.DataFrame
) -> tuple[dict[str, dict[str, Any] | None], list[FigureJob]]:
    """The text sections computed with their figures (effects, tuning), and every figure
    of the report in page order."""
    effects, effects_figures = effects_report(results)
    tuning, tuning_figures = tuning_report(results)
    jobs = [
        *results_jobs(results, summary),
        *phase_jobs(results),
        *effects_figures,
        *tuning_figures,
        *width_jobs(results),
        *curve_jobs(results),
        *signal_jobs(results),
        *spectrum_jobs(results),
        *histogram_jobs(results),
    ]
    return {"effects": effects, "tuning": tuning}, jobs


def figure_jobs(results: Results, summary: pd.DataFrame) -> list[FigureJob]:
    """Every figure of the report, in page order (``SECTIONS``)."""
    return analyses(results, summary)[1]


def _sections(
    figures: dict[str, list[dict]], text: dict[str, Any], results: Results
) -> list[dict[str, str]]:
    """The sections this page has, in order."""
    extra = {"signal": model_note(results)}
    return [
        {"id": name, "heading": heading, "nav": nav, "note": (note + extra.get(name, "")).strip()}
        for name, heading, nav, note in SECTIONS
        if figures.get(name) or text.get(name)
    ]


def _spec_name(value: Any) -> str:
    """A plugin spec's name (``"cnn(kernel=5)"``, ``{name = "cnn"}`` -> ``cnn``)."""
    try:
        return parse_spec(value)[0]
    except SpecError:
        return str(value)


def model_note(results: Results) -> str:
    """What the signal section does not show for a model other than the MLP: the Jacobian
    spectrum and the mean-field predictions are defined for the MLP's layers only
    (benchinit.engine.jacobian, benchinit.analysis.meanfield)."""
    chosen = results.study.get("settings", {}).get("model", {}).get("name", "mlp")
    names = results.study["values"].get("model.name") or [chosen]
    other = [label for label in map(_spec_name, names) if label != "mlp"]
    if not other:
        return ""
    return (
        f" Model {', '.join(repr(n) for n in other)}: layers named as it declares them (their "
        "numbers in the tables); "
        "the Jacobian spectrum and the mean-field predictions are computed for the MLP "
        "only, so none are drawn for it."
    )


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
    parallel: int | FigureWorkers = 1,
    progress: bool = False,
) -> Path:
    """Write the report of a results folder (``DIR/index.html`` unless ``out``).

    With a ``registry`` (as ``benchinit run`` passes), plugin report sections are computed
    and stored in the folder; without one, the stored sections are shown, checked exactly
    like fresh ones. ``parallel``: processes drawing the figures, this one included, or workers
    already started (see :func:`draw_all`).
    ``progress``: announce the drawing and show its progress on stderr (a bar on a
    terminal, log lines elsewhere).
    Raises ResultsError (a damaged folder) or OutputError (the page cannot be written).
    """
    store = Store(path)
    page = Path(out) if out is not None else store.report_path
    check_output(page, "html", report=path)  # refused before anything is drawn
    settle(path, writable_only=True)  # an older folder's records merged, its summary written
    results = load_results(path)
    study_toml = store.study_toml()  # a damaged folder is said before any figure is drawn
    if registry is not None:
        sections = call_plugins(registry, results)
        store.write_sections(sections)
    else:
        sections = store.read_sections() or []
    sections = checked(sections, store.sections_path)
    summary = ranked(results)  # once: the leaderboard and the figures share it
    text, jobs = analyses(results, summary)
    bar = Progress(len(jobs), f"{results.study['name']} report", enabled=progress, unit="figures")
    bar.note(f"{results.study['name']}: drawing the report ({len(jobs)} figures)")
    try:
        drawn = _figures(jobs, draw_all(jobs, parallel, bar))
    finally:
        bar.close()
    html = (
        environment()
        .get_template("report.html")
        .render(
            version=__version__,
            header=header(results),
            leaderboard=leaderboard(results, summary),
            sections=_sections(drawn, text, results),
            effects=text["effects"],
            tuning=text["tuning"],
            figures=drawn,
            problems=problems(results),
            plugin_sections=sections,
            repro=reproducibility(results, study_toml),
        )
    )
    return write_output(page, html, "html", report=path)
