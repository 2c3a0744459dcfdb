"""The per-run metrics a study can rank, compare and report by, and which way is better.

``max``: higher is better; ``min``: lower is better.
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["min", "max"]

TRAIN_METRICS: dict[str, Direction] = {
    "test_accuracy": "max",  # share of test samples classified right (classification)
    "test_loss": "min",  # mean loss over the test split after the last epoch
    "test_mse": "min",  # regression: mean squared error of the (mean) prediction on the test
    # split; unlike test_loss it does not depend on the loss trained with
    "train_loss": "min",  # mean minibatch loss over the last epoch
    "epochs_to_target": "min",  # first epoch whose held-out accuracy reached the target
    # (train.target_accuracy; the validation split's accuracy, the test split's without one)
    "val_accuracy": "max",  # accuracy on the validation split after the last epoch
    "val_loss": "min",  # loss on the validation split after the last epoch
    "val_mse": "min",  # regression: squared error on the validation split (see test_mse)
}

SIGNAL_METRICS: dict[str, Direction] = {
    # Entropy (bits) of the last hidden layer's activation histogram (30 bins over the
    # activation's range): how spread the activations are, the lesson's criterion in one
    # number. 0: every unit says the same thing; log2(30) = 4.9: uniform over the range.
    "act_entropy": "max",
    # |log2(act_std at the last hidden layer / act_std at the first)|: how many halvings or
    # doublings the signal drifts through the network (0 keeps it; the lesson's goal).
    "std_drift": "min",
    # share of saturated entries at the last hidden layer (phi' < 10% of its maximum)
    "saturated_frac": "min",
    # share of exactly-zero outputs at the last hidden layer
    "dead_frac": "min",
    # |log10(grad_norm of layer 1 / grad_norm of the last layer)|: vanishing or exploding
    # gradients across the network, in decades (0: every layer gets the same gradient size)
    "grad_drift": "min",
    # var / mean^2 of the squared singular values of the input-output Jacobian at the last
    # hidden layer (benchinit.jacobian): 0 is dynamical isometry (every direction scaled
    # alike); i.i.d. Gaussian weights on a linear network give the depth
    "jac_spread": "min",
}

METRICS: dict[str, dict[str, Direction]] = {"train": TRAIN_METRICS, "signal": SIGNAL_METRICS}


def default_metric(kind: str, task: str) -> str:
    if kind == "signal":
        return "act_entropy"
    return "test_accuracy" if task == "classification" else "test_mse"
