"""Report sections added by plugins (``benchinit_report_sections``): called, checked,
capped, stored in ``sections.json`` and shown.

A section reaches the page by one path whether it is fresh (``benchinit run`` calls the
plugins) or stored (``benchinit report DIR`` reads ``sections.json``, which anyone could
have edited): :func:`fresh` turns a plugin's answer into the stored form, and
:func:`checked` validates the stored form, so a stored section gets exactly the checks a
fresh one gets.

- The shape must be right (a title, text, table and figure of the documented types); a
  stored file that is not is damaged: a ResultsError naming it (exit 2).
- The content is made safe and small, with a note on the page saying what was done: a
  figure that is not an embedded image (``data:image/...;base64``) is left out (an http
  address would be fetched when the page opens; a ``javascript:`` one is worse); tables
  show at most ``MAX_ROWS`` rows and ``MAX_COLUMNS`` columns, cells at most
  ``MAX_CELL_CHARS`` characters, text at most ``MAX_TEXT_CHARS``, so one plugin cannot
  make a report of many megabytes. Numbers are formatted like the report's (never ``-0``).

Cleaning is idempotent: a section cleaned when run, stored and cleaned again when reported
is the same section, so ``report`` rewrites the page ``run`` wrote byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchinit.errors import ResultsError, plugin_failed
from benchinit.plugins.descriptors import ReportSection
from benchinit.plugins.guard import plugin_code
from benchinit.report.templating import DATA_IMAGE, cell

MAX_ROWS = 1000
MAX_COLUMNS = 50
MAX_CELL_CHARS = 1000
MAX_TEXT_CHARS = 50_000
MAX_TITLE_CHARS = 300
MAX_FIGURE_CHARS = 4_000_000  # a data URI of about 3 MB


def call_plugins(registry: Any, results: Any) -> list[dict[str, Any]]:
    """Every plugin's sections, in the stored form; a plugin that raises or exits (even
    with ``os._exit``) gets a section saying so (the report is still written)."""
    sections: list[dict[str, Any]] = []
    for impl in registry.hook().benchinit_report_sections.get_hookimpls():
        info = registry.plugins[impl.plugin_name]
        source = info.describe()
        try:
            with plugin_code():  # reading what it returned runs its code too (str, iter)
                made = [fresh(s, source) for s in impl.function(results=results) or ()]
        except BaseException as exc:  # a broken plugin section (os._exit too) is reported
            if not plugin_failed(exc):
                raise
            failed = ReportSection(
                f"{info.name}: section failed", text=f"`{type(exc).__name__}: {exc}`"
            )
            made = [fresh(failed, source)]
        sections.extend(made)
    return sections


def fresh(section: Any, source: str) -> dict[str, Any]:
    """A plugin's answer in the stored form (capped; see the module docstring)."""
    if not isinstance(section, ReportSection):
        return _clean(
            {
                "title": f"invalid section from {source}",
                "source": source,
                "text": f"expected ReportSection, got {type(section).__name__}",
            }
        )
    notes = []
    table = None
    if section.table is not None:
        try:
            frame = (
                section.table
                if isinstance(section.table, pd.DataFrame)
                else pd.DataFrame(section.table)
            )
            table = _table(frame)
        except Exception as exc:
            notes.append(f"the table was left out: {type(exc).__name__}: {exc}")
    return _clean(
        {
            "title": str(section.title),
            "source": source,
            "text": str(section.text or ""),
            "table": table,
            "figure": section.figure if isinstance(section.figure, str) else "",
            "notes": notes,
        }
    )


def _table(frame: pd.DataFrame) -> dict[str, Any]:
    shown = frame.iloc[:MAX_ROWS, :MAX_COLUMNS]
    return {
        "columns": [str(c) for c in shown.columns],
        "rows": [[cell(v) for v in row] for row in shown.astype(object).to_numpy().tolist()],
        "total_rows": len(frame),
        "total_columns": len(frame.columns),
    }


def checked(sections: list[dict[str, Any]], where: str | Path) -> list[dict[str, Any]]:
    """Stored sections validated and cleaned; a ResultsError naming ``where`` when one has
    the wrong shape."""
    return [_clean(_shape(section, i, where)) for i, section in enumerate(sections, start=1)]


def _shape(section: dict[str, Any], index: int, where: str | Path) -> dict[str, Any]:
    def damaged(what: str) -> ResultsError:
        return ResultsError(f"'{where}' is damaged: section {index}: {what}")

    for key in ("title", "source", "text", "figure"):
        if not isinstance(section.get(key, ""), str):
            raise damaged(f"'{key}' must be a string")
    notes = section.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise damaged("'notes' must list strings")
    table = section.get("table")
    if table is not None:
        if not isinstance(table, dict):
            raise damaged("'table' must be an object with 'columns' and 'rows'")
        columns, rows = table.get("columns"), table.get("rows")
        if not isinstance(columns, list) or not isinstance(rows, list):
            raise damaged("'table' must have lists 'columns' and 'rows'")
        if not all(isinstance(row, list) for row in rows):
            raise damaged("every row of 'table' must be a list")
        for key in ("total_rows", "total_columns"):
            if not isinstance(table.get(key, 0), int):
                raise damaged(f"'table.{key}' must be an integer")
    return section


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _clean(section: dict[str, Any]) -> dict[str, Any]:
    notes = list(section.get("notes", []))
    text = section.get("text", "")
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        notes.append(f"the text was cut at {MAX_TEXT_CHARS:,} characters")
    figure = section.get("figure", "")
    if figure and (len(figure) > MAX_FIGURE_CHARS or not DATA_IMAGE.match(figure)):
        notes.append(
            "the figure was left out: only embedded images (data:image/...;base64) of at "
            f"most {MAX_FIGURE_CHARS:,} characters are shown"
        )
        figure = ""
    table = section.get("table")
    if table is not None:
        table = _clean_table(table, notes)
    return {
        "title": _clip(section["title"], MAX_TITLE_CHARS),
        "source": _clip(section.get("source", ""), MAX_TITLE_CHARS),
        "text": text,
        "table": table,
        "figure": figure,
        "notes": list(dict.fromkeys(notes)),
    }


def _clean_table(table: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    rows = table["rows"][:MAX_ROWS]
    columns = [_clip(str(c), MAX_CELL_CHARS) for c in table["columns"][:MAX_COLUMNS]]
    total_rows = max(table.get("total_rows", 0), len(table["rows"]))
    total_columns = max(table.get("total_columns", 0), len(table["columns"]))
    width = len(columns)
    if total_rows > len(rows):
        notes.append(f"showing the first {len(rows):,} of {total_rows:,} rows")
    if total_columns > width:
        notes.append(f"showing the first {width:,} of {total_columns:,} columns")
    return {
        "columns": columns,
        "rows": [
            [_clip(v if isinstance(v, str) else cell(v), MAX_CELL_CHARS) for v in row[:width]]
            for row in rows
        ],
        "total_rows": total_rows,
        "total_columns": total_columns,
    }
