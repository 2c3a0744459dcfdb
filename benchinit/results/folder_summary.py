"""A results folder's summary (``summary.json``): what the index lists, without the records.

Written when a run ends, after compaction (and by ``benchinit report`` and ``benchinit
compact`` for older folders): the cells by status, the study's main metric, and its best
configuration with mean and interval, exactly as :func:`summarize` computes them from the
tables. ``benchinit index`` reads ``meta.json`` and this file instead of the records (one
small file per folder instead of every table).

A summary counts only while it describes the folder as it is: it names the run it was
written after (``meta.json``'s ``started``) and the record units it was computed from
(benchinit.results.record_files). Another run into the folder, or one still going, adds a unit,
and readers then fall back to the runs table (:func:`read_summary` returns None).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from benchinit.errors import OutputError
from benchinit.metrics import metric_info
from benchinit.results import compaction, record_files
from benchinit.results.meta import Meta
from benchinit.results.store import Store, write_atomic
from benchinit.results.tables import Results, load_results

VERSION = 1
NAME = "summary.json"


def summarize(results: Results) -> dict[str, Any]:
    """Cells by status, the main metric, the best configuration (``axis=value, ...`` over
    the axes that vary) with its mean, interval and seeds; no best when nothing finished."""
    summary = results.summary()
    row: dict[str, Any] = {
        "counts": results.counts(),
        "metric": metric_info(results.metric, results.study["kind"]).name,
        "best": "",
        "mean": None,
        "low": None,
        "high": None,
        "seeds": 0,
    }
    best = summary.dropna(subset=["mean"]).head(1).to_dict("records")
    if best:
        top = best[0]
        axes = results.varying or results.axes
        row["best"] = ", ".join(f"{a}={top[a]}" for a in axes)
        row["mean"], row["low"], row["high"] = (
            _number(top[k]) for k in ("mean", "ci_low", "ci_high")
        )
        row["seeds"] = int(top["seeds"])
    return row


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _units(store: Store) -> list[str]:
    compacted, chunks = record_files.list_units(store.records)
    return [*compacted, *chunks]


def write_summary(path: str | os.PathLike[str], results: Results | None = None) -> None:
    """Write ``summary.json`` of the folder as it is now (``results``: already loaded)."""
    store = Store(path)
    units = _units(store)
    results = results if results is not None else load_results(path)
    body = {"version": VERSION, "started": results.meta["started"], "units": units}
    write_atomic(store.root / NAME, json.dumps(body | summarize(results), indent=1))


def read_summary(path: str | os.PathLike[str], meta: Meta) -> dict[str, Any] | None:
    """The folder's summary while it describes the folder as it is (see the module doc),
    else None (missing, damaged, of another run, or records added since)."""
    store = Store(path)
    try:
        body = json.loads((store.root / NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("version") != VERSION:
        return None
    if body.get("started") != meta["started"] or body.get("units") != _units(store):
        return None
    counts = body.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        return None
    return body


def settle(path: str | os.PathLike[str], *, writable_only: bool = False) -> None:
    """Compact the folder's records and write its summary (when a run ends, on ``report``
    and ``compact``). ``writable_only``: a folder that cannot be written is left as it is
    (a report of a read-only folder still reads it)."""
    try:
        compaction.compact(path)
        meta = Store(path).meta()
        if read_summary(path, meta) is None:
            write_summary(path)
    except OutputError:
        if not writable_only:
            raise
