"""What the report costs, against what the run costs, and the page it makes; prints ratios.

1. The seed study end to end (`benchinit run seed`, as a user types it) against the same
   command with `--no-report`: the report's share of the run (target: at most 1.5x).
2. The README's example report (a shrunken `mnist-mlp`, see README "The report") rendered
   again with `benchinit report DIR --jobs 1`, against a results folder rendered by another
   checkout (``--before SRC``, e.g. a worktree of main): render time, page size and page
   height in Chromium (targets: under 1/3 of the time, half the height and size).

Times are process CPU seconds (user + system of the command and its children) as well as
wall seconds: on a shared machine the wall clock measures the neighbours.

    python tests/benchmarks/bench_report_cost.py [--before /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = [
    "mnist-mlp",
    "--seeds",
    "3",
    "--set",
    "train.epochs=3",
    "--set",
    'grid.initializer=["kaiming_normal","xavier_normal","zeros"]',
]


def _timed(args: list[str], source: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of ``python -m benchinit ARGS`` run from checkout ``source``."""
    env = dict(os.environ, PYTHONPATH=str(source), BENCHINIT_DISABLE_PLUGIN_AUTOLOAD="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(  # run from the checkout: `-m` imports from the working folder first
        [sys.executable, "-m", "benchinit", *args],
        check=True,
        capture_output=True,
        env=env,
        cwd=source,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def page_height(page: Path) -> int | None:
    """The page's height in CSS pixels at a 1,400-pixel-wide window (None: no browser)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.goto(page.as_uri())
        height = int(tab.evaluate("document.documentElement.scrollHeight"))
        browser.close()
    return height


def _page(label: str, page: Path, times: tuple[float, float]) -> tuple[float, float, int | None]:
    size = page.stat().st_size
    height = page_height(page)
    print(
        f"{label:34s} {times[0]:6.1f} s wall {times[1]:6.1f} s CPU  {size / 1e6:5.2f} MB  "
        f"{height if height is not None else '?'} px tall"
    )
    return times[1], size, height


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="another checkout to render the example with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bare = _timed(["run", "seed", "--out", str(tmp / "bare"), "--quiet", "--no-report"], ROOT)
        full = _timed(["run", "seed", "--out", str(tmp / "full"), "--quiet"], ROOT)
        print(f"`benchinit run seed --no-report`    {bare[0]:6.1f} s wall {bare[1]:6.1f} s CPU")
        _page("`benchinit run seed`", tmp / "full" / "index.html", full)
        print(
            f"end to end / --no-report: {full[0] / bare[0]:.2f}x wall, "
            f"{full[1] / bare[1]:.2f}x CPU (target <= 1.5x)"
        )
        example = tmp / "example"
        _timed(["run", *EXAMPLE, "--out", str(example), "--quiet", "--no-report"], ROOT)
        now = _page(
            "README example, this checkout",
            example / "index.html",
            _timed(["report", str(example), "--jobs", "1"], ROOT),
        )
        if args.before:
            other = tmp / "before"
            shutil.copytree(example, other)
            then = _page(
                "README example, --before",
                other / "index.html",
                _timed(["report", str(other), "--jobs", "1"], args.before.resolve()),
            )
            print(f"render CPU: {now[0] / then[0]:.2f}x before (target < 0.33x)")
            print(f"page size:  {now[1] / then[1]:.2f}x before (target <= 0.5x)")
            if now[2] and then[2]:
                print(f"height:     {now[2] / then[2]:.2f}x before (target <= 0.5x)")


if __name__ == "__main__":
    main()
