"""The input-output Jacobian of the hidden stack: its spectrum, layer by layer, per member.

For hidden layer l, member g and probe input x_p, J_l = dh_l/dx is the ``[n_l, n_0]``
Jacobian of the layer's output (``benchinit.engine.models``: for a residual layer, the stream) with
respect to the input. Its spectrum here is the n_l eigenvalues lambda of J_l J_l^T, the
squared singular values (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017): when
n_l > n_0 it includes n_l - n_0 zeros, and the mean is then what mean-field theory
predicts, the product of the layers' chi (``benchinit.analysis.meanfield.jacobian_theory``). Per
member, pooled over the P probe inputs (all P n_l eigenvalues)::

    jac_sv2_mean = mean_p tr(J J^T) / n_l                 = E[lambda]
    jac_sv2_var  = mean_p ||J J^T||_F^2 / n_l - mean^2    = E[lambda^2] - E[lambda]^2

and at the last hidden layer the log10 of its min(n_0, n_L) singular values per probe input
(``torch.linalg.svdvals``; -inf for a zero one), for a spectrum histogram.

The Jacobian is built as an explicit product, J_l = A_l J_{l-1}, with the local Jacobian::

    plain     A_l = D_l N_l W_l            D_l = diag phi'(pre_l),  phi' by autograd
    residual  A_l = I + alpha D_l N_l W_l
    N_l       none: I;  batch: diag(gain / sqrt(var + eps)), the statistics held constant;
              layer: diag(gain / s) (I - 11^T / n - zhat zhat^T / n), per sample,
              s = sqrt(var + eps), zhat = (z - mean) / s: the exact Jacobian of layer norm

Batch norm's statistics are treated as constants: in eval mode the running ones; in training
mode those of ``batch`` (the batch the probe inputs come from) or, without one, of the probe
inputs themselves. The moments need no SVD: tr(JJ^T) = ||J||_F^2, and ||JJ^T||_F^2 comes from
the smaller Gram matrix (n_0 x n_0 or n_l x n_l).

Cost: explicit products against ``torch.func`` (``vmap`` over members and probes of
``jacfwd``), one CPU thread, float32, P = 8, ``tests/benchmarks/bench_jacobian.py``, three runs
on a shared 2-core machine (load 2.5 to 3), so ranges:

    seed stack, G = 40 x 100-100-100-100-100-100:  moments 128-167 ms, torch.func 144-244 ms;
        with the last layer's svdvals 215-340 ms; the signal pass's forward + backward on all
        1,000 inputs 232-282 ms
    G = 8 x 784-256-256:  moments 368-477 ms, torch.func 688-1063 ms; with svdvals 0.5-1.1 s

Explicit products are chosen: as fast or faster, and they cover residual and normalized layers
with the model's own forward (``StackedMLP.steps``) instead of a second definition. The seed
study's signal pass (about 1.5 s for its three stacks of 40) gains about 0.7-1 s: under the
2x budget. About half of it is the SVD; ``singular_values=False`` skips it.

Tables: ``jac_sv2_mean`` and ``jac_sv2_var`` are per-layer metrics of the ``layers`` table,
beside ``theory_jac_sv2_mean`` and ``theory_jac_sv2_var`` from :func:`spectrum_theory` (plain
models only). The spectrum is a histogram of the ``histograms`` table told apart by a
``metric`` column: ``activation`` for the activation histograms, ``jac_log10_sv`` for this one,
at the last hidden layer, with ``left``/``right`` in log10 units (``LOG10_SV_RANGE``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from benchinit.analysis.meanfield import jacobian_theory
from benchinit.engine.models import EPS, StackedMLP, Statistics, Step
from benchinit.engine.probes import derivative, histogram

Activation = Callable[[torch.Tensor], torch.Tensor]
PROBES = 8  # probe inputs per member: the Jacobian is taken at each
LOG10_SV_RANGE = (-4.0, 2.0)  # singular values 1e-4 .. 1e2; beyond, counted apart
LOG10_SV_BINS = 30  # 0.2 decades per bin


def input_jacobians(
    model: StackedMLP,
    x_probe: torch.Tensor,
    activation: Activation,
    *,
    batch: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """J_l = dh_l/dx ``[G, P, n_l, n_0]`` for each hidden layer l in turn (no gradients kept).

    ``x_probe`` is ``[P, n_0]`` (shared) or ``[G, P, n_0]``; ``batch`` (shared or per
    member) gives a training-mode batch norm the statistics it holds constant (default: those
    of ``x_probe``). Running statistics are not updated.
    """
    statistics = _constant_statistics(model, activation, batch)
    jt: torch.Tensor | None = None  # [G, P, n_0, n_l]: row i is d h_l / d x_i
    alpha = model.residual or 0.0
    with torch.no_grad():
        steps = model.steps(x_probe, activation, statistics=statistics, update=False)
        for layer, step in enumerate(steps):
            local = _through_affine(model, layer, jt)
            local = _through_norm(model, layer, local, step)
            local = local * derivative(activation, step.pre).unsqueeze(2)
            jt = jt + alpha * local if jt is not None and model.is_residual(layer) else local
            yield jt.mT


def jacobian_spectrum(
    model: StackedMLP,
    x_probe: torch.Tensor,
    activation: Activation,
    *,
    batch: torch.Tensor | None = None,
    singular_values: bool = True,
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Per hidden layer ``{"jac_sv2_mean": [G], "jac_sv2_var": [G]}`` (float64), and the
    last hidden layer's log10 singular values ``[G, P * min(n_0, n_L)]``.

    Arguments as for :func:`input_jacobians`; ``singular_values=False`` skips the SVD (the
    second result is then ``[G, 0]``). A model without hidden layers gives ``([], [G, 0])``.
    """
    stats: list[dict[str, torch.Tensor]] = []
    log10_sv = x_probe.new_zeros(model.members, 0)
    for layer, jacobian in enumerate(input_jacobians(model, x_probe, activation, batch=batch)):
        if layer == model.hidden - 1 and singular_values:  # the SVD gives the moments too
            singular = _singular_values(jacobian)
            log10_sv = singular.log10().flatten(1)
            stats.append(_moments_of(singular.double().square(), jacobian.shape[-2]))
        else:
            stats.append(_moments(jacobian.mT))
    return stats, log10_sv


def _singular_values(jacobian: torch.Tensor) -> torch.Tensor:
    """``[G, P, k]`` singular values (k = min(n_l, n_0)), NaN for a Jacobian with a
    non-finite entry (an exploded member; LAPACK would raise on it and fail the whole stack).

    They are the square roots of the eigenvalues of the smaller Gram matrix, J J^T or
    J^T J, formed and decomposed in float64: 3 to 5 times faster than ``svdvals`` of J
    for the 784-input Jacobians of a training study, and the squares are exact to float64
    rounding (1e-16 of the largest). A float32 Gram matrix is not enough: it blurs singular
    values below about 1e-3 of the largest, inside the spectrum histogram's range."""
    finite = torch.isfinite(jacobian).flatten(2).all(2)
    safe = torch.where(finite[..., None, None], jacobian, 0.0).double()
    rows, columns = safe.shape[-2:]
    gram = safe @ safe.mT if rows <= columns else safe.mT @ safe
    squares = torch.linalg.eigvalsh(gram).clamp_min(0.0)
    singular = squares.sqrt().flip(-1).to(jacobian.dtype)
    return torch.where(finite[..., None], singular, torch.nan)


def _constant_statistics(
    model: StackedMLP, activation: Activation, batch: torch.Tensor | None
) -> list[Statistics] | None:
    """A training-mode batch norm's per-layer statistics of ``batch`` (None otherwise)."""
    if batch is None or model.norm != "batch" or not model.training:
        return None
    with torch.no_grad():
        steps = model.steps(batch, activation, update=False)
        return [step.statistics for step in steps if step.statistics is not None]


def _through_affine(model: StackedMLP, layer: int, jt: torch.Tensor | None) -> torch.Tensor:
    """d z_l / d x: the kernel itself at layer 1, J_{l-1} W_l^T (one bmm) after."""
    kernel = model.kernels[layer].detach()  # [G, n_{l-1}, n_l]
    if jt is None:
        return kernel.unsqueeze(1)  # [G, 1, n_0, n_1]: the same for every probe input
    members, probes, inputs, width = jt.shape
    product = torch.bmm(jt.reshape(members, probes * inputs, width), kernel)
    return product.view(members, probes, inputs, -1)


def _through_norm(model: StackedMLP, layer: int, rows: torch.Tensor, step: Step) -> torch.Tensor:
    """Apply N_l (see the module docstring) to each row of ``rows`` ``[G, P, n_0, n_l]``."""
    if step.statistics is None or model.gains is None:
        return rows
    mean, var = step.statistics
    scale = torch.rsqrt(var + EPS)  # [G, P, 1] (layer) or [G, 1, n_l] (batch)
    gain = model.gains[layer].detach()[:, None, None, :]
    if model.norm == "batch":
        return rows * (scale.unsqueeze(2) * gain)
    zhat = ((step.z - mean) * scale).unsqueeze(2)  # [G, P, 1, n_l]
    units = rows.shape[-1]
    centered = rows - rows.mean(-1, keepdim=True)
    centered = centered - zhat * (rows * zhat).sum(-1, keepdim=True) / units
    return centered * (gain * scale.unsqueeze(2))


def _moments(jt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pooled mean and variance of the eigenvalues of J J^T, per member (float64)."""
    inputs, units = jt.shape[-2:]
    gram = jt @ jt.mT if inputs <= units else jt.mT @ jt
    first = torch.linalg.vector_norm(jt, dim=(-2, -1), dtype=torch.float64).square() / units
    second = torch.linalg.vector_norm(gram, dim=(-2, -1), dtype=torch.float64).square() / units
    mean = first.mean(1)
    return {"jac_sv2_mean": mean, "jac_sv2_var": second.mean(1) - mean.square()}


def _moments_of(squares: torch.Tensor, units: int) -> dict[str, torch.Tensor]:
    """The same from squared singular values ``[G, P, k]`` (the n_l - k others are 0)."""
    mean = squares.sum(-1).mean(1) / units
    second = squares.square().sum(-1).mean(1) / units
    return {"jac_sv2_mean": mean, "jac_sv2_var": second - mean.square()}


def log10_sv_histogram(log10_sv: torch.Tensor, bins: int = LOG10_SV_BINS) -> torch.Tensor:
    """Counts ``[G, bins + 2]`` of log10 singular values over ``LOG10_SV_RANGE``, with the
    values below and above it apart (:func:`benchinit.engine.probes.histogram`; a zero
    singular value, -inf, counts as below)."""
    return histogram(log10_sv, *LOG10_SV_RANGE, bins)


def weight_spread(weight: torch.Tensor) -> torch.Tensor:
    """``[G]`` tau(Q^2) / tau(Q)^2 of Q = W^T W (tau = trace / n_in) for ``[G, out, in]``
    weights: about 1 + in/out for i.i.d. ones, in/out for orthogonal ones with out <= in."""
    w = weight.detach().double()
    fan_out, fan_in = w.shape[-2:]
    gram = w @ w.mT if fan_out <= fan_in else w.mT @ w  # same nonzero eigenvalues
    first = w.square().sum((1, 2)) / fan_in
    second = gram.square().sum((1, 2)) / fan_in
    return second / first.square()


def spectrum_theory(
    model: StackedMLP, x: torch.Tensor, activation: Activation
) -> tuple[list[list[float]], list[list[float]]] | None:
    """Free-probability predictions of ``jac_sv2_mean`` and ``jac_sv2_var``, per member
    (outer) and hidden layer (inner), from each member's own weights (their mean square and
    spread, so Gaussian, uniform and orthogonal initializers all get theirs) and the second
    moment of ``x``. None for residual or normalized models, where the theory does not apply.
    """
    if model.residual is not None or model.norm != "none":
        return None
    weights = [w.detach().double() for w in model.weights[: model.hidden]]
    if not weights:
        return [[] for _ in range(model.members)], [[] for _ in range(model.members)]
    x2 = float(x.double().square().mean())
    widths = [weights[0].shape[2]] + [w.shape[1] for w in weights]
    w2 = torch.stack([w.square().mean((1, 2)) for w in weights], 1)
    spreads = torch.stack([weight_spread(w) for w in weights], 1)
    biases = model.biases
    b2 = (
        torch.stack([b.detach().double().square().mean(1) for b in biases[: model.hidden]], 1)
        if biases is not None
        else torch.zeros_like(w2)
    )
    means, variances = [], []
    for g in range(model.members):
        m, v = jacobian_theory(
            activation, x2, w2[g].tolist(), widths, b2[g].tolist(), spreads[g].tolist()
        )
        means.append(m)
        variances.append(v)
    return means, variances


@dataclass
class Spectrum:
    """What one Jacobian probe of a stack records (see the module docstring)."""

    stats: list[dict[str, torch.Tensor]]  # per hidden layer: jac_sv2_mean, jac_sv2_var [G]
    histogram: torch.Tensor | None  # [G, LOG10_SV_BINS] at the last hidden layer, or None
    theory: dict[str, list[list[float]]]  # theory_jac_sv2_* as [member][layer]; {} if none


def probe(
    model: StackedMLP,
    x: torch.Tensor,
    activation: Activation,
    *,
    probes: int = PROBES,
    singular_values: bool = True,
) -> Spectrum:
    """The spectrum at the first ``probes`` rows of ``x`` (``x`` is the batch that batch
    norm's training-mode statistics come from), in float32 or better whatever the model's
    precision, and its theory where it applies."""
    x = x.to(dtype=model.kernels[0].dtype)
    with torch.no_grad():
        stats, log10_sv = jacobian_spectrum(
            model, x[:probes], activation, batch=x, singular_values=singular_values
        )
        predicted = spectrum_theory(model, x, activation)
    theory = {}
    if predicted is not None:
        theory = {"theory_jac_sv2_mean": predicted[0], "theory_jac_sv2_var": predicted[1]}
    histogram = log10_sv_histogram(log10_sv) if log10_sv.shape[1] else None
    return Spectrum(stats, histogram, theory)
