"""Jacobian-probe benchmark: explicit D W products against torch.func, on one CPU thread.

Shapes: the seed study's stack (40 members, 1,000 inputs of 100 features, 5 hidden layers of
100 units, tanh) and 8 members of 784-256-256; P = 8 probe inputs, float32. Times, best of 5:
``jacobian_spectrum`` (per-layer moments and the last layer's svdvals), its moments alone,
the same moments from ``torch.func`` (``vmap`` over members and probes of ``jacfwd``), and for
scale the stack's forward + backward pass on all inputs (what the signal pass does).
Prints milliseconds; asserts nothing.

    python tests/benchmarks/bench_jacobian.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from torch.func import jacfwd, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchinit.engine.jacobian import PROBES, _moments, jacobian_spectrum
from benchinit.engine.models import StackedMLP


def best(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def stack(members: int, sizes: list[int]) -> StackedMLP:
    model = StackedMLP(members, sizes, head=False, bias=False)
    with torch.no_grad():
        for k in model.kernels:
            k.normal_(0.0, 1.0 / math.sqrt(k.shape[1]))
    return model


def func_moments(model: StackedMLP, x_probe: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """The same per-layer moments through torch.func: J of every hidden output, per member."""

    def outputs(kernels: list[torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h, out = x, []
        for k in kernels:
            h = torch.tanh(h @ k)
            out.append(h)
        return tuple(out)

    per_probe = vmap(jacfwd(outputs, argnums=1), in_dims=(None, 0))  # over probe inputs
    per_member = vmap(per_probe, in_dims=(0, None))  # over members
    with torch.no_grad():
        jacobians = per_member([k.detach() for k in model.kernels], x_probe)  # [G, P, n_l, n_0]
    return [_moments(j.mT) for j in jacobians]


def measure(members: int, sizes: list[int], samples: int) -> str:
    model = stack(members, sizes)
    x = torch.randn(samples, sizes[0])
    probe = x[:PROBES]

    def signal_pass() -> None:
        model.zero_grad()
        model(x, torch.tanh).sum().backward()

    stats, _ = jacobian_spectrum(model, probe, torch.tanh)
    for a, b in zip(stats, func_moments(model, probe), strict=True):  # the same numbers
        assert torch.allclose(a["jac_sv2_mean"], b["jac_sv2_mean"], rtol=1e-4)
    spectrum = best(lambda: jacobian_spectrum(model, probe, torch.tanh))
    moments = best(lambda: jacobian_spectrum(model, probe, torch.tanh, singular_values=False))
    func = best(lambda: func_moments(model, probe))
    return (
        f"G={members} sizes={sizes}: jacobian_spectrum {spectrum:.0f} ms, its moments alone "
        f"{moments:.0f} ms; torch.func moments {func:.0f} ms; forward+backward on "
        f"{samples} inputs {best(signal_pass):.0f} ms"
    )


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(measure(40, [100] * 6, 1000))  # the seed study's stack
    print(measure(8, [784, 256, 256], 1000))


if __name__ == "__main__":
    main()
