"""Compaction: a results folder's chunks rewritten into one Parquet file per table.

A run stores one chunk per batch (benchinit.results.store), so a 600-cell folder holds hundreds of
small files, and every reader pays per file. When a run ends (and on ``benchinit report`` or
``benchinit compact`` for older folders) the units of ``records/`` are merged into one
compacted unit (benchinit.results.record_files), in steps that each leave a readable folder:

1. **write**: every table of every unit, each record with its chunk's name (``_chunk``),
   into ``records/.tmp-<random>/``, flushed; readers ignore dot names.
2. **place**: rename it to ``records/compact-<time>-<random>`` (atomic). From here readers
   take the merged chunks from it and ignore their old folders.
3. **retire**: rename each merged unit to ``records/.retired-<name>`` (atomic), then delete
   it. A kill between the two leaves a dot folder that the next compaction deletes.

A kill at any step loses nothing and duplicates nothing; the next compaction finishes the
work. Records are copied as stored, every record of every code and status, so the rule of
which record counts (benchinit.results.freshness) and every table read from the folder are the same
after compaction as before. One compaction at a time per folder (``locks/compact.lock``);
a run still writing chunks meanwhile is not disturbed: its chunks wait for the next one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq

from benchinit.errors import OutputError, os_reason
from benchinit.results import record_files
from benchinit.results.record_files import COMPACT_PREFIX, RETIRED_PREFIX
from benchinit.results.schema import LATER_TABLES, TABLES
from benchinit.results.store import Store, _fsync_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; readers still count each chunk once
    fcntl = None  # type: ignore[assignment]

# Where a test's hook is called: after the new unit is written, after it is placed, after
# each old unit is renamed away and after each is deleted.
STEPS = ("written", "placed", "retired", "deleted")
Hook = Callable[[str], None]


@contextlib.contextmanager
def _exclusive(store: Store) -> Iterator[bool]:
    """Whether this process may compact now (no other compaction holds the folder)."""
    if fcntl is None:
        yield True
        return
    store.locks.mkdir(exist_ok=True)
    with open(store.locks / "compact.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _clear_retired(records: Path) -> None:
    for leftover in records.glob(f"{RETIRED_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _write(snap: record_files.Snapshot, records: Path, hook: Hook) -> Path:
    """Steps 1 and 2: the merged unit, written and placed."""
    tmp = records / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        for table in TABLES:
            read = record_files.read_table(snap, table, missing_ok=table in LATER_TABLES)
            path = tmp / f"{table}.parquet"
            pq.write_table(read.drop_columns(["_unit"]), path)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        hook("written")
        final = records / f"{COMPACT_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(records)
    hook("placed")
    return final


def _retire(records: Path, names: list[str], hook: Hook) -> None:
    """Step 3: each merged unit renamed away, then deleted."""
    for name in names:
        gone = records / f"{RETIRED_PREFIX}{name}"
        os.rename(records / name, gone)
        hook("retired")
        shutil.rmtree(gone)
        hook("deleted")
    _fsync_dir(records)


def compact(path: str | os.PathLike[str], *, hook: Hook | None = None) -> Path | None:
    """Merge the units of a results folder's ``records/`` into one; return it, or None
    when there was nothing to merge or another process is compacting the folder.

    ``hook(step)`` is called after each step (:data:`STEPS`): tests end the process there.
    Raises ResultsError for a damaged record file (nothing is changed then), OutputError
    when the folder cannot be written.
    """
    store = Store(path)
    records = store.records
    call = hook or (lambda step: None)
    if not records.is_dir():
        return None
    try:
        with _exclusive(store) as mine:
            if not mine:
                return None
            _clear_retired(records)
            snap = record_files.snapshot(records)  # one listing: a chunk stored after it waits
            redundant = [n for n in snap.listed if n not in snap.units]
            merged: Path | None = None
            if len(snap.units) > 1:
                merged = _write(snap, records, call)
                redundant += list(snap.units)
            _retire(records, redundant, call)
            return merged
    except OSError as exc:
        raise OutputError(records, os_reason(exc)) from None
