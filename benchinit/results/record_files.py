"""A results folder's record files, read with ``pyarrow.dataset``: chunks and compacted units.

``records/`` holds two kinds of *unit*, each a folder with one Parquet file per table:

- a **chunk** (``<time_ns>-<hex>``): one finished batch, written once by a run;
- a **compacted unit** (``compact-<time_ns>-<hex>``): the records of many chunks rewritten
  into one file per table (benchinit.results.compaction), each row with a ``_chunk`` column naming
  the chunk it came from, so the rule of which record counts (benchinit.results.freshness) reads
  them exactly as it read the chunks.

A compacted unit *covers* the chunks its runs table names. Readers take each chunk's
records from one place: the first compacted unit that covers it (by name), else the chunk
folder itself. So the moment between a compacted unit's rename into place and the
retirement of its chunks (or two compactions racing) duplicates nothing; a retired chunk
is renamed to a dot name (ignored) before it is deleted, so a half-deleted one is never
read. A unit that vanishes while it is being read (a compaction retired it) makes the read
start again from a fresh listing (:func:`retrying`).

Every table of every source is read in one ``pyarrow.dataset`` call, with only the columns
asked for: the schema is unified over the files (a later chunk may add a metric column, an
early one may hold a column as null).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from benchinit.errors import ResultsError
from benchinit.results import freshness
from benchinit.results.schema import LATER_TABLES, conform

COMPACT_PREFIX = "compact-"
CHUNK = "_chunk"  # a compacted row's chunk; readers' frames carry it too
RETIRED_PREFIX = ".retired-"
TRIES = 8

T = TypeVar("T")


class Vanished(Exception):
    """A unit disappeared while it was read: a compaction retired it. Read again."""


def corrupt(path: Path, records: Path, why: str) -> ResultsError:
    """The error for a record file that cannot be read as benchinit writes it."""
    return ResultsError(
        f"'{path}' is {why}. Its cells can be computed again: move the folder "
        f"'{path.parent}' out of '{records}' and run the study into this folder again"
    )


@dataclass(frozen=True)
class Snapshot:
    """The units of ``records`` at one moment, and where each chunk's records are read."""

    records: Path
    compacted: tuple[str, ...]  # compacted units that own at least one chunk, by name
    chunks: tuple[str, ...]  # chunk folders that no compacted unit covers, oldest first
    owner: dict[str, str]  # chunk -> the compacted unit it is read from
    listed: tuple[str, ...] = ()  # every unit listed, read or not (covered, redundant)

    @property
    def units(self) -> tuple[str, ...]:
        return (*self.compacted, *self.chunks)

    def files(self, table: str, units: Sequence[str] | None = None) -> list[Path]:
        names = self.units if units is None else units
        return [self.records / name / f"{table}.parquet" for name in names]


def list_units(records: Path) -> tuple[list[str], list[str]]:
    """(compacted units, chunks) in ``records``, each sorted by name (oldest first)."""
    try:
        names = sorted(p.name for p in records.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return [], []
    except NotADirectoryError:
        return [], []
    compacted = [n for n in names if n.startswith(COMPACT_PREFIX)]
    return compacted, [n for n in names if not n.startswith(COMPACT_PREFIX)]


def snapshot(records: Path) -> Snapshot:
    """List the units and read the compacted units' coverage (their runs' ``_chunk``)."""
    compacted, chunks = list_units(records)
    owner = _coverage(records, tuple(compacted)) if compacted else {}
    used = tuple(sorted(set(owner.values())))
    uncovered = tuple(c for c in chunks if c not in owner)
    return Snapshot(records, used, uncovered, owner, (*compacted, *chunks))


@functools.lru_cache(maxsize=256)
def _coverage(records: Path, compacted: tuple[str, ...]) -> dict[str, str]:
    """chunk -> the first of ``compacted`` that covers it. A unit never changes and its
    name is never reused, so this is read once per process for each set of units."""
    files = [records / name / "runs.parquet" for name in compacted]
    frame = read_files(files, records, [CHUNK], unit_column=True).to_pandas()
    owner: dict[str, str] = {}
    for chunk, unit in zip(frame[CHUNK], frame["_unit"], strict=True):
        owner.setdefault(chunk, unit)
    return owner


def retrying(records: Path, read: Callable[[Snapshot], T]) -> T:
    """``read`` of a fresh snapshot, again while a unit vanishes under it."""
    for _ in range(TRIES - 1):
        try:
            return read(snapshot(records))
        except Vanished:
            continue
    return read(snapshot(records))


def _vanished(files: Sequence[Path]) -> bool:
    return any(not f.parent.is_dir() for f in files)


def _culprit(files: Sequence[Path], records: Path) -> ResultsError:
    """The first unreadable file among ``files``, named (the slow path, on error only)."""
    for path in files:
        try:
            ds.dataset(str(path), format="parquet").to_table()
        except Exception as exc:  # pyarrow raises several types for damaged files
            if not path.parent.is_dir():
                raise Vanished(str(path)) from None
            return corrupt(path, records, f"corrupt or unreadable ({type(exc).__name__}: {exc})")
    return corrupt(files[0], records, "unreadable with the others")


def read_files(
    files: Sequence[Path],
    records: Path,
    columns: Sequence[str] | None = None,
    *,
    unit_column: bool = False,
) -> pa.Table:
    """``files`` as one table, one dataset call; ``columns`` (those present) only.

    ``unit_column`` adds ``_unit``, the folder each row came from (dictionary-encoded).
    Missing files raise :class:`Vanished` when their folder went, a ResultsError naming a
    damaged one.
    """
    if not files:
        return pa.table({})
    try:
        factory = ds.FileSystemDatasetFactory(
            pafs.LocalFileSystem(), [str(f) for f in files], ds.ParquetFileFormat()
        )
        schema = factory.inspect(promote_options="permissive", fragments=None)
        dataset = factory.finish(schema)
        wanted = schema.names if columns is None else [c for c in columns if c in schema.names]
        scanner = dataset.scanner(columns=wanted)
        batches, units, counts = [], [], []
        for tagged in scanner.scan_batches():
            batches.append(tagged.record_batch)
            units.append(Path(tagged.fragment.path).parent.name)
            counts.append(tagged.record_batch.num_rows)
        table = pa.Table.from_batches(batches, schema=scanner.projected_schema)
    except Exception as exc:
        if _vanished(files):
            raise Vanished(str(exc)) from None
        raise _culprit(files, records) from None
    if unit_column:
        indices = pa.array(np.repeat(np.arange(len(units), dtype=np.int32), counts))
        names = pa.DictionaryArray.from_arrays(indices, pa.array(units, type=pa.string()))
        table = table.append_column("_unit", names)
    return table


def read_table(
    snap: Snapshot,
    table: str,
    columns: Sequence[str] | None = None,
    *,
    units: Sequence[str] | None = None,
    missing_ok: bool = False,
) -> pa.Table:
    """``table`` of the records in ``snap`` (of ``units`` only, when given), with ``_chunk``
    (the record's chunk) and ``_unit`` (the folder it was read from), as Arrow.

    ``missing_ok``: a unit without the file (a table added later) contributes nothing.
    """
    files = snap.files(table, units)
    if missing_ok:
        files = [f for f in files if f.is_file()]
    wanted = None if columns is None else [*columns, CHUNK]
    read = read_files(files, snap.records, wanted, unit_column=True)
    if not read.num_columns:
        return pa.table({CHUNK: pa.array([], pa.string()), "_unit": pa.array([], pa.string())})
    unit = read["_unit"].cast(pa.string())
    compacted = pc.starts_with(unit, COMPACT_PREFIX)
    stored = read[CHUNK].cast(pa.string()) if CHUNK in read.column_names else unit
    chunk = pc.if_else(compacted, stored, unit)
    read = read.drop_columns([c for c in (CHUNK, "_unit") if c in read.column_names])
    read = read.append_column(CHUNK, chunk).append_column("_unit", unit)
    if snap.compacted:  # each chunk from one compacted unit only
        owned = pa.array([f"{u}/{c}" for c, u in snap.owner.items()], pa.string())
        key = pc.binary_join_element_wise(unit, chunk, "/")
        read = read.filter(pc.or_(pc.invert(compacted), pc.is_in(key, value_set=owned)))
    return read


def own(frame: pd.DataFrame, snap: Snapshot) -> pd.DataFrame:
    """The rows of ``frame`` (with ``_chunk`` and ``_unit``) read from where ``snap`` reads
    their chunk: a chunk covered by two compacted units counts once."""
    if not snap.compacted or frame.empty:
        return frame.reset_index(drop=True)
    from_compacted = frame["_unit"].str.startswith(COMPACT_PREFIX)
    owned = frame[CHUNK].map(snap.owner)
    return frame[~from_compacted | (owned == frame["_unit"])].reset_index(drop=True)


def statuses(runs: pd.DataFrame) -> pd.DataFrame:
    """``cell, status, code, chunk`` of run records read by :func:`read_table`."""
    frame = runs.reindex(columns=["cell", "status", "code", CHUNK])
    frame[["status", "code"]] = frame[["status", "code"]].astype(object).fillna("").astype(str)
    return frame.rename(columns={CHUNK: "chunk"})


def read_kept(
    snap: Snapshot, tables: Sequence[str], kept: pd.DataFrame | None
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Each of ``tables``, conformed, with the records ``kept`` (``cell, chunk``; default:
    the ones freshness keeps), and the kept records. No record at all: ``({}, kept)``."""
    runs = None
    if kept is None:
        runs = read_table(snap, "runs").to_pandas()
        kept = freshness.kept(statuses(runs))
    if kept.empty:
        return {}, kept
    keys = pa.array((kept["cell"].astype(str) + "\0" + kept["chunk"].astype(str)).tolist())
    out = {}
    for table in tables:
        if table == "runs" and runs is not None:
            frame = runs[runs["cell"].astype(str).isin(set(kept["cell"].astype(str)))]
            if not kept["cell"].is_unique or len(kept) != len(runs):
                key = frame["cell"].astype(str) + "\0" + frame[CHUNK].astype(str)
                frame = frame[key.isin(set(keys.to_pylist()))]
        else:
            read = read_table(snap, table, missing_ok=table in LATER_TABLES)
            if read.num_rows:
                cell = read["cell"].cast(pa.string())
                key = pc.binary_join_element_wise(cell, read[CHUNK], "\0")
                read = read.filter(pc.is_in(key, value_set=keys))
            frame = read.to_pandas()
        frame = frame.drop(columns=[CHUNK, "_unit"]).reset_index(drop=True)
        try:
            out[table] = conform(table, frame)
        except (KeyError, ValueError) as exc:
            path = snap.files(table)[0]
            why = f"not the {table} table benchinit writes: {exc}"
            raise corrupt(path, snap.records, why) from None
    return out, kept
