"""Training benchmark: the lesson's one-model-at-a-time loop against benchinit, in one run.

Two grids of 4 initializers x 3 activations, MLPs 784-256-256-10 trained for one epoch
with SGD (batch 128) on 784-feature data, then evaluated on the test split:

- ``reference``: 3 seeds (36 MLPs), 60,000 training samples, 10,000 test samples;
- ``short``: 1 seed (12 MLPs), 12,000 training samples, 2,000 test samples, where
  benchinit's fixed costs (planning, workers, storage) and extra work show most.

The lesson's loop trains one ``nn.Sequential`` at a time from a shuffling ``DataLoader``
and evaluates test accuracy once per model, at torch's default threads and at 1 thread; the
better of the two is the baseline. benchinit runs the same grid as a study at its defaults
(``jobs=auto``, the usable cores), in float32 and with ``model.precision = "bf16"``; the
study sets ``[data] validation = 0`` so both train on the same samples. Printed beside
them: achieved GFLOP/s (6 x parameters x training samples per model, the usual count for a
forward and backward pass; evaluations and probes are extra work not counted) against this
machine's matmul throughput in the same precision, measured in the same run with as many
single-thread processes as benchinit used; and the share of a run spent on benchinit's
extra work (epoch-0 evaluation, layer and Jacobian probes), timed in process. Prints
ratios; asserts nothing.

    python tests/benchmarks/bench_train.py [--device cuda] [--only reference|short]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

from benchinit import load_study, run
from benchinit.engine.stack import load_data
from benchinit.engine.train import _Run
from benchinit.execution.processes import usable_cores

INITS = {
    "normal(std=1)": lambda w: nn.init.normal_(w, 0.0, 1.0),
    "normal(std=0.01)": lambda w: nn.init.normal_(w, 0.0, 0.01),
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}
ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
GRIDS = {"reference": (3, 60_000), "short": (1, 12_000)}  # seeds, training samples
WIDTH = 256


def study_text(seeds: int, samples: int, precision: str) -> str:
    inits = ", ".join(f"'{name}'" for name in INITS)
    acts = ", ".join(f'"{name}"' for name in ACTS)
    return f"""
[study]
name = "bench"
kind = "train"
seeds = {seeds}
[data]
name = "gaussian"
samples = {samples}
features = 784
classes = 10
test_samples = {samples // 6}
validation = 0
[model]
depth = 2
width = {WIDTH}
precision = "{precision}"
[train]
epochs = 1
batch_size = 128
[grid]
initializer = [{inits}]
activation = [{acts}]
optimizer = "sgd(lr=0.01)"
"""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _matmul(device: str, dtype: torch.dtype, n: int, repeats: int) -> float:
    torch.set_num_threads(1)
    a = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        a @ a
        sync(torch.device(device))
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a
        sync(torch.device(device))
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best / 1e9


def matmul_gflops(device: str, dtype: torch.dtype, processes: int) -> float:
    """Matmul throughput of ``processes`` one-thread processes at once (benchinit's setup)."""
    if processes == 1 or device != "cpu":
        return _matmul(device, dtype, 1024, 20)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return sum(pool.starmap(_matmul, [(device, dtype, 1024, 20)] * processes))


def lesson_loop(data: Any, seeds: int, device: torch.device, threads: int) -> float:
    """The lesson's exercise loop, one model at a time, with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    dataset = TensorDataset(data.x_train, data.y_train)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    for init in INITS.values():
        for act in ACTS.values():
            for seed in range(seeds):
                torch.manual_seed(seed)
                model = nn.Sequential(
                    nn.Linear(data.features, WIDTH),
                    act(),
                    nn.Linear(WIDTH, WIDTH),
                    act(),
                    nn.Linear(WIDTH, 10),
                ).to(device)
                for layer in model:
                    if isinstance(layer, nn.Linear):
                        init(layer.weight)
                        nn.init.zeros_(layer.bias)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
                for xb, yb in DataLoader(dataset, batch_size=128, shuffle=True):
                    xb, yb = xb.to(device), yb.to(device)
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(xb), yb).backward()
                    optimizer.step()
                with torch.no_grad():
                    (model(x_test).argmax(1) == y_test).float().mean().item()
    sync(device)
    return time.perf_counter() - start


def run_benchinit(text: str, device: str, **options: Any) -> float:
    """Seconds of one ``benchinit.run`` of the study (no report), whole call."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(text)
        study = load_study(path)
        start = time.perf_counter()
        outcome = run(
            study, Path(folder) / "out", device=device, report=False, progress=False, **options
        )
        seconds = time.perf_counter() - start
    failed = outcome.results.runs[outcome.results.runs["status"] == "failed"]
    assert failed.empty, failed["error"].tolist()
    return seconds


def extra_share(text: str, device: str) -> float:
    """The share of an in-process run spent on epoch-0 evaluation and probes."""
    spent = [0.0]

    def timed(method: Callable[..., Any], when: Callable[..., bool]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(self, *args)
            finally:
                if when(*args):
                    spent[0] += time.perf_counter() - start

        return wrapper

    originals = (_Run.probe_layers, _Run.evaluate, _Run.measure_epoch)
    _Run.probe_layers = timed(_Run.probe_layers, lambda *a: True)
    _Run.evaluate = timed(
        _Run.evaluate, lambda split, limit=None: limit is not None and split == "train"
    )
    _Run.measure_epoch = timed(_Run.measure_epoch, lambda epoch, loss: epoch == 0)
    try:
        total = run_benchinit(text, device, jobs=1)
    finally:
        _Run.probe_layers, _Run.evaluate, _Run.measure_epoch = originals
    return spent[0] / total


def bench_grid(name: str, device: str, cores: int) -> None:
    seeds, samples = GRIDS[name]
    text = study_text(seeds, samples, "float32")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "s.toml").write_text(text)
        study = load_study(Path(folder) / "s.toml")
    data = load_data(study.registry, study.cells()[0].config["data"])
    models = len(study.cells())
    params = 784 * WIDTH + WIDTH + WIDTH * WIDTH + WIDTH + WIDTH * 10 + 10
    gflop = 6 * params * samples * models / 1e9
    print(f"\n== {name}: {models} MLPs 784-256-256-10, {samples} training samples, 1 epoch")
    dev = torch.device(device)
    loops = {t: lesson_loop(data, seeds, dev, t) for t in sorted({1, cores})}
    for threads, seconds in loops.items():
        print(f"lesson's loop, {threads} thread(s):           {seconds:7.2f} s")
    best = min(loops.values())
    torch.set_num_threads(1)
    f32 = run_benchinit(text, device)
    bf16 = run_benchinit(study_text(seeds, samples, "bf16"), device)
    workers = min(cores, len(study.cells()))
    peak32 = matmul_gflops(device, torch.float32, workers)
    peak16 = matmul_gflops(device, torch.bfloat16, workers)
    print(
        f"benchinit defaults, float32:       {f32:7.2f} s  {gflop / f32:6.1f} GFLOP/s = "
        f"{gflop / f32 / peak32:.0%} of float32 matmul   {best / f32:.2f}x the best loop"
    )
    print(
        f"benchinit defaults, bf16:          {bf16:7.2f} s  {gflop / bf16:6.1f} GFLOP/s = "
        f"{gflop / bf16 / peak16:.0%} of bfloat16 matmul   {f32 / bf16:.2f}x float32"
    )
    print(
        f"matmul 1024^3, {workers} x 1 thread: float32 {peak32:.0f}, bfloat16 "
        f"{peak16:.0f} GFLOP/s ({peak16 / peak32:.1f}x)"
    )
    share = extra_share(text, device)
    print(f"epoch-0 evaluation and probes, in process: {share:.1%} of the run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=list(GRIDS))
    args = parser.parse_args(argv)
    cores = usable_cores() if args.device == "cpu" else 1
    print(f"machine: {cores} usable CPUs, torch {torch.__version__}, device {args.device}")
    for name in GRIDS:
        if not args.only or name == args.only:
            bench_grid(name, args.device, cores)


if __name__ == "__main__":
    main()
