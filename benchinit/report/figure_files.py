"""A report's figures as files for a paper: ``benchinit report DIR --figures OUTDIR``.

Every figure of the report (the same drawing calls, in page order), one file each, named
by its section and the name of its CSV download: ``results-act_entropy-intervals.pdf``,
``histograms-sigmoid.pdf``. Publication size: at most ``WIDTH`` inches wide (178 mm, the
full text width of a two-column journal or conference page), a wider figure made narrower
at its own height (shrinking it whole would leave 5-point text), fonts of seaborn's
``paper`` context (about 8 points at that size); PDF and
SVG keep text as text (TrueType fonts embedded), PNG at ``PNG_DPI``. Beside them,
``figures.json`` lists each file with its section and caption. The folder must be new,
empty, or one this command wrote (its ``figures.json`` carries benchinit's mark): then only
the files that list names are replaced, and nothing else there is ever touched.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import matplotlib
import seaborn as sns

from benchinit._version import __version__
from benchinit.errors import BenchinitError, OutputError, os_reason
from benchinit.execution.progress import Progress
from benchinit.figures import drawing as figures
from benchinit.report.page import figure_jobs
from benchinit.report.sections import ranked
from benchinit.results.outputs import check_output, write_output, written_by_benchinit
from benchinit.results.tables import load_results

FORMATS = ("pdf", "svg", "png")
MANIFEST = "figures.json"
WIDTH = 7.0  # inches: 178 mm
PNG_DPI = 300


def _name(section: str, name: str, taken: set[str]) -> str:
    """'histograms-sigmoid': the section, then the figure's own name (once)."""
    base = name if name.startswith(section) else f"{section}-{name}"
    stem, n = base, 1
    while stem in taken:
        n += 1
        stem = f"{base}-{n}"
    taken.add(stem)
    return stem


def _bytes(fig: matplotlib.figure.Figure, fmt: str) -> bytes:
    width, height = fig.get_size_inches()  # panels get narrower, never shorter: labels fit
    fig.set_size_inches(min(width, WIDTH), height)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    if fmt == "pdf":
        metadata = {"CreationDate": None}
    # the figure's own size (its layout is constrained): "tight" could grow it past WIDTH
    fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata=metadata)
    return buffer.getvalue()


def _ours(folder: Path) -> set[str]:
    """The files an earlier export listed in ``folder``; refuses a folder that holds
    files without such a list."""
    manifest = folder / MANIFEST
    if manifest.is_file() and written_by_benchinit(manifest, "json"):
        try:
            return {f["file"] for f in json.loads(manifest.read_text("utf-8"))["figures"]}
        except (ValueError, KeyError, TypeError):
            pass
    if folder.is_dir() and any(folder.iterdir()):
        raise BenchinitError(
            f"'{folder}' holds files that benchinit did not write there; name a new or "
            "empty folder for the figures (or one an earlier --figures wrote)"
        )
    return set()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(path, os_reason(exc)) from None


def export_figures(
    path: str | os.PathLike[str], out: str | os.PathLike[str], fmt: str, progress: bool = False
) -> list[Path]:
    """Write every figure of the folder ``path``'s report into the folder ``out`` as
    ``fmt`` (one of :data:`FORMATS`); the files written, in page order."""
    if fmt not in FORMATS:
        raise BenchinitError(f"unknown figure format '{fmt}'; valid: {', '.join(FORMATS)}")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise BenchinitError(f"'{folder}' is a file; name a folder for the figures")
    ours = _ours(folder)
    results = load_results(path)
    jobs = figure_jobs(results, ranked(results))
    taken: set[str] = set()
    names = [f"{_name(j.section, j.name, taken)}.{fmt}" for j in jobs]
    clash = [n for n in names if (folder / n).exists() and n not in ours]
    if clash:  # refused before anything is drawn
        raise BenchinitError(f"'{folder / clash[0]}' exists and benchinit did not write it")
    check_output(folder / MANIFEST, "json")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, os_reason(exc)) from None
    bar = Progress(len(jobs), "figures", enabled=progress, unit="figures")
    for job, name in zip(jobs, names, strict=True):
        with figures.style():
            sns.set_theme(style="whitegrid", context="paper")
            matplotlib.rcParams.update({"pdf.fonttype": 42, "svg.fonttype": "none"})
            _write(folder / name, _bytes(job.draw(*job.args, **job.kwargs), fmt))
        bar.advance(1)
    bar.close()
    listed = [
        {"file": n, "section": j.section, "caption": j.caption}
        for j, n in zip(jobs, names, strict=True)
    ]
    manifest = {"generator": f"benchinit {__version__}", "results": str(path), "figures": listed}
    write_output(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n", "json")
    return [folder / n for n in names]
