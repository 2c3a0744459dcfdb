"""The validation split: carved from the training split by benchinit, not by the dataset.

``[data] validation = 0.1`` (the default; 0 turns it off) moves that share of a dataset's
training samples into a validation split, which tuning selects on; the test split is read
only for the final numbers. Dataset plugins need no change. A plugin whose data has its own
validation split returns it in ``Data.x_val`` and ``Data.y_val``: it is used as given
(checked like the other splits) and nothing is carved, whatever the fraction.

How the split is carved (:func:`split_validation`):

- ``round(fraction * n)`` samples, at least 1 when the fraction is above 0, and at least 1
  sample is left to train on;
- **deterministically** from :func:`validation_seed`, a hash of the dataset's name and
  parameters (its own ``seed`` among them): the same data always gives the same split, in
  any process, whatever the cell's seed (every configuration and seed selects on the same
  samples: common random numbers, as for the data order);
- **stratified** for classification: every class gives its share of the samples (largest
  remainders, so the total is exact), so the validation split has the training split's
  class proportions up to one sample per class. On small data a uniform draw can leave a
  rare class out of the validation split or skew it by chance; stratifying costs nothing.
- both splits keep the training split's order (indices sorted).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from benchinit.plugins.descriptors import Data
from benchinit.study.cells import canonical_json
from benchinit.study.settings import Invalid

DEFAULT_FRACTION = 0.1


def validation_fraction(value: Any) -> float:
    """``[data] validation`` checked: a number in [0, 1) (a settings check)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise Invalid(f"must be a share of the training samples in [0, 1), got {value!r}")
    return float(value)


def validation_seed(name: str, params: Mapping[str, Any]) -> int:
    """A 63-bit seed from a dataset's name and parameters (not its plugin version: an
    edit to a plugin file that does not change its data keeps the split)."""
    text = "benchinit:validation:" + canonical_json({"name": name, "params": dict(params)})
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def validation_indices(
    n: int,
    fraction: float,
    seed: int,
    classes: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train indices, validation indices) of ``n`` training samples, both sorted.

    ``classes``: the class of each sample, to stratify by (None: a uniform draw).
    """
    validation_fraction(fraction)
    if fraction == 0:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if n < 2:
        raise ValueError(
            f"cannot carve a validation split from {n} training sample(s): at least one "
            "must be left to train on"
        )
    size = min(max(1, math.floor(fraction * n + 0.5)), n - 1)
    rng = np.random.default_rng(seed)
    if classes is None:
        chosen = rng.permutation(n)[:size]
    else:
        labels = np.asarray(classes)
        kinds, counts = np.unique(labels, return_counts=True)
        quota = size * counts / n
        share = np.floor(quota).astype(np.int64)
        extra = np.argsort(-(quota - share), kind="stable")[: size - int(share.sum())]
        share[extra] += 1
        chosen = np.concatenate(
            [
                rng.permutation(np.flatnonzero(labels == kind))[:take]
                for kind, take in zip(kinds, share, strict=True)
            ]
        )
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def split_validation(data: Data, fraction: float, seed: int, name: str = "dataset") -> Data:
    """``data`` with its validation split: the plugin's own (checked), else ``fraction`` of
    the training samples carved out with ``seed`` (stratified for classification); with
    fraction 0 and none of its own, ``data`` unchanged (``x_val`` None). ``name`` is the
    dataset's, for error messages."""
    if data.x_val is not None or data.y_val is not None:
        check_validation(data, name)
        return data
    if fraction == 0:
        return data
    classes = data.y_train.numpy() if data.task == "classification" else None
    train, val = validation_indices(len(data.x_train), fraction, seed, classes)
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return dataclasses.replace(
        data,
        x_train=data.x_train[train_t],
        y_train=data.y_train[train_t],
        x_val=data.x_train[val_t],
        y_val=data.y_train[val_t],
    )


def check_validation(data: Data, name: str) -> None:
    """Raise ValueError unless a plugin's own validation split is usable: both arrays,
    ``[n, features]`` inputs with one target per row, finite, labels in range."""
    x, y = data.x_val, data.y_val
    if x is None or y is None:
        raise ValueError(f"dataset '{name}': give both x_val and y_val, or neither")
    if x.dim() != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"dataset '{name}': x_val must be [n, features] (n > 0) with one target per "
            f"row, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[1] != data.x_train.shape[1]:
        raise ValueError(f"dataset '{name}': validation and train inputs differ in features")
    if y.dtype != data.y_train.dtype or y.shape[1:] != data.y_train.shape[1:]:
        raise ValueError(f"dataset '{name}': y_val must be shaped and typed like y_train")
    if not torch.isfinite(x).all() or (y.is_floating_point() and not torch.isfinite(y).all()):
        raise ValueError(f"dataset '{name}': the validation split holds NaN or infinite values")
    if data.task == "classification" and not (int(y.min()) >= 0 and int(y.max()) < data.outputs):
        raise ValueError(f"dataset '{name}': validation labels must lie in 0..{data.outputs - 1}")
