"""``kind = "signal"``: what a network does to its inputs at initialization.

For a batch of cells (one activation and shape, many initializers and seeds) the engine
draws the dataset's training inputs, initializes one stacked model with a member per cell,
pushes the inputs through it once, and records per hidden layer the statistics and
histograms of benchinit.engine.probes plus the mean-field prediction ``theory_std`` (plain networks
only: the theory ignores residual branches and normalization), and the input-output
Jacobian's spectrum at a few probe inputs (benchinit.engine.jacobian). Under ``bf16`` the forward
pass is autocast; every statistic is computed in float32 or better.

``grad_norm`` comes from one backward pass of a fixed loss through a random linear
read-out: L = mean over samples b of r_b . h_L(b), with r_b ~ N(0, I / width) drawn once
from seed 0 and shared by every cell. dL/dh_L(b) = r_b / B is then the same random vector
in every cell, independent across samples (a shared r would add up coherently at the last
layer only), so the gradient norms measure how the network itself shrinks or grows the
backward signal: vanishing gradients show as norms falling toward layer 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from benchinit.engine import jacobian
from benchinit.engine.evaluation import wide
from benchinit.engine.models import StackedMLP
from benchinit.engine.probes import (
    checked_trace,
    entropy_bits,
    folded,
    layer_channels,
    layer_statistics,
    theory,
    weight_grad_norms,
)
from benchinit.engine.recorder import Recorder, declared
from benchinit.engine.stack import (
    bind,
    build_stack,
    computing,
    fingerprints,
    init_scales,
    load_data,
)
from benchinit.plugins.descriptors import Activation, Bound
from benchinit.plugins.registry import Registry
from benchinit.study.cells import Cell

READOUT_SEED = 0


def readout(samples: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The fixed read-out vectors ``[samples, width]``, r_b ~ N(0, I / width)."""
    g = torch.Generator().manual_seed(READOUT_SEED)
    r = torch.randn(samples, width, generator=g, dtype=torch.float64) / math.sqrt(width)
    return r.to(device=device, dtype=dtype)


def run_signal(
    cells: list[Cell], registry: Registry, device: torch.device, recorder: Recorder
) -> None:
    """Record the cells' statistics at initialization (one stacked model) into ``recorder``."""
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
        shape=data.shape,
    )
    recorder.layer_names = declared(model)
    if kept:
        x = data.x_train.to(device=device, dtype=model.kernels[0].dtype)
        _measure(model, kept, x, activation, config["model"], recorder)
    for cell in cells:
        if cell.id in failures:
            recorder.run(cell, "failed", error=failures[cell.id])


def _measure(
    model: StackedMLP,
    cells: list[Cell],
    x: torch.Tensor,
    activation: Bound[Activation],
    settings: Mapping[str, Any],
    recorder: Recorder,
) -> None:
    """One forward and one backward pass of the stack, and a Jacobian probe; record the
    layers and the runs. Statistics are float32 or better whatever the forward's precision."""
    hashes, scales = fingerprints(model), init_scales(model)
    trace: list[tuple[torch.Tensor, torch.Tensor]] = []
    with computing(settings, x.device):
        out = wide(model(x, activation, trace))
    r = readout(len(x), out.shape[-1], out.dtype, x.device)
    (out * r).sum(2).mean(1).sum().backward()
    stats, hists = [], []
    checked_trace(model, trace)
    grads, channels = weight_grad_norms(list(model.kernels)), layer_channels(model, len(trace))
    for (pre, act), grad, units in zip(trace, grads, channels, strict=True):
        layer_stats, counts = layer_statistics(wide(pre), wide(act), activation, units)
        layer_stats["grad_norm"] = grad
        stats.append(layer_stats)
        hists.append(counts)
    finite = torch.stack([torch.isfinite(act).flatten(1).all(1) for _, act in trace]).all(0)
    extra = {}
    mlp = isinstance(model, StackedMLP)  # theory and spectra are the MLP's (else skipped)
    if mlp and model.residual is None and model.norm == "none":  # where mean-field applies
        biases = None if model.biases is None else list(model.biases)
        extra["theory_std"] = theory(activation, x, model.weights, biases, model.hidden)
    hist_range = activation.descriptor.range_of(activation.params)
    recorder.layers(cells, "init", stats, hists, hist_range, extra)
    spread = [math.nan] * len(cells)
    if mlp:
        spectrum = jacobian.probe(model, x, activation)
        record_spectrum(recorder, cells, "init", spectrum)
        top = spectrum.stats[-1]
        spread = (top["jac_sv2_var"] / top["jac_sv2_mean"].square()).tolist()
    first, last = stats[0], stats[-1]
    for g, cell in enumerate(cells):
        ok = bool(finite[g])
        recorder.run(
            cell,
            "ok" if ok else "diverged",
            diverged_epoch=None if ok else 0,
            init_hash=hashes[g],
            sigma_w=scales["sigma_w"][g] if scales else math.nan,
            sigma_b=scales["sigma_b"][g] if scales else math.nan,
            act_entropy=float(entropy_bits(folded(hists[-1]))[g]),
            std_drift=_abs_log(last["act_std"][g], first["act_std"][g], 2),
            saturated_frac=float(last["saturated_frac"][g]),
            dead_frac=float(last["dead_frac"][g]),
            grad_drift=_abs_log(first["grad_norm"][g], last["grad_norm"][g], 10),
            jac_spread=spread[g],
        )


def record_spectrum(
    recorder: Recorder, cells: list[Cell], phase: str, spectrum: jacobian.Spectrum
) -> None:
    """A Jacobian probe's per-layer moments, theory and last-layer spectrum histogram."""
    recorder.layer_metrics(cells, phase, spectrum.stats, spectrum.theory)
    if spectrum.histogram is not None:
        lo, hi = jacobian.LOG10_SV_RANGE
        recorder.histogram(
            cells, phase, len(spectrum.stats), spectrum.histogram, lo, hi, table_name="spectra"
        )


def _abs_log(numerator: torch.Tensor, denominator: torch.Tensor, base: float) -> float:
    a, b = float(numerator), float(denominator)
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return abs(math.log(a / b, base))
