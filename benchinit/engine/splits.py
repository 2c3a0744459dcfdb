"""The validation split applied to a dataset's tensors: the plugin's own split checked, or
the training samples carved by :func:`benchinit.study.validation.validation_indices`."""

from __future__ import annotations

import dataclasses

import torch

from benchinit.plugins.descriptors import Data
from benchinit.study.validation import validation_indices


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
