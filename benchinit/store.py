"""A results folder on disk: crash-safe, resumable, safe to share between runs.

Layout::

    DIR/meta.json                    the study, command, environment, plugins, current cells
    DIR/study.toml                   the resolved study (defaults filled in)
    DIR/records/<chunk>/<table>.parquet   one finished batch: runs, curves, layers, histograms
    DIR/locks/<cell>.lock            advisory locks of cells being computed

How the promises are kept:

- *Whole or nothing*: a chunk is written into ``records/.tmp-<random>/``, flushed, and then
  renamed into place; a directory rename is atomic, so ``kill -9`` at any moment leaves
  either the whole chunk or a ``.tmp-*`` folder that readers ignore (and a later run removes).
- *Never recomputed*: a cell whose record says ``ok`` or ``diverged`` is finished; a rerun
  skips it. ``failed`` cells are retried (the failure may have been transient).
- *Concurrent runs*: a run takes an exclusive ``flock`` on each cell before computing it and
  holds it until the cell's chunk is in place; another run skips cells it cannot lock and
  waits for them at the end. The kernel drops the locks of a killed process. Should two
  records of one cell exist anyway, readers keep one (a finished one, the newest).
- No pickle: Parquet and JSON only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pandas as pd

from benchinit.errors import ResultsError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs may duplicate work
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
FINISHED = ("ok", "diverged")
TABLES = ("runs", "curves", "layers", "histograms")
STALE_TMP_SECONDS = 3600


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (write a temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Store:
    """The records of a results folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = False) -> None:
        self.root = Path(root)
        self.records = self.root / "records"
        self.locks = self.root / "locks"
        if create:
            self.records.mkdir(parents=True, exist_ok=True)
            self.locks.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp()
        elif not self.root.is_dir():
            raise ResultsError(f"results folder '{self.root}' does not exist")
        self._held: dict[str, IO[Any]] = {}

    # --- writing ---------------------------------------------------------------------------

    def write(self, records: dict[str, pd.DataFrame]) -> Path:
        """Store one batch's tables as one chunk, atomically."""
        tmp = self.records / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        for table in TABLES:
            path = tmp / f"{table}.parquet"
            records[table].to_parquet(path, index=False)
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = self.records / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        os.rename(tmp, final)
        _fsync_dir(self.records)
        return final

    def write_meta(self, meta: dict[str, Any], study_toml: str) -> None:
        write_atomic(self.root / "study.toml", study_toml)
        write_atomic(self.root / "meta.json", json.dumps(meta, indent=2, default=str))

    def _remove_stale_tmp(self) -> None:
        for tmp in self.records.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    shutil.rmtree(tmp)

    # --- reading ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        path = self.root / "meta.json"
        if not path.is_file():
            raise ResultsError(f"'{self.root}' is not a benchinit results folder (no meta.json)")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(f"'{path}' is corrupt: {exc}") from None
        if meta.get("schema") != SCHEMA_VERSION:
            raise ResultsError(
                f"'{path}' has results schema {meta.get('schema')!r}; this benchinit reads "
                f"schema {SCHEMA_VERSION}"
            )
        return meta

    def chunks(self) -> list[Path]:
        """Finished chunks, oldest first."""
        if not self.records.is_dir():
            return []
        return sorted(
            p for p in self.records.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def _read(self, path: Path, columns: list[str] | None = None) -> pd.DataFrame:
        try:
            return pd.read_parquet(path, columns=columns)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ResultsError(f"'{path}' is corrupt or unreadable: {exc}") from None

    def statuses(self) -> pd.DataFrame:
        """``cell, status, chunk`` of every stored run record."""
        frames = []
        for chunk in self.chunks():
            frame = self._read(chunk / "runs.parquet", ["cell", "status"])
            frames.append(frame.assign(chunk=chunk.name))
        if not frames:
            return pd.DataFrame({"cell": [], "status": [], "chunk": []})
        return pd.concat(frames, ignore_index=True)

    def finished(self) -> set[str]:
        """Ids of cells with an ``ok`` or ``diverged`` record."""
        statuses = self.statuses()
        return set(statuses.loc[statuses["status"].isin(FINISHED), "cell"])

    def read(self) -> dict[str, pd.DataFrame]:
        """Every table, one record per cell: a finished one if any, else the newest."""
        statuses = self.statuses()
        if statuses.empty:
            return {}
        statuses["rank"] = statuses["status"].isin(FINISHED).astype(int)
        best = statuses.sort_values(["rank", "chunk"]).groupby("cell").tail(1)
        keep = best.groupby("chunk")["cell"].apply(set).to_dict()
        tables: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        for chunk_name, cells in keep.items():
            for table in TABLES:
                frame = self._read(self.records / chunk_name / f"{table}.parquet")
                tables[table].append(frame[frame["cell"].isin(cells)])
        return {t: pd.concat(frames, ignore_index=True) for t, frames in tables.items()}

    # --- claims ----------------------------------------------------------------------------

    def try_claim(self, cell_ids: Iterable[str]) -> list[str]:
        """Lock the cells no other run is computing; return those locked."""
        return [cid for cid in cell_ids if self._lock(cid, block=False)]

    def wait_claim(self, cell_id: str) -> None:
        """Block until the cell's lock is free, then hold it."""
        self._lock(cell_id, block=True)

    def release(self, cell_ids: Iterable[str] | None = None) -> None:
        """Drop the locks of these cells (of every held cell when None)."""
        for cid in list(self._held if cell_ids is None else cell_ids):
            handle = self._held.pop(cid, None)
            if handle is not None:
                handle.close()  # closing drops the flock

    def _lock(self, cell_id: str, *, block: bool) -> bool:
        if cell_id in self._held:
            return True
        if fcntl is None:
            return True
        handle = open(self.locks / f"{cell_id}.lock", "a+")  # noqa: SIM115 - held while locked
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        self._held[cell_id] = handle
        return True
