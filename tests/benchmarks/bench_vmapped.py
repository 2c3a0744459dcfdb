"""The plain-module route's cost: a 12-member stack of a small CNN as
benchinit.engine.vmapped.VmappedStack (torch.vmap over functional_call of a torch.nn module)
against benchinit's hand-stacked StackedCNN of the same layers (grouped convolutions).

Both: depth 2 3x3 convolutions of ``--width`` channels, each followed by ReLU and a 2x2
average pool, a linear head of 10; each member on its own batch of 64 (``[G, B, F]``);
training steps only (forward, backward, SGD with momentum), one thread, best of
``--repeat`` rounds that alternate the two, at 8x8 (digits) and 28x28 (MNIST) inputs.
Prints ms per step and the ratio (vmapped / stacked); asserts nothing. About 15 s.

    python tests/benchmarks/bench_vmapped.py [--width 16] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from benchinit.engine.convnets import StackedCNN
from benchinit.engine.vmapped import stacked
from benchinit.plugins.model_kind import ModelShape

G, B = 12, 64


class SmallCNN(nn.Module):
    """StackedCNN's layers at depth 2, as one plain member."""

    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        c, h, _ = shape.inputs
        self.conv1 = nn.Conv2d(c, shape.width, 3, padding=1)
        self.conv2 = nn.Conv2d(shape.width, shape.width, 3, padding=1)
        self.head = nn.Linear(shape.width * (h // 4) ** 2, shape.outputs)

    def forward(self, x: torch.Tensor, act) -> torch.Tensor:
        h = nn.functional.avg_pool2d(act(self.conv1(x)), 2)
        h = nn.functional.avg_pool2d(act(self.conv2(h)), 2)
        return self.head(h.flatten(1))


def stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One SGD step of ``model`` on its members' batches."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad()
        out = model(x, torch.relu)
        nn.functional.cross_entropy(out.flatten(0, 1), y.flatten()).backward()
        opt.step()

    step()  # warm-up
    return step


def best_ms(steps: dict[str, Callable[[], None]], count: int, repeat: int) -> dict[str, float]:
    """Per stepper, the best of ``repeat`` mean milliseconds per step over ``count`` steps,
    the steppers alternated round by round (a busy machine slows both alike)."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(count):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / count * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for side, steps in ((8, 30), (28, 3)):
        shape = ModelShape(G, (1, side, side), 10, depth=2, width=args.width)
        x, y = torch.randn(G, B, side * side), torch.randint(0, 10, (G, B))
        models = {"stacked": StackedCNN(shape), "vmapped": stacked(SmallCNN)(shape)}
        for model in models.values():
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0, 0.1)
        times = best_ms({k: stepper(m, x, y) for k, m in models.items()}, steps, args.repeat)
        print(
            f"{side}x{side}, {G} members x {args.width} channels: stacked "
            f"{times['stacked']:.1f} ms, vmapped {times['vmapped']:.1f} ms per step, "
            f"ratio {times['vmapped'] / times['stacked']:.2f}"
        )


if __name__ == "__main__":
    main()
