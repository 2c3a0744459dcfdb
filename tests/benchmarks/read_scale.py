"""The read side at scale (issue 26): load_results, index, history and compare against what
Parquet itself costs. Prints times and ratios; asserts nothing.

Targets (ratios, so they hold on any machine):
- load_results of a 600-cell folder (6 configurations x 100 seeds, 75 chunks, 375 files)
  within 2x of reading the same files with pyarrow.dataset, before and after compaction;
- index over 200 such folders under 0.05 s per folder;
- history over 30 folders and compare of two within 2x of load_results of their runs tables.
Also a 10,000-cell folder: load time and peak memory (of a fresh process), before and after
compaction.

    python tests/benchmarks/read_scale.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

import pyarrow.dataset as ds
from synthetic import write_signal

from benchinit import load_results
from benchinit.gate.compare import compare
from benchinit.gate.history import history
from benchinit.gate.index import write_index
from benchinit.results.compaction import compact
from benchinit.results.folder_summary import settle
from benchinit.results.schema import TABLES


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """The median wall time of ``fn`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw(folder: Path) -> None:
    """What Parquet itself costs: each table's files in one pyarrow.dataset read."""
    for table in TABLES:
        files = sorted(str(p) for p in (folder / "records").glob(f"*/{table}.parquet"))
        ds.dataset(files, format="parquet").to_table().to_pandas()


def everything(folder: Path) -> None:
    results = load_results(folder)
    for table in ("curves", "layers", "histograms", "spectra"):
        getattr(results, table)


def copies(folder: Path, root: Path, n: int) -> list[Path]:
    """``n`` copies of ``folder`` under ``root`` (hard links: the files are never written)."""
    made = []
    for i in range(n):
        made.append(root / f"night-{i:03d}")
        shutil.copytree(folder, made[-1], copy_function=os.link)
    return made


PEAK = """
import os, resource, sys, time
from benchinit import load_results
with open("/proc/self/statm") as statm:
    imported = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
start = time.perf_counter()
r = load_results(sys.argv[1])
for t in ("curves", "layers", "histograms", "spectra"):
    getattr(r, t)
took = time.perf_counter() - start
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, imported)
"""


def fresh_process(folder: Path) -> str:
    """Seconds and peak memory of load_results with every table, in a new process."""
    line = subprocess.run(
        [sys.executable, "-c", PEAK, str(folder)], capture_output=True, text=True, check=True
    ).stdout.split()
    took, peak, imported = (float(x) for x in line)
    return f"load_results {took:.2f} s, peak {peak:.0f} MB ({imported:.0f} MB after import)"


def main() -> None:
    print(f"machine: {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        cells = write_signal(base)
        files = len(list((base / "records").glob("*/*.parquet")))
        print(f"600-cell folder: {cells} cells, {files} Parquet files")
        before, raw_before = timed(lambda: everything(base)), timed(lambda: raw(base))
        print(
            f"  before compaction: load_results {before:.3f} s, pyarrow.dataset {raw_before:.3f}"
            f" s: {before / raw_before:.2f}x"
        )
        start = time.perf_counter()
        compact(base)
        print(f"  compaction: {time.perf_counter() - start:.3f} s")
        settle(base)  # the summary, as a run writes it
        after, raw_after = timed(lambda: everything(base)), timed(lambda: raw(base))
        print(
            f"  after compaction: load_results {after:.3f} s, pyarrow.dataset {raw_after:.3f} s:"
            f" {after / raw_after:.2f}x"
        )
        runs_only = timed(lambda: load_results(base).runs)
        print(f"  load_results, runs only: {runs_only:.3f} s")

        night = Path(tmp) / "nights"
        folders = copies(base, night, 200)
        took = timed(lambda: write_index(night), repeat=1)
        print(f"index over 200 folders: {took:.2f} s, {took / 200:.4f} s per folder")
        for folder in folders:
            (folder / "summary.json").unlink()
        took = timed(lambda: write_index(night), repeat=1)
        print(f"  without summaries (runs tables): {took:.2f} s, {took / 200:.4f} s per folder")

        series = folders[:30]
        runs = timed(lambda: [load_results(f).runs for f in series], repeat=1)
        out = Path(tmp) / "history.html"
        took = timed(lambda: history(series, out=out), repeat=1)
        print(
            f"history over 30 folders: {took:.2f} s; load_results of their runs {runs:.2f} s:"
            f" {took / runs:.2f}x"
        )
        pair = folders[:2]
        runs = timed(lambda: [load_results(f).runs for f in pair])
        took = timed(lambda: compare(*pair, out=Path(tmp) / "compare.html"))
        print(
            f"compare of two: {took:.3f} s; load_results of their runs {runs:.3f} s:"
            f" {took / runs:.2f}x"
        )
        shutil.rmtree(night)

        big = Path(tmp) / "big"
        start = time.perf_counter()
        cells = write_signal(big, configs=20, seeds=500)
        files = len(list((big / "records").glob("*/*.parquet")))
        print(
            f"10,000-cell folder: {cells} cells, {files} files, written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        print(f"  before compaction: {fresh_process(big)}")
        start = time.perf_counter()
        compact(big)
        print(f"  compaction: {time.perf_counter() - start:.2f} s")
        print(f"  after compaction: {fresh_process(big)}")


if __name__ == "__main__":
    main()
