"""GPU check: benchinit on CUDA is correct and fast. One prepared script, under 5 minutes.

Run on a machine with a GPU, from the checkout, without installing anything:

    PYTHONPATH=. python tests/benchmarks/gpu_check.py            # needs CUDA
    PYTHONPATH=. python tests/benchmarks/gpu_check.py --dry-run  # the same steps, tiny, on CPU

1. Correctness: the seed study (3 seeds) on CUDA against the CPU: initialization happens on
   the CPU, so the stored layer statistics agree to float32 rounding. Stacked training on
   CUDA in float64 equals training each model alone, for plain, residual and batch-norm MLPs.
2. Speed: the reference grid (4 initializers x 3 activations x 3 seeds, 784-256-256-10 on
   60,000 samples, 1 epoch, batch 128, SGD), one model at a time with a DataLoader against
   benchinit's stacks. On a GPU small MLPs are launch-bound, so stacking is decisive there:
   the target is at least 8x.
3. Precision: the same grid with ``model.precision`` = ``bf16`` and ``tf32``: their speed
   against float32 and the matmul throughput of each, and their mean test accuracy against
   float32's (within 2 points).
4. The CNN and the ResNet (``[model] name = "cnn"``, ``"resnet"`` with and without batch
   norm): stacked equals alone in float64 on the device (4 models on digits, 1 epoch), and
   the 12-CNN grid of bench_cnn_stack.py (28x28, depth 4, width 16) as one stack against 12
   stacks of 1.

Prints every figure and a verdict line per check; exits 1 if a correctness check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

import bench_cnn_stack
import bench_train

from benchinit import load_results, load_study, run
from benchinit.engine.stack import load_data
from benchinit.engine.train import train_stack

EXACT = """
[study]
name = "exact"
kind = "train"
seeds = [0, 1]
[data]
name = "blobs"
samples = 300
features = 8
[model]
depth = 3
width = 32
dtype = "float64"
residual = {residual}
norm = "{norm}"
[train]
epochs = 3
batch_size = 32
[grid]
initializer = ["kaiming_normal", "xavier_normal", "orthogonal"]
activation = "tanh"
optimizer = "adam(lr=0.01)"
"""


def check_seed_study(device: str, seeds: int, folder: Path) -> bool:
    tables = {}
    for where in ("cpu", device):
        start = time.perf_counter()
        run(
            load_study("seed", seeds=seeds),
            folder / where,
            device=where,
            report=False,
            progress=False,
        )
        layers = load_results(folder / where).layers
        tables[where] = layers.sort_values(["cell", "phase", "layer", "metric"]).reset_index(
            drop=True
        )
        print(f"seed study, {seeds} seeds, on {where}: {time.perf_counter() - start:.2f} s")
    if device == "cpu":
        return True
    try:
        pd.testing.assert_frame_equal(tables["cpu"], tables[device], rtol=2e-3, atol=1e-6)
    except AssertionError as exc:
        print(f"FAIL seed study: CUDA and CPU layer statistics differ: {exc}")
        return False
    print("ok   seed study: CUDA and CPU layer statistics agree (rtol 2e-3)")
    return True


def check_exact(device: str, folder: Path) -> bool:
    ok = True
    for residual, norm in ((False, "none"), (1.0, "none"), ('"1/sqrt(depth)"', "batch")):
        path = folder / "exact.toml"
        path.write_text(EXACT.format(residual=str(residual).lower(), norm=norm))
        study = load_study(path)
        cells = study.cells()
        stacked = train_stack(cells, study.registry, torch.device(device))
        worst = 0.0
        for g, cell in enumerate(cells):
            alone = train_stack([cell], study.registry, torch.device(device))
            for a, b in zip(stacked.model.weights, alone.model.weights, strict=True):
                worst = max(worst, float((a[g] - b[0]).detach().abs().max()))
        ok &= worst < 1e-10
        print(
            f"{'ok  ' if worst < 1e-10 else 'FAIL'} stacked = alone on {device} in float64 "
            f"(residual {residual}, norm {norm}; 6 models, 3 epochs, Adam): largest weight "
            f"difference {worst:.1e}"
        )
    return ok


def check_speed(device: str, dry_run: bool) -> None:
    """The reference grid: the lesson's loop, and benchinit in float32, bf16 and tf32."""
    seeds, samples = (1, 3000) if dry_run else bench_train.GRIDS["reference"]
    text = bench_train.study_text(seeds, samples, "float32")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s.toml").write_text(text)
        study = load_study(Path(tmp) / "s.toml")
    data = load_data(study.registry, study.cells()[0].config["data"])
    loop = bench_train.lesson_loop(data, seeds, torch.device(device), torch.get_num_threads())
    print(f"reference grid, one model at a time on {device}: {loop:.2f} s")
    seconds, accuracy = {}, {}
    for precision in ("float32", "bf16", "tf32"):
        if precision == "tf32" and device != "cuda":
            print("tf32: CUDA only (skipped on the CPU)")
            continue
        text = bench_train.study_text(seeds, samples, precision)
        seconds[precision], accuracy[precision] = _timed(text, device)
        peak = bench_train.matmul_gflops(device, DTYPES[precision], 1)
        print(
            f"benchinit {precision:7s}: {seconds[precision]:7.2f} s, mean test accuracy "
            f"{accuracy[precision]:.3f}; matmul {peak:.0f} GFLOP/s"
        )
    speedup = loop / seconds["float32"]
    print(
        f"{'ok  ' if speedup >= 8 else 'SLOW'} benchinit float32 {speedup:.1f}x faster than one "
        "model at a time (target 8x on a GPU)"
    )
    for precision in ("bf16", "tf32"):
        if precision in seconds:
            gap = abs(accuracy[precision] - accuracy["float32"])
            print(
                f"{'ok  ' if gap <= 0.02 else 'DIFF'} {precision}: "
                f"{seconds['float32'] / seconds[precision]:.2f}x float32's speed, accuracy "
                f"within {gap:.3f} of float32's"
            )


CNN_EXACT = """
[study]
kind = "train"
seeds = [0, 1]
[data]
name = "digits"
[model]
name = "{model}"
depth = {depth}
width = 4
dtype = "float64"
norm = "{norm}"
[train]
epochs = 1
batch_size = 128
[grid]
initializer = ["kaiming_normal", "xavier_normal"]
activation = "relu"
optimizer = "sgd(lr=0.05, momentum=0.9)"
"""


def check_cnn(device: str, dry_run: bool, folder: Path) -> bool:
    """The CNN: stacked = alone in float64 on the device; the 12-CNN grid's speed-up."""
    ok = True
    for model, depth, norm in (("cnn", 3, "none"), ("resnet", 8, "none"), ("resnet", 8, "batch")):
        path = folder / "cnn.toml"
        path.write_text(CNN_EXACT.format(model=model, depth=depth, norm=norm))
        study = load_study(path)
        cells = study.cells()
        stacked = train_stack(cells, study.registry, torch.device(device))
        worst = 0.0
        for g, cell in enumerate(cells):
            alone = train_stack([cell], study.registry, torch.device(device))
            for a, b in zip(stacked.model.weights, alone.model.weights, strict=True):
                worst = max(worst, float((a[g] - b[0]).detach().abs().max()))
        ok &= worst < 1e-10
        print(
            f"{'ok  ' if worst < 1e-10 else 'FAIL'} {model} (norm {norm}) stacked = alone on "
            f"{device} in float64 (4 models, 1 epoch, SGD): largest weight difference {worst:.1e}"
        )
    data, epochs = ("digits", 1) if dry_run else ("mnist_5k", 1)
    together, loop = bench_cnn_stack.time_engine(data, 4, 16, epochs, device)
    print(
        f"CNN grid (12 x cnn depth 4 width 16, {data}) on {device}: one stack {together:.2f} s, "
        f"one at a time {loop:.2f} s, {loop / together:.2f}x"
    )
    return ok


def _timed(text: str, device: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(text)
        study = load_study(path)
        start = time.perf_counter()
        outcome = run(study, Path(tmp) / "out", device=device, report=False, progress=False)
        return time.perf_counter() - start, float(outcome.results.runs["test_accuracy"].mean())


DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16, "tf32": torch.float32}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run every step, tiny, on CPU")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device here; use --dry-run to try the script on a CPU")
        return 2
    device = "cpu" if args.dry_run else "cuda"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ok = check_seed_study(device, 1 if args.dry_run else 3, folder)
        ok &= check_exact(device, folder)
        ok &= check_cnn(device, args.dry_run, folder)
    check_speed(device, args.dry_run)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
