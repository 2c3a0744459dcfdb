"""A results folder on disk: crash-safe, resumable, safe to share between runs.

The store owns every file of a results folder; nothing else opens them::

    DIR/meta.json                    the study, command, environment, plugins, current cells
    DIR/study.toml                   the resolved study (defaults filled in)
    DIR/sections.json                report sections computed by plugins (shown by `report`)
    DIR/index.html                   the report
    DIR/summary.json                 what the index shows, written when a run ends
    DIR/records/<chunk>/<table>.parquet   one finished batch: runs, curves, layers, histograms,
                                     spectra; compact-*/: many chunks (benchinit.results.compaction)
    DIR/locks/run-<id>.lock          held (flock) by each live run
    DIR/locks/run-<id>.claims        the cells that run has claimed, one id per line
    DIR/locks/claims.lock            taken briefly (flock) while a run claims cells

How the promises are kept:

- *Whole or nothing*: a chunk is written into ``records/.tmp-<random>/``, flushed, and then
  renamed into place; a directory rename is atomic, so ``kill -9`` at any moment leaves
  either the whole chunk or a ``.tmp-*`` folder that readers ignore (and a later run removes).
  Every other file is replaced atomically the same way. A failed write (full disk, read-only
  folder) removes its temporary file and raises :class:`~benchinit.errors.OutputError`.
- *Never recomputed, never stale*: a cell whose kept record is ``ok`` or ``diverged`` and
  of the code this run computes it with (:meth:`Store.expect`) is finished; a rerun skips
  it, and retries the rest (benchinit.results.freshness has the rule).
- *Concurrent runs*: each run holds one ``flock`` on its own ``locks/run-<id>.lock`` for its
  lifetime. It claims cells under a brief lock of ``locks/claims.lock``: it reads the claims
  of every live run, takes the cells nobody live holds, and appends their ids to its own
  ``run-<id>.claims``. A run whose lock is free is dead (the kernel drops a killed process's
  locks): its claims are ignored. So a run holds two descriptors however many cells it
  claims, and a claim never outlives its run. After claiming, a run checks again that
  nobody finished the cell meanwhile.
- *Never someone else's files*: a folder that is neither new, empty nor a results folder is
  refused unless ``force`` is given, and even then no file benchinit would write may exist.
- No pickle: Parquet and JSON only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchinit.errors import BenchinitError, OutputError, ResultsError, os_reason
from benchinit.results import freshness, record_files
from benchinit.results.meta import SCHEMA_VERSION, Meta, check_meta
from benchinit.results.record_files import CHUNK
from benchinit.results.schema import COLUMNS, LATER_TABLES, TABLES, conform

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs may duplicate work
    fcntl = None  # type: ignore[assignment]

__all__ = ["SCHEMA_VERSION", "Store", "write_atomic"]

STALE_TMP_SECONDS = 3600
# Files and folders benchinit writes into a results folder; with force it still never
# replaces one of these that it did not write.
OWN_NAMES = (
    "meta.json", "study.toml", "sections.json", "summary.json", "index.html", "records", "locks"
)  # fmt: skip


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with ``text`` in one step (write a temporary file, then rename).

    Raises OutputError with the operating system's reason when it cannot be written; the
    temporary file is removed then.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "it is a folder; name a file")
    if not path.parent.is_dir():
        raise OutputError(path, f"the folder '{path.parent}' does not exist")
    # at most 220 bytes: a name near the 255-byte limit still gets a temporary sibling
    stem = os.fsencode(path.name)[:200].decode(errors="ignore")
    tmp = path.with_name(f".{stem}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(path, os_reason(exc)) from None
    return path


def read_text(path: Path) -> str:
    """A results file's text; a ResultsError naming it when unreadable or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ResultsError(f"'{path}' is damaged: it is not UTF-8 text") from None
    except OSError as exc:
        raise ResultsError(f"cannot read '{path}': {os_reason(exc)}") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"'{path}' is corrupt: {exc}") from None
    except RecursionError:
        raise ResultsError(f"'{path}' is corrupt: its JSON is nested too deeply") from None


class Store:
    """The files of one results folder (see the module docstring)."""

    def __init__(
        self, root: str | os.PathLike[str], *, create: bool = False, force: bool = False
    ) -> None:
        """Open a results folder; ``create`` makes it (see :meth:`_check_ownership`)."""
        self.root = Path(root)
        self.records = self.root / "records"
        self.locks = self.root / "locks"
        self.run_id = uuid.uuid4().hex[:16]
        self._run_lock: Any = None
        self._claimed: set[str] = set()
        self._statuses: dict[str, pd.DataFrame] = {}  # unit -> its runs' cell, status, code
        self._codes: dict[str, str] = {}  # cell -> the code this run computes it with
        if create:
            self._check_ownership(force)
            try:
                self.records.mkdir(parents=True, exist_ok=True)
                self.locks.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(self.root, os_reason(exc)) from None
            self._remove_stale_tmp()
        elif self.root.exists() and not self.root.is_dir():
            raise ResultsError(f"'{self.root}' is a file, not a benchinit results folder")
        elif not self.root.is_dir():
            raise ResultsError(f"results folder '{self.root}' does not exist")

    # --- paths -----------------------------------------------------------------------------

    @property
    def meta_path(self) -> Path:
        return self.root / "meta.json"

    @property
    def study_path(self) -> Path:
        return self.root / "study.toml"

    @property
    def sections_path(self) -> Path:
        return self.root / "sections.json"

    @property
    def report_path(self) -> Path:
        return self.root / "index.html"

    def is_results_folder(self) -> bool:
        """Made by benchinit: a valid ``meta.json``, or only ``records/``, ``locks/`` and our
        temporary files (a run starting: it writes ``meta.json`` before anything else)."""
        try:
            check_meta(json.loads(self.meta_path.read_text(encoding="utf-8")), "")
            return True
        except (OSError, ValueError, RecursionError, ResultsError):
            pass
        try:
            names = {p.name for p in self.root.iterdir()}
            entries = {n for n in names if not (n[0] == "." and n.endswith(".tmp"))}
        except OSError:
            return False
        return bool(entries) and entries <= {"records", "locks"} and self.records.is_dir()

    def _check_ownership(self, force: bool) -> None:
        """Refuse a folder that holds files benchinit did not write (see the module doc)."""
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(self.root, "it is a file, not a folder")
        if not self.root.exists() or self.is_results_folder():
            return
        try:
            entries = sorted(p.name for p in self.root.iterdir())
        except OSError as exc:
            raise OutputError(self.root, os_reason(exc)) from None
        if not entries:
            return
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        if not force:
            raise BenchinitError(
                f"'{self.root}' is not empty and is not a benchinit results folder (it holds "
                f"{shown}); choose a new or empty folder, or allow adding results beside its "
                "files with {force}",
                options={"force": "force=True"},
            )
        clashes = [name for name in OWN_NAMES if (self.root / name).exists()]
        if clashes:
            raise BenchinitError(
                f"'{self.root}' holds {', '.join(clashes)}, which benchinit did not write and "
                "never replaces; choose another folder"
            )

    # --- writing ---------------------------------------------------------------------------

    def write(self, records: dict[str, pd.DataFrame]) -> Path:
        """Store one batch's tables as one chunk, atomically."""
        tmp = self.records / f".tmp-{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            for table in TABLES:
                path = tmp / f"{table}.parquet"
                frame = records.get(table)
                if frame is None and table in LATER_TABLES:  # a writer that predates it
                    frame = conform(table, pd.DataFrame(columns=list(COLUMNS[table])))
                if frame is None:
                    raise ValueError(f"records lack the {table} table")
                frame.to_parquet(path, index=False)
                with open(path, "rb+") as f:
                    os.fsync(f.fileno())
            _fsync_dir(tmp)
            final = self.records / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OutputError(self.records, os_reason(exc)) from None
        _fsync_dir(self.records)
        return final

    def write_meta(self, meta: Meta, study_toml: str) -> None:
        write_atomic(self.meta_path, json.dumps(meta, indent=2, default=str))
        write_atomic(self.study_path, study_toml)

    def write_sections(self, sections: list[dict[str, Any]]) -> None:
        write_atomic(self.sections_path, json.dumps(sections, indent=1))

    def _remove_stale_tmp(self) -> None:
        for tmp in self.records.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    shutil.rmtree(tmp)

    # --- reading ---------------------------------------------------------------------------

    def meta(self) -> Meta:
        """``meta.json``, validated (a ResultsError naming the file and key when damaged)."""
        if not self.meta_path.is_file():
            raise ResultsError(f"'{self.root}' is not a benchinit results folder (no meta.json)")
        return check_meta(read_json(self.meta_path), str(self.meta_path))

    def study_toml(self) -> str:
        """The resolved study as saved ("" when the file is missing)."""
        return read_text(self.study_path) if self.study_path.is_file() else ""

    def read_sections(self) -> list[dict[str, Any]] | None:
        """The stored plugin sections, shape-checked; None when there is no file.

        The report validates their content (figures, text) exactly like fresh sections.
        """
        if not self.sections_path.is_file():
            return None
        sections = read_json(self.sections_path)
        if not isinstance(sections, list) or not all(
            isinstance(s, dict) and isinstance(s.get("title"), str) for s in sections
        ):
            raise ResultsError(
                f"'{self.sections_path}' is damaged: expected a list of sections, each an "
                "object with a string 'title'"
            )
        return sections

    def chunks(self) -> list[Path]:
        """Finished chunks, then compacted units (benchinit.results.record_files), oldest first."""
        found = self.records.iterdir() if self.records.is_dir() else ()
        return sorted(p for p in found if p.is_dir() and not p.name.startswith("."))

    def statuses(self) -> pd.DataFrame:
        """``cell, status, code, chunk`` of every stored run record (``code`` may be ""); a
        unit never changes, so a Store reads each once: a run reads only the new ones."""
        return record_files.retrying(self.records, self._statuses_of)

    def _statuses_of(self, snap: record_files.Snapshot) -> pd.DataFrame:
        new = [u for u in snap.units if u not in self._statuses]
        if new:
            read = record_files.read_table(snap, "runs", ["cell", "status", "code"], units=new)
            read = read.to_pandas().reindex(columns=["cell", "status", "code", CHUNK, "_unit"])
            read[["status", "code"]] = read[["status", "code"]].astype(object).fillna("")
            self._statuses |= {u: read[read["_unit"] == u] for u in new}  # empty ones too
        frames = [self._statuses[u] for u in snap.units]
        if not sum(len(f) for f in frames):
            return pd.DataFrame({"cell": [], "status": [], "code": [], "chunk": []})
        both = record_files.own(pd.concat(frames, ignore_index=True), snap)
        return both.drop(columns="_unit").rename(columns={CHUNK: "chunk"})

    def expect(self, codes: Mapping[str, str]) -> None:
        """The code this run computes each of these cells with (``{cell: code}``)."""
        self._codes.update(codes)

    def finished(self) -> set[str]:
        """Cells whose kept record is ``ok`` or ``diverged`` and of the expected code."""
        return freshness.finished(freshness.kept(self.statuses()), self._codes)

    def read(
        self, tables: Sequence[str] = TABLES, kept: pd.DataFrame | None = None
    ) -> dict[str, pd.DataFrame]:
        """The ``tables`` (default all), one record per cell: the one readers keep
        (benchinit.results.freshness), or the records in ``kept`` (``cell, chunk``: see
        :meth:`read_kept`). Each table is one read; no record at all gives ``{}``."""
        return self.read_kept(tables, kept)[0]

    def read_kept(
        self, tables: Sequence[str] = TABLES, kept: pd.DataFrame | None = None
    ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
        """:meth:`read`, and the records it kept (``cell, status, code, chunk``)."""
        return record_files.retrying(
            self.records, lambda snap: record_files.read_kept(snap, tables, kept)
        )

    # --- claims ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[Store]:
        """Hold this run's lock while inside; its claims end with it."""
        if fcntl is None:
            yield self
            return
        path = self._run_file("lock")
        try:  # made and locked under the claims lock: a probe never sees it unlocked
            with open(self.locks / "claims.lock", "a+") as guard:
                fcntl.flock(guard, fcntl.LOCK_EX)
                self._run_lock = open(path, "a+")  # noqa: SIM115 - held for the run
                fcntl.flock(self._run_lock, fcntl.LOCK_EX)
        except OSError as exc:
            raise OutputError(path, os_reason(exc)) from None
        try:
            yield self
        finally:
            self._claimed.clear()
            with contextlib.suppress(OSError):
                self._run_file("claims").unlink()
            self._run_lock.close()
            self._run_lock = None
            with contextlib.suppress(OSError):
                path.unlink()

    def _run_file(self, suffix: str, run_id: str | None = None) -> Path:
        return self.locks / f"run-{run_id or self.run_id}.{suffix}"

    def _live_claims(self) -> set[str]:
        """Cells claimed by other runs that still hold their locks (dead runs cleaned up)."""
        claimed: set[str] = set()
        for lock in self.locks.glob("run-*.lock"):
            run_id = lock.name[len("run-") : -len(".lock")]
            if run_id == self.run_id:
                continue
            try:
                handle = open(lock, "a+")  # noqa: SIM115 - a probe, closed below
            except OSError:
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # alive: its claims stand
                    with contextlib.suppress(OSError):
                        claimed.update(self._run_file("claims", run_id).read_text().split())
                    continue
            for suffix in ("claims", "lock"):  # dead: its files go
                with contextlib.suppress(OSError):
                    self._run_file(suffix, run_id).unlink()
        return claimed

    def claim_all(self, cell_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """Claim the cells no other live run holds: (claimed by this run, held by others),
        each in the given order. Must be called inside :meth:`running`."""
        ids = list(cell_ids)
        if fcntl is None or self._run_lock is None:
            self._claimed.update(ids)
            return ids, []
        with open(self.locks / "claims.lock", "a+") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            taken = self._live_claims()
            mine = [cid for cid in ids if cid not in taken]
            new = [cid for cid in mine if cid not in self._claimed]
            if new:
                with open(self._run_file("claims"), "a", encoding="ascii") as f:
                    f.write("".join(f"{cid}\n" for cid in new))
                    f.flush()
                self._claimed.update(new)
        return mine, [cid for cid in ids if cid in taken]
