"""``kind = "signal"``: what a network does to its inputs at initialization.

For a batch of cells (one activation and shape, many initializers and seeds) the engine
draws the dataset's training inputs, initializes one stacked model with a member per cell,
pushes the inputs through it once, and records per hidden layer the statistics and
histograms of benchinit.probes plus the mean-field prediction ``theory_std``.

``grad_norm`` comes from one backward pass of a fixed loss through a random linear
read-out: L = mean over samples b of r_b . h_L(b), with r_b ~ N(0, I / width) drawn once
from seed 0 and shared by every cell. dL/dh_L(b) = r_b / B is then the same random vector
in every cell, independent across samples (a shared r would add up coherently at the last
layer only), so the gradient norms measure how the network itself shrinks or grows the
backward signal: vanishing gradients show as norms falling toward layer 1.
"""

from __future__ import annotations

import math
import time

import torch

from benchinit.engine import Recorder, Records, bind, build_stack, device_name, load_data
from benchinit.probes import entropy_bits, layer_statistics, theory, weight_grad_norms
from benchinit.registry import Registry
from benchinit.study import Cell

READOUT_SEED = 0


def readout(samples: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The fixed read-out vectors ``[samples, width]``, r_b ~ N(0, I / width)."""
    g = torch.Generator().manual_seed(READOUT_SEED)
    r = torch.randn(samples, width, generator=g, dtype=torch.float64) / math.sqrt(width)
    return r.to(device=device, dtype=dtype)


def run_signal(cells: list[Cell], registry: Registry, device: torch.device) -> Records:
    start = time.perf_counter()
    config = cells[0].config
    data = load_data(registry, config["data"])
    activation = bind(registry, "activation", config["activation"])
    depth, width = config["model"]["depth"], config["model"]["width"]
    model, kept, failures = build_stack(
        cells,
        registry,
        [data.features] + [width] * depth,
        head=False,
        activation=activation,
        device=device,
        calibration_x=data.x_train,
    )
    dtype = model.kernels[0].dtype
    x = data.x_train.to(device=device, dtype=dtype)

    trace: list[tuple[torch.Tensor, torch.Tensor]] = []
    stats: list[dict[str, torch.Tensor]] = []
    hists = []
    if kept:
        out = model(x, activation, trace)
        r = readout(len(x), width, dtype, device)
        (out * r).sum(2).mean(1).sum().backward()
        for pre, act in trace:
            layer_stats, counts = layer_statistics(pre, act, activation)
            stats.append(layer_stats)
            hists.append(counts)
        grads = weight_grad_norms(model.kernels)
        for layer_stats, grad in zip(stats, grads, strict=True):
            layer_stats["grad_norm"] = grad
        finite = torch.stack([torch.isfinite(act).flatten(1).all(1) for _, act in trace]).all(0)
        predicted = theory(activation, x, model.weights, model.biases, model.hidden)

    recorder = Recorder(device_name(device), time.perf_counter() - start, len(cells))
    lo, hi = activation.descriptor.range_of(activation.params)
    for layer, (layer_stats, counts) in enumerate(zip(stats, hists, strict=True), start=1):
        for metric, values in layer_stats.items():
            recorder.layer(kept, "init", layer, metric, values.double().cpu().tolist())
        recorder.layer(kept, "init", layer, "theory_std", [p[layer - 1] for p in predicted])
        recorder.histogram(kept, "init", layer, counts, lo, hi)
    for g, cell in enumerate(kept):
        first, last = stats[0], stats[-1]
        recorder.run(
            cell,
            "ok" if bool(finite[g]) else "diverged",
            diverged_epoch=None if bool(finite[g]) else 0,
            act_entropy=float(entropy_bits(hists[-1])[g]),
            std_drift=_abs_log(last["act_std"][g], first["act_std"][g], 2),
            saturated_frac=float(last["saturated_frac"][g]),
            dead_frac=float(last["dead_frac"][g]),
            grad_drift=_abs_log(first["grad_norm"][g], last["grad_norm"][g], 10),
        )
    for cell in cells:
        if cell.id in failures:
            recorder.run(cell, "failed", error=failures[cell.id])
    return recorder.frames()


def _abs_log(numerator: torch.Tensor, denominator: torch.Tensor, base: float) -> float:
    a, b = float(numerator), float(denominator)
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return abs(math.log(a / b, base))
