"""Where a command may write a page or file it produces, and how: one rule for the report,
compare, history and index pages and for ``--json`` and ``--markdown``.

- A results folder's own files (``meta.json``, ``study.toml``, ``sections.json``, anything
  under ``records/`` or ``locks/``, and ``index.html``, which is the report's) are never
  the target of another output.
- An existing file is replaced only if benchinit wrote it: its first 4 KB carry the mark of
  its format (HTML: ``<meta name="generator" content="benchinit…">``; JSON: a
  ``"generator": "benchinit …"`` key; Markdown: a ``### benchinit`` heading). A user's
  ``notes.txt`` or ``compare.html`` is never overwritten, whatever the option names.
- A symbolic link is followed: the file it points to is written, the link stays a link.
- A target that is not a regular file (a terminal, a pipe) or that names one of this
  process's streams (``/dev/stdout``, ``/dev/fd/1``, anything under ``/dev/`` or
  ``/proc/``) is written into directly, so ``--json /dev/stdout`` prints the JSON, also when
  the shell sends standard output to a file.
- An empty file holds nothing to lose (``mktemp``): it may be replaced.
- Anything else is replaced in one step (:func:`benchinit.results.store.write_atomic`).
- An output that is only ever added to (``$GITHUB_STEP_SUMMARY``, ``append=True``) is
  appended to in place, never swapped for a new file: any file may be added to (nothing
  in it is lost), except a results folder's own and a page or JSON file benchinit wrote
  (it would no longer parse); links are followed, pipes and devices
  written into (``/dev/full`` is a write error, exit 2); it starts on a line of its own;
  an append that fails is cut back off, so the file is left as it was.

Refusals are :class:`~benchinit.errors.BenchinitError` (exit 2) naming the path and how to
go on; write failures :class:`~benchinit.errors.OutputError`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Literal, TextIO

from benchinit.errors import BenchinitError, OutputError, os_reason
from benchinit.results.store import OWN_NAMES, write_atomic

Format = Literal["html", "json", "markdown"]

MARKS: dict[str, str] = {
    "html": '<meta name="generator" content="benchinit',
    "json": '"generator": "benchinit',
    "markdown": "### benchinit",
}
FORMATS: tuple[Format, ...] = ("html", "json", "markdown")
ARTICLES = {"html": "an HTML", "json": "a JSON", "markdown": "a Markdown"}
HEAD = 4096  # how much of an existing file is read to find benchinit's mark
DATA = ("records", "locks")  # a results folder's subfolders: nothing else is written there


def _results_folder_part(path: Path, report: str | os.PathLike[str] | None) -> Path | None:
    """The results folder ``path`` belongs to as one of its own files, if it does (the
    report page of folder ``report`` excepted)."""
    if (path.parent / "meta.json").is_file() and path.name in OWN_NAMES:
        mine = report is not None and path.parent.resolve() == Path(report).resolve()
        if not (mine and path.name == "index.html"):
            return path.parent
    for parent in path.parents:
        if parent.name in DATA and (parent.parent / "meta.json").is_file():
            return parent.parent
    return None


def written_by_benchinit(path: Path, fmt: Format) -> bool:
    """Whether the existing file ``path`` carries benchinit's mark for ``fmt``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(HEAD)
    except OSError:
        return False
    return MARKS[fmt] in head


def check_output(
    path: str | os.PathLike[str],
    fmt: Format,
    *,
    report: str | os.PathLike[str] | None = None,
    append: bool = False,
) -> Path:
    """The file to write for ``path`` (symbolic links followed), or a BenchinitError when
    the rule above forbids it. ``report``: the results folder whose report this page is
    (its ``index.html`` may be replaced); ``append``: the output is added to the file's
    end, so a file benchinit did not write may take it."""
    given = Path(path)
    if _special(given):
        return given
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    if target.is_dir():
        raise OutputError(given, "it is a folder; name a file")
    folder = _results_folder_part(target.absolute(), report)
    if folder is not None:
        raise BenchinitError(
            f"'{given}' is part of the results folder '{folder}' and is never replaced by "
            "another output; write it elsewhere"
        )
    broken = [f for f in FORMATS if append and f != fmt and written_by_benchinit(target, f)]
    if broken:  # a page or JSON file that other text added to would no longer parse
        raise BenchinitError(
            f"'{given}' is {ARTICLES[broken[0]]} file benchinit wrote, and {fmt} added to its "
            "end would break it; write it elsewhere"
        )
    if (
        not append
        and target.is_file()
        and target.stat().st_size
        and not written_by_benchinit(target, fmt)
    ):
        raise BenchinitError(
            f"'{given}' exists and was not written by benchinit (no benchinit {fmt} mark in "
            "it); it is never replaced. Remove it, or write elsewhere"
        )
    return target


def _special(path: Path) -> bool:
    """Whether ``path`` is written into rather than replaced: it names a stream of this
    process (under ``/dev/`` or ``/proc/``) or exists (links followed) as neither a file
    nor a folder (a pipe)."""
    if path.absolute().parts[1:2] in (("dev",), ("proc",)):
        return True
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _own_stream(path: Path) -> TextIO | None:
    """``sys.stdout`` or ``sys.stderr`` when ``path`` is that stream's file (``/dev/stdout``,
    ``/dev/fd/2``, or the file the shell sent it to), else None."""
    try:
        found = path.stat()
    except OSError:
        return None
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = os.fstat(stream.fileno())
        except (AttributeError, OSError, ValueError):  # replaced or closed streams
            continue
        if (fd.st_dev, fd.st_ino) == (found.st_dev, found.st_ino):
            return stream
    return None


def write_output(
    path: str | os.PathLike[str],
    text: str,
    fmt: Format,
    *,
    report: str | os.PathLike[str] | None = None,
    append: bool = False,
) -> Path:
    """Write a command's page or file under the rule above (``append``: add ``text`` to
    the end of the file); return the path given. Every output of every command is written
    here."""
    target = check_output(path, fmt, report=report, append=append)
    special = _special(target)  # /dev/stdout, a pipe: written into, never replaced
    if special or append:
        _write_into(target, text, path, regular=not special)
    else:
        write_atomic(target, text)
    return Path(path)


def _write_into(target: Path, text: str, given: str | os.PathLike[str], *, regular: bool) -> None:
    """Add ``text`` to the end of ``target`` in place. A regular file that does not end a
    line gets one first, and is cut back to its old length if the write fails."""
    try:
        stream = _own_stream(target)
        if stream is not None:  # through Python's stream: keeps order with print()
            stream.write(text)
            stream.flush()
            return
        # a stream or device is never made: a name under /dev/ that is not there is an error
        flags = os.O_APPEND | (os.O_RDWR | os.O_CREAT if regular else os.O_WRONLY)
        fd = os.open(target, flags, 0o666)
    except OSError as exc:
        raise OutputError(given, os_reason(exc)) from None
    start = 0
    try:
        data = text.encode("utf-8")
        if regular:
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":
                data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if regular:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
        raise OutputError(given, os_reason(exc)) from None
    finally:
        os.close(fd)


STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def step_summary() -> str | None:
    """The file ``$GITHUB_STEP_SUMMARY`` names (GitHub Actions shows it on the job's page);
    None when unset or empty."""
    return os.environ.get(STEP_SUMMARY) or None


def check_distinct(**paths: str | os.PathLike[str] | None) -> None:
    """Refuse two outputs of one command that name the same file (the second would replace
    the first); ``paths`` maps each option's name to its value."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None or str(path) == "" or _special(Path(path)):
            continue  # two outputs may both go to /dev/stdout
        key = Path(path).resolve()
        if key in seen:
            raise BenchinitError(
                f"{seen[key]} and {option} name the same file '{path}'; give each its own"
            )
        seen[key] = option


def check_verdict_outputs(
    page: str | os.PathLike[str],
    json_out: str | os.PathLike[str] | None,
    markdown_out: str | os.PathLike[str] | None,
) -> None:
    """Before compare or history computes anything: its page, ``--json``, ``--markdown``
    and the step summary may be written, and name different files."""
    summary = step_summary()
    check_distinct(
        **{
            "the page (--out)": page,
            "--json": json_out,
            "--markdown": markdown_out,
            f"${STEP_SUMMARY}": summary,
        }
    )
    check_output(page, "html")
    if json_out:
        check_output(json_out, "json")
    if markdown_out:
        check_output(markdown_out, "markdown")
    if summary:
        check_output(summary, "markdown", append=True)
