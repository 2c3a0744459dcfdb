"""An index of runs: one page listing every results folder under a directory.

``write_index(DIR)`` (``benchinit index DIR``) finds every results folder below ``DIR``
and writes ``DIR/index.html``: per folder its study, title, when it ran, where (device,
torch), its cells by status, its best configuration by the study's main metric (mean and
interval, clipped to the metric's range as in the report) and a link to its report. It is
the page a course folder or a CI artifact store opens first (asv's index, benchopt's
``plot --all``), and like every benchinit page it is one self-contained file.

- Each folder is read from its ``meta.json`` and ``summary.json`` (benchinit.results.folder_summary,
  written when its run ended); without a summary of the folder as it is, from its runs table.
- A results folder is a folder with a ``meta.json`` or a ``records/`` folder; the search
  does not descend into one (its records are not results folders of their own).
- A damaged folder (unreadable meta.json, corrupt records, a foreign file) is listed with
  its problem instead of stopping the page: an index over a hundred runs should not fail
  because one of them is broken.
- Newest first (by start time); damaged folders last. The table sorts, filters by study,
  kind and device, and hides columns, like the report's leaderboard.
- The page is written only where benchinit may write: never over a report (``DIR`` being a
  results folder itself) or over an ``index.html`` that benchinit's index did not write.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchinit._version import __version__
from benchinit.errors import BenchinitError
from benchinit.report.templating import environment
from benchinit.results.folder_summary import read_summary, summarize
from benchinit.results.outputs import write_output
from benchinit.results.store import Store
from benchinit.results.tables import load_results

GENERATOR = "benchinit index"  # the page's <meta name="generator">: ours to replace


@dataclass
class Entry:
    """One results folder as the index lists it (``problem`` set when it is damaged)."""

    folder: str  # relative to the index's directory, with '/' separators
    link: str | None = None  # URL of its report, relative to the index page
    problem: str = ""
    study: str = ""
    title: str = ""
    kind: str = ""
    started: str = ""
    finished: str = ""
    device: str = ""
    torch: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    metric: str = ""
    best: str = ""  # the best configuration: "axis=value, ..."
    mean: float | None = None
    low: float | None = None
    high: float | None = None
    seeds: int = 0


def find_results(root: Path) -> list[Path]:
    """Every results folder at or below ``root``, by path."""
    found = []
    for path, folders, files in os.walk(root):
        if "meta.json" in files or "records" in folders:
            found.append(Path(path))
            folders.clear()  # a results folder's own folders are not results folders
        else:
            folders.sort()
    return sorted(found)


def _link(folder: Path, page: Path) -> str | None:
    report = folder / "index.html"
    if not report.is_file():
        return None
    relative = os.path.relpath(report, page.parent).replace(os.sep, "/")
    return urllib.parse.quote(relative)  # a folder named "javascript:x" stays a relative path


def _relative(message: str, root: Path) -> str:
    """A problem as the page shows it: paths relative to the index's folder."""
    return message.replace(f"{root}{os.sep}", "")


def entry(folder: Path, root: Path, page: Path) -> Entry:
    """What the index says about one results folder; never raises for a damaged one."""
    name = folder.relative_to(root).as_posix() if folder != root else "."
    item = Entry(folder=name, link=_link(folder, page))
    try:
        meta = Store(folder).meta()
        summary = read_summary(folder, meta)
        if summary is None:  # no summary of the folder as it is: its runs table
            summary = summarize(load_results(folder))
    except BenchinitError as exc:
        item.problem = _relative(str(exc), root)
        return item
    except Exception as exc:  # an index over many runs must list a broken one, not stop
        item.problem = _relative(f"cannot be read: {type(exc).__name__}: {exc}", root)
        return item
    study, env = meta["study"], meta["environment"]
    item.study, item.title, item.kind = study["name"], study["title"], study["kind"]
    item.started, item.finished = meta["started"], meta["finished"] or ""
    item.device, item.torch = str(env.get("device", "")), str(env.get("torch", ""))
    item.counts = dict(summary["counts"])
    item.metric, item.best = str(summary["metric"]), str(summary["best"])
    item.mean, item.low, item.high = summary["mean"], summary["low"], summary["high"]
    item.seeds = int(summary["seeds"])
    return item


def _check_target(root: Path, page: Path) -> None:
    if page.parent.resolve() == root.resolve() and root.joinpath("meta.json").is_file():
        raise BenchinitError(
            f"'{root}' is a results folder: its index.html is its report. Index the folder "
            "that holds it, or write the index elsewhere with {out}",
            options={"out": "out=PATH"},
        )
    if page.is_file():
        with open(page, encoding="utf-8", errors="replace") as f:
            head = f.read(2000)
        if f'<meta name="generator" content="{GENERATOR}">' not in head:
            raise BenchinitError(
                f"'{page}' exists and was not written by benchinit's index; it is never "
                "replaced. Write the index elsewhere with {out}",
                options={"out": "out=PATH"},
            )


def write_index(root: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None) -> Path:
    """Write the index of every results folder under ``root`` (``root/index.html`` unless
    ``out``); return its path. BenchinitError when ``root`` is not a folder or the page
    would replace a file benchinit's index did not write; OutputError when it cannot be
    written."""
    root = Path(root)
    if not root.is_dir():
        raise BenchinitError(f"'{root}' is not a folder")
    page = Path(out) if out is not None else root / "index.html"
    _check_target(root, page)
    entries = [entry(folder, root, page) for folder in find_results(root)]  # by folder
    healthy = sorted((e for e in entries if not e.problem), key=lambda e: e.started, reverse=True)
    entries = healthy + [e for e in entries if e.problem]
    html = (
        environment()
        .get_template("runs.html")
        .render(version=__version__, generator=GENERATOR, **page_data(root, entries))
    )
    return write_output(page, html, "html")


def page_data(root: Path, entries: list[Entry]) -> dict[str, Any]:
    """What the template shows: the rows and which columns filter them."""
    rows = [asdict(e) | {"when": e.started[:16].replace("T", " ")} for e in entries]
    # One line per run, the main metric where the eye lands first; "problem" only when a
    # folder has one (an empty column is noise).
    names = ["folder", "study", "main metric", "best (95% CI)", "best configuration", "ok",
             "diverged", "failed", "kind", "when", "device", "torch", "title"]  # fmt: skip
    if any(e.problem for e in entries):
        names.append("problem")
    filters = []
    for key in ("study", "kind", "device"):
        choices = sorted({str(r[key]) for r in rows if r[key]})
        if len(choices) > 1:
            filters.append({"axis": key, "column": names.index(key), "choices": choices})
    return {
        "root": str(root),
        "rows": rows,
        "damaged": sum(1 for e in entries if e.problem),
        "filters": filters,
        "columns": list(enumerate(names)),
    }
