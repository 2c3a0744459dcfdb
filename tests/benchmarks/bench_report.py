"""Report benchmark: render time of the seed study's report and of a 1,000-cell result set.

Targets on a 2-core CPU: the seed report under 20 s, the 1,000-cell report under 60 s.
Prints times; asserts nothing.

    python tests/benchmarks/bench_report.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

from synthetic import write_synthetic

from benchinit import load_study, run
from benchinit.report.page import render_report


def timed(folder: Path, parallel: int) -> float:
    start = time.perf_counter()
    render_report(folder, parallel=parallel)
    return time.perf_counter() - start


def main() -> None:
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed"
        run(load_study("seed"), seed, report=False, progress=False)
        big = Path(tmp) / "big"
        cells = write_synthetic(big)
        for name, folder in (("seed study (120 cells)", seed), (f"synthetic ({cells} cells)", big)):
            for parallel in sorted({1, min(cpus, 4)}):
                seconds = timed(folder, parallel)
                size = (folder / "index.html").stat().st_size / 1e6
                print(
                    f"{name:26s} {parallel} process{'es' if parallel > 1 else '  '}: "
                    f"{seconds:6.1f} s  ({size:.1f} MB page)"
                )


if __name__ == "__main__":
    main()
