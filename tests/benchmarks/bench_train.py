"""Training benchmark: the lesson's one-model-at-a-time loop against benchinit, in one run.

The reference grid: 4 initializers x 3 activations x 3 seeds = 36 MLPs, each trained for one
epoch with SGD (batch 128) and evaluated on the test split, on

- ``mnist``: 784-256-256-10 on 60,000 x 784 float32 training samples (10,000 test), and
- ``digits``: 64-100-100-10 on scikit-learn's 1,437 training digits.

The baseline trains the way the lesson's exercise does: one ``nn.Sequential`` at a time, a
``DataLoader(TensorDataset)`` with shuffling, torch's default threads (and, on a CPU, again
with 1 thread). benchinit runs the same grid as a study (stacked models, index-gathered
batches), in process with 1 thread and with ``--jobs`` single-threaded workers. Printed next
to them: benchinit's achieved GFLOP/s (6 x parameters x training samples per model, the
usual count for a forward and backward pass; its evaluations and probes are extra work not
counted) and this machine's float32 matmul throughput, measured in the same run. Prints
ratios; asserts nothing.

    python tests/benchmarks/bench_train.py [--device cuda] [--jobs N] [--only mnist|digits]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

from benchinit import load_study, run
from benchinit.stack import load_data

INITS = {
    "normal(std=1)": lambda w: nn.init.normal_(w, 0.0, 1.0),
    "normal(std=0.01)": lambda w: nn.init.normal_(w, 0.0, 0.01),
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}
ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def data_block(case: str, samples: int) -> str:
    if case == "digits":
        return 'name = "digits"'
    return (
        f'name = "gaussian"\nsamples = {samples}\nfeatures = 784\nclasses = 10\n'
        f"test_samples = {samples // 6}"
    )


WIDTHS = {"mnist": 256, "digits": 100}


def study_text(case: str, seeds: int, samples: int) -> str:
    inits = ", ".join(f"'{name}'" for name in INITS)
    acts = ", ".join(f'"{name}"' for name in ACTS)
    return "\n".join(
        [
            '[study]\nname = "bench"\nkind = "train"',
            f"seeds = {seeds}",
            "[data]",
            data_block(case, samples),
            f"[model]\ndepth = 2\nwidth = {WIDTHS[case]}",
            "[train]\nepochs = 1\nbatch_size = 128",
            f"[grid]\ninitializer = [{inits}]\nactivation = [{acts}]",
            'optimizer = "sgd(lr=0.01)"',
        ]
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(3):
        a @ b
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best / 1e9


def baseline(data, width: int, seeds: int, device: torch.device) -> float:
    """The lesson's exercise loop, one model at a time."""
    start = time.perf_counter()
    dataset = TensorDataset(data.x_train, data.y_train)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    for init in INITS.values():
        for act in ACTS.values():
            for seed in range(seeds):
                torch.manual_seed(seed)
                model = nn.Sequential(
                    nn.Linear(data.features, width),
                    act(),
                    nn.Linear(width, width),
                    act(),
                    nn.Linear(width, 10),
                )
                model = model.to(device)
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


def run_benchinit(text: str, device: str, executor: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(text)
        study = load_study(path)
        start = time.perf_counter()
        outcome = run(
            study,
            Path(folder) / "out",
            device=device,
            executor=executor,
            jobs=jobs,
            report=False,
            progress=False,
        )
        seconds = time.perf_counter() - start
    failed = outcome.results.runs[outcome.results.runs["status"] == "failed"]
    assert failed.empty, failed["error"].tolist()
    return seconds


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=list(WIDTHS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration (3)")
    parser.add_argument("--samples", type=int, default=60000, help="mnist-size training samples")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, device {device} {name}")
    peak = matmul_gflops(device)
    torch.set_num_threads(1)
    peak_1 = matmul_gflops(device) if cpu else peak
    torch.set_num_threads(threads)
    print(
        f"float32 matmul 1024^3: {peak:.1f} GFLOP/s with torch's default threads ({threads})"
        + (f"; {peak_1:.1f} GFLOP/s with 1 thread" if cpu else "")
    )
    figures: dict[str, dict[str, float]] = {}
    for case, width in WIDTHS.items():
        if args.only and case != args.only:
            continue
        text = study_text(case, args.seeds, args.samples)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "s.toml").write_text(text)
            study = load_study(Path(folder) / "s.toml")
        data = load_data(study.registry, study.cells()[0].config["data"])
        models = len(study.cells())
        params = data.features * width + width + width * width + width + width * 10 + 10
        gflop = 6 * params * len(data.x_train) * models / 1e9
        print(
            f"\n== {case}: {models} MLPs {data.features}-{width}-{width}-10, "
            f"{len(data.x_train)} training samples, 1 epoch, batch 128, SGD"
        )
        result = figures[case] = {}
        result["baseline"] = baseline(data, width, args.seeds, device)
        print(f"one at a time, DataLoader, {threads} threads: {result['baseline']:8.2f} s")
        if cpu and threads > 1:
            torch.set_num_threads(1)
            result["baseline_1"] = baseline(data, width, args.seeds, device)
            torch.set_num_threads(threads)
            print(f"one at a time, DataLoader, 1 thread:   {result['baseline_1']:8.2f} s")
        result["local"] = local = run_benchinit(text, args.device, "local", 1)
        torch.set_num_threads(threads)
        print(
            f"benchinit, in process{', 1 thread' if cpu else ''}:       {local:8.2f} s  "
            f"{gflop / local:7.1f} GFLOP/s = {gflop / local / peak_1:.0%} of "
            f"{'1-thread ' if cpu else ''}matmul   speedup {result['baseline'] / local:.2f}x"
            + (
                f" ({result['baseline_1'] / local:.2f}x against 1 thread)"
                if "baseline_1" in result
                else ""
            )
        )
        if cpu and args.jobs > 1:
            result["pool"] = pool = run_benchinit(text, args.device, "process", args.jobs)
            print(
                f"benchinit, {args.jobs} processes x 1 thread:   {pool:8.2f} s  "
                f"{gflop / pool:7.1f} GFLOP/s = {gflop / pool / peak:.0%} of "
                f"{threads}-thread matmul   speedup {result['baseline'] / pool:.2f}x"
            )
            torch.set_num_threads(threads)
    return figures


if __name__ == "__main__":
    main()
