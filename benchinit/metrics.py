"""Every metric benchinit records, in one table: which way is better and how to show it.

One row (a small frozen :class:`Metric`) per metric and table it lives in:

- ``kind="train"``: final per-run metrics of training studies (the ``runs`` table); their
  curves share the name, as ``split_metric`` (the ``curves`` rows ``split="test",
  metric="accuracy"`` are ``test_accuracy``).
- ``kind="signal"``: per-run metrics of signal studies, measured at initialization.
- ``kind="layer"``: per-layer statistics (the ``layers`` table), drawn per layer.

``direction``: ``max`` (higher is better), ``min`` (lower is better), or None for a
description that is neither (``act_mean``). ``bounds``: the range every value lies in;
intervals drawn or tabled are clipped to it (the true mean lies inside it, so clipping a
confidence interval never removes the truth and keeps its coverage). ``scale``: the y axis
that shows the metric honestly: ``linear`` for bounded metrics (accuracies, fractions,
entropies), ``log`` for losses and gradient norms (they span decades; a non-positive value,
as a Gaussian likelihood loss may give, falls back to linear), ``auto`` for quantities that
are log-like only sometimes (a standard deviation is linear unless its values span more
than 30x).

Adding a metric is adding a row: a new run metric (``val_accuracy``), a new layer
statistic (``jac_sv2_mean``). ``METRICS``, ``TRAIN_METRICS`` and ``SIGNAL_METRICS`` (name ->
direction) are derived from the table for the code that only needs directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Direction = Literal["min", "max"]
Kind = Literal["train", "signal", "layer"]
Scale = Literal["linear", "log", "auto"]

INF = math.inf
HIST_BINS = 30  # benchinit.engine.probes.BINS (not imported: probes needs torch); a test checks


@dataclass(frozen=True)
class Metric:
    """One metric: what it is called, which way is better, and how it is drawn."""

    name: str
    kind: Kind
    direction: Direction | None  # None: a description, neither better nor worse
    label: str  # axis label and caption words
    bounds: tuple[float, float] = (-INF, INF)  # every value lies in [low, high]
    scale: Scale = "linear"
    doc: str = ""

    @property
    def bounded(self) -> bool:
        """Whether the range is finite at either end (then intervals may need clipping)."""
        return math.isfinite(self.bounds[0]) or math.isfinite(self.bounds[1])

    def range_text(self) -> str:
        """The range as a reader reads it: '[0, 1]', '[0, ∞)'."""
        low, high = self.bounds
        left = "(-∞" if low == -INF else f"[{low:g}"
        right = "∞)" if high == INF else f"{high:.3g}]"
        return f"{left}, {right}"


UNIT = (0.0, 1.0)
POSITIVE = (0.0, INF)

METRIC_TABLE: tuple[Metric, ...] = (
    # --- training studies: one value per run (and a curve per epoch for the split ones) ---
    Metric(
        "test_accuracy",
        "train",
        "max",
        "test accuracy",
        UNIT,
        "linear",
        "share of test samples classified right (classification)",
    ),
    Metric(
        "test_loss",
        "train",
        "min",
        "test loss",
        scale="log",
        doc="mean loss over the test split after the last epoch",
    ),
    Metric(
        "test_mse",
        "train",
        "min",
        "test MSE",
        POSITIVE,
        "log",
        "regression: mean squared error of the (mean) prediction on the test split; unlike "
        "test_loss it does not depend on the loss trained with",
    ),
    Metric(
        "train_loss",
        "train",
        "min",
        "training loss",
        scale="log",
        doc="mean minibatch loss over the last epoch",
    ),
    Metric(
        "epochs_to_target",
        "train",
        "min",
        "epochs to target accuracy",
        POSITIVE,
        "linear",
        "first epoch whose held-out accuracy reached train.target_accuracy (the validation "
        "split's, or the test split's without one)",
    ),
    Metric(
        "val_accuracy",
        "train",
        "max",
        "validation accuracy",
        UNIT,
        "linear",
        "share of validation samples classified right after the last epoch (what tuning "
        "selects on)",
    ),
    Metric(
        "val_loss",
        "train",
        "min",
        "validation loss",
        scale="log",
        doc="mean loss over the validation split after the last epoch",
    ),
    Metric(
        "val_mse",
        "train",
        "min",
        "validation MSE",
        POSITIVE,
        "log",
        "regression: squared error of the point prediction on the validation split",
    ),
    # --- signal studies: one value per run, at initialization ---
    Metric(
        "act_entropy",
        "signal",
        "max",
        "activation entropy (bits)",
        (0.0, math.log2(HIST_BINS)),
        "linear",
        "entropy (bits) of the last hidden layer's activation histogram (30 bins over the "
        "activation's range): how spread the activations are, the lesson's criterion in one "
        "number. 0: every unit says the same thing; log2(30) = 4.9: uniform over the range",
    ),
    Metric(
        "std_drift",
        "signal",
        "min",
        "std drift (halvings or doublings)",
        POSITIVE,
        "linear",
        "|log2(act_std at the last hidden layer / act_std at the first)|: how many halvings "
        "or doublings the signal drifts through the network (0 keeps it; the lesson's goal)",
    ),
    Metric(
        "saturated_frac",
        "signal",
        "min",
        "saturated fraction",
        UNIT,
        "linear",
        "share of saturated entries at the last hidden layer (phi' < 10% of its maximum)",
    ),
    Metric(
        "dead_frac",
        "signal",
        "min",
        "dead fraction",
        UNIT,
        "linear",
        "share of exactly-zero outputs at the last hidden layer",
    ),
    Metric(
        "grad_drift",
        "signal",
        "min",
        "gradient drift (decades)",
        POSITIVE,
        "linear",
        "|log10(grad_norm of layer 1 / grad_norm of the last layer)|: vanishing or "
        "exploding gradients across the network, in decades (0: every layer gets the same "
        "gradient size)",
    ),
    Metric(
        "jac_spread",
        "signal",
        "min",
        "Jacobian spread (var / mean^2)",
        POSITIVE,
        "auto",
        "var / mean^2 of the squared singular values of the input-output Jacobian at the "
        "last hidden layer (benchinit.engine.jacobian): 0 is dynamical isometry, every direction "
        "scaled alike; i.i.d. Gaussian weights on a linear network give the depth",
    ),
    # --- per-layer statistics (the layers table) ---
    Metric("act_mean", "layer", None, "activation mean", doc="mean of the activations"),
    Metric("act_std", "layer", None, "activation std", POSITIVE, "auto"),
    Metric("preact_std", "layer", None, "pre-activation std", POSITIVE, "auto"),
    Metric(
        "theory_std",
        "layer",
        None,
        "pre-activation std, mean-field theory",
        POSITIVE,
        "auto",
        "the mean-field prediction of preact_std (Poole et al. 2016)",
    ),
    Metric(
        "saturated_frac",
        "layer",
        "min",
        "saturated fraction",
        UNIT,
        "linear",
        "share of entries where the activation's derivative is below 10% of its maximum",
    ),
    Metric("dead_frac", "layer", "min", "dead fraction", UNIT, "linear", "share of exact zeros"),
    Metric(
        "dead_unit_frac",
        "layer",
        "min",
        "dead units",
        UNIT,
        "linear",
        "share of units (neurons; channels of a convolution) exactly 0 on every probe sample",
    ),
    Metric(
        "saturated_unit_frac",
        "layer",
        "min",
        "saturated units",
        UNIT,
        "linear",
        "share of units (neurons; channels of a convolution) saturated on every probe sample",
    ),
    Metric("grad_norm", "layer", None, "gradient norm", POSITIVE, "log"),
    Metric(
        "jac_sv2_mean",
        "layer",
        None,
        "Jacobian: mean squared singular value",
        POSITIVE,
        "auto",
        "mean of the squared singular values of the Jacobian from the input to the layer",
    ),
    Metric(
        "jac_sv2_var",
        "layer",
        None,
        "Jacobian: variance of squared singular values",
        POSITIVE,
        "auto",
        "their variance, pooled over the probe inputs",
    ),
    Metric(
        "theory_jac_sv2_mean",
        "layer",
        None,
        "Jacobian mean, free-probability theory",
        POSITIVE,
        "auto",
    ),
    Metric(
        "theory_jac_sv2_var",
        "layer",
        None,
        "Jacobian variance, free-probability theory",
        POSITIVE,
        "auto",
    ),
)

_BY_KEY: dict[tuple[str, str], Metric] = {(m.kind, m.name): m for m in METRIC_TABLE}
assert len(_BY_KEY) == len(METRIC_TABLE), "a metric is listed twice for one kind"


def _directions(kind: Kind) -> dict[str, Direction]:
    out: dict[str, Direction] = {}
    for m in METRIC_TABLE:
        if m.kind == kind:
            assert m.direction is not None, f"run metric {m.name} needs a direction"
            out[m.name] = m.direction
    return out


TRAIN_METRICS: dict[str, Direction] = _directions("train")
SIGNAL_METRICS: dict[str, Direction] = _directions("signal")
METRICS: dict[str, dict[str, Direction]] = {"train": TRAIN_METRICS, "signal": SIGNAL_METRICS}


def metric_info(name: str, kind: str) -> Metric:
    """The table's row for ``name`` in ``kind``; an unknown metric (a plugin's, a newer
    file's) gets a neutral row: unbounded, linear unless wide, labelled by its name."""
    found = _BY_KEY.get((kind, name))
    if found is not None:
        return found
    own: Kind = "layer" if kind == "layer" else "signal" if kind == "signal" else "train"
    return Metric(name, own, None, name, scale="auto")


def curve_info(split: str, name: str) -> Metric:
    """The row for a learning curve (``split``, ``metric``) of the curves table."""
    found = _BY_KEY.get(("train", f"{split}_{name}"))
    if found is not None:
        return found
    return Metric(f"{split}_{name}", "train", None, f"{split} {name}", scale="auto")


def default_metric(kind: str, task: str) -> str:
    """The metric a study ranks by unless it names one."""
    if kind == "signal":
        return "act_entropy"
    return "test_accuracy" if task == "classification" else "test_mse"
