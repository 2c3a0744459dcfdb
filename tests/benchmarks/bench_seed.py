"""Seed-study benchmark: benchinit against the lesson's numpy loop, measured in one run.

The lesson computes its figure one configuration at a time, in numpy: draw 1,000 x 100
inputs, then for each layer draw a weight matrix, `a = x @ w`, apply the activation, keep
the activations, and histogram them. This script does exactly that for the seed study's 120
cells (4 initializers x 3 activations x 10 seeds; mean, std and a 30-bin histogram per layer)
and times it against `benchinit.run` on the same study, which records more per layer
(pre-activation std, saturated and dead fractions, gradient norms from a backward pass, the
mean-field prediction, the Jacobian spectrum) and stores it crash-safely: at its defaults
(jobs auto) and with one job, and without the Jacobian probe. Also timed: the whole
`benchinit run seed` command, report included, as a user types it, at its defaults and with
--jobs 1. Prints ratios; asserts nothing.

    python tests/benchmarks/bench_seed.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

from benchinit import load_study, run
from benchinit.engine import jacobian

ACTIVATIONS = {
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), (0, 1)),
    "relu": (lambda a: np.maximum(0, a), (0, 3)),
    "tanh": (np.tanh, (-1, 1)),
}
STDS = {  # node count n = 100
    "normal(std=1)": lambda n: 1.0,
    "normal(std=0.01)": lambda n: 0.01,
    "xavier_normal": lambda n: np.sqrt(2 / (n + n)),
    "kaiming_normal": lambda n: np.sqrt(2 / n),
}


def lesson_loop(seeds: int = 10) -> float:
    start = time.perf_counter()
    for activation, (phi, value_range) in ACTIVATIONS.items():
        for std in STDS.values():
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                x = rng.standard_normal((1000, 100))
                stats = []
                for _ in range(5):
                    w = rng.standard_normal((100, 100)) * std(100)
                    x = phi(x @ w)
                    stats.append((x.mean(), x.std(), np.histogram(x, 30, value_range)[0]))
            assert activation
    return time.perf_counter() - start


def _cli(folder: Path, *args: str) -> float:
    """Seconds of ``benchinit run seed ARGS`` as a user types it (report included)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "benchinit", "run", "seed", "--out", str(folder), "--quiet", *args],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _engine(folder: Path, **options: object) -> float:
    start = time.perf_counter()
    run(load_study("seed"), folder, report=False, progress=False, **options)
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} CPUs, numpy {np.__version__}, torch {torch.__version__}")
    loop = lesson_loop()
    print(f"lesson-style numpy loop, 120 configurations:        {loop:6.2f} s")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        auto = _engine(folder / "auto")
        one = _engine(folder / "one", jobs=1)
        print(
            f"benchinit.run(seed), no report, defaults (jobs auto): {auto:6.2f} s   "
            f"{loop / auto:.2f}x the loop"
        )
        print(
            f"benchinit.run(seed), no report, jobs 1:               {one:6.2f} s   "
            f"defaults {one / auto:.2f}x jobs 1"
        )
        original = jacobian.probe
        jacobian.probe = lambda model, x, activation, **kw: jacobian.Spectrum([], None, {})
        try:
            bare = _engine(folder / "bare", jobs=1)
        finally:
            jacobian.probe = original
        print(
            f"benchinit.run(seed), jobs 1, without the Jacobian probe: {bare:6.2f} s   "
            f"with it {one / bare:.2f}x"
        )
        cli_auto = _cli(folder / "cli-auto")
        cli_one = _cli(folder / "cli-one", "--jobs", "1")
        print(f"`benchinit run seed`, report included, defaults: {cli_auto:6.2f} s")
        print(
            f"`benchinit run seed --jobs 1`, report included:  {cli_one:6.2f} s   "
            f"defaults {cli_one / cli_auto:.2f}x jobs 1"
        )


if __name__ == "__main__":
    main()
