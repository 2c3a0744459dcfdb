"""The validation split: carved deterministically, disjoint, sized, stratified; or the plugin's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchinit.builtin.datasets import blobs, gaussian, linear
from benchinit.engine.splits import split_validation
from benchinit.plugins.descriptors import Data
from benchinit.study.settings import Invalid
from benchinit.study.validation import (
    DEFAULT_FRACTION,
    validation_fraction,
    validation_indices,
    validation_seed,
)


def rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.tolist()}


def test_the_seed_comes_from_the_datasets_own_configuration():
    seed = validation_seed("gaussian", {"samples": 100, "seed": 0})
    assert seed == validation_seed("gaussian", {"seed": 0, "samples": 100})  # canonical
    assert 0 <= seed < 2**63
    assert seed != validation_seed("gaussian", {"samples": 100, "seed": 1})
    assert seed != validation_seed("blobs", {"samples": 100, "seed": 0})


def test_carving_is_deterministic_disjoint_and_complete():
    data = gaussian(samples=500, features=5, seed=0)
    seed = validation_seed("gaussian", {"samples": 500, "features": 5, "seed": 0})
    first = split_validation(data, DEFAULT_FRACTION, seed)
    again = split_validation(gaussian(samples=500, features=5, seed=0), DEFAULT_FRACTION, seed)
    assert first.x_val is not None and first.y_val is not None
    assert again.x_val is not None
    assert torch.equal(first.x_val, again.x_val) and torch.equal(first.x_train, again.x_train)
    assert (len(first.x_train), len(first.x_val)) == (450, 50)
    assert not rows(first.x_train) & rows(first.x_val)
    assert rows(first.x_train) | rows(first.x_val) == rows(data.x_train)
    assert torch.equal(first.x_test, data.x_test) and torch.equal(first.y_test, data.y_test)
    other = split_validation(data, DEFAULT_FRACTION, seed + 1)
    assert other.x_val is not None and not torch.equal(other.x_val, first.x_val)


def test_inputs_and_targets_stay_paired_and_in_order():
    data = linear(samples=200, seed=3)
    out = split_validation(data, 0.25, 7)
    train, val = validation_indices(200, 0.25, 7)
    assert out.x_val is not None and out.y_val is not None
    assert torch.equal(out.x_val, data.x_train[torch.from_numpy(val)])
    assert torch.equal(out.y_val, data.y_train[torch.from_numpy(val)])
    assert torch.equal(out.y_train, data.y_train[torch.from_numpy(train)])
    assert (np.diff(train) > 0).all() and (np.diff(val) > 0).all()


@pytest.mark.parametrize(
    ("n", "fraction", "size"),
    [(1000, 0.1, 100), (10, 0.1, 1), (10, 0.01, 1), (3, 0.5, 2), (7, 0.25, 2), (2, 0.9, 1)],
)
def test_sizes_round_and_keep_one_of_each_side(n, fraction, size):
    train, val = validation_indices(n, fraction, 0)
    assert len(val) == size and len(train) == n - size


def test_one_sample_cannot_be_split():
    with pytest.raises(ValueError, match="at least one must be left to train on"):
        validation_indices(1, 0.1, 0)


def test_fraction_zero_turns_it_off():
    data = blobs(samples=50, seed=0)
    assert split_validation(data, 0.0, 0) is data
    train, val = validation_indices(50, 0.0, 0)
    assert len(train) == 50 and len(val) == 0


def test_stratified_for_classification():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    train, val = validation_indices(len(labels), 0.1, 5, labels)
    assert np.bincount(labels[val]).tolist() == [40, 30, 20, 10]
    assert len(train) + len(val) == len(labels)


def test_stratification_keeps_the_total_exact_and_every_class_near_its_share():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, size=523)
    _, val = validation_indices(len(labels), 0.13, 1, labels)
    assert len(val) == round(0.13 * 523)
    expected = 0.13 * np.bincount(labels) * len(val) / (0.13 * 523)
    assert np.abs(np.bincount(labels[val], minlength=7) - expected).max() < 1


def test_a_rare_class_is_not_left_out_by_chance():
    labels = np.array([0] * 95 + [1] * 5)
    for seed in range(20):
        _, val = validation_indices(100, 0.2, seed, labels)
        assert np.bincount(labels[val]).tolist() == [19, 1]


def test_classification_data_is_stratified_and_regression_is_not():
    data = blobs(samples=300, classes=3, seed=0)
    out = split_validation(data, 0.2, 11)
    assert out.y_val is not None
    counts = np.bincount(data.y_train.numpy())
    assert np.abs(np.bincount(out.y_val.numpy()) - 0.2 * counts).max() <= 1
    regression = split_validation(linear(samples=100), 0.2, 11)
    assert regression.x_val is not None and len(regression.x_val) == 20


def test_a_plugins_own_validation_split_is_honoured():
    data = blobs(samples=100, seed=0)
    own = dataclasses.replace(data, x_val=data.x_test[:10], y_val=data.y_test[:10])
    assert split_validation(own, 0.1, 0) is own
    assert split_validation(own, 0.0, 0) is own


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"y_val": None}, "give both x_val and y_val"),
        ({"y_val": torch.zeros(3, dtype=torch.int64)}, "one target per row"),
        ({"x_val": torch.zeros(10, 7)}, "differ in features"),
        ({"y_val": torch.zeros(10)}, "shaped and typed like y_train"),
        ({"y_val": torch.full((10,), 9, dtype=torch.int64)}, "labels must lie in 0..2"),
        ({"x_val": torch.full((10, 2), float("nan"))}, "NaN or infinite"),
    ],
)
def test_a_broken_validation_split_is_a_data_error(change, words):
    data = blobs(samples=100, seed=0)
    own = dataclasses.replace(data, x_val=data.x_test[:10], y_val=data.y_test[:10])
    with pytest.raises(ValueError, match=words):
        split_validation(dataclasses.replace(own, **change), 0.1, 0, "blobs")


def test_data_without_validation_fields_still_builds():
    data = Data(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64), torch.zeros(2, 2),
                torch.zeros(2, dtype=torch.int64), "classification", 2)  # fmt: skip
    assert data.x_val is None and data.y_val is None


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.1", None])
def test_the_fraction_setting_is_checked(bad):
    with pytest.raises(Invalid, match=r"in \[0, 1\)"):
        validation_fraction(bad)
    assert validation_fraction(0) == 0.0 and validation_fraction(0.2) == 0.2


ARRAYS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")


def _numpy_blobs(*, arrays: str = "val") -> Data:
    """blobs with its own validation split, some of it as numpy arrays (test plugin)."""
    data = blobs(samples=100, seed=0)
    data = dataclasses.replace(data, x_val=data.x_test[:10], y_val=data.y_test[:10])
    fields = {"val": ("x_val", "y_val"), "all": ARRAYS, "list": ("x_test",)}[arrays]
    if arrays == "list":
        return dataclasses.replace(data, x_test=data.x_test.tolist())
    return dataclasses.replace(data, **{f: getattr(data, f).numpy() for f in fields})


def _load(arrays: str) -> Data:
    from benchinit import Dataset, hookimpl
    from benchinit.engine.stack import load_data
    from benchinit.plugins.registry import Registry

    class Plugin:
        @hookimpl
        def benchinit_datasets(self) -> list[Dataset]:
            return [Dataset("numpy_blobs", _numpy_blobs)]

    registry = Registry(autoload=False, objects=[(Plugin(), "numpy_blobs")])
    config = {"name": "numpy_blobs", "params": {"arrays": arrays}, "validation": 0.1}
    return load_data(registry, config)


@pytest.mark.parametrize("arrays", ["val", "all"])
def test_a_dataset_may_return_numpy_arrays_in_any_split(arrays):
    data = _load(arrays)
    expected = blobs(samples=100, seed=0)
    for field in ARRAYS:
        assert isinstance(getattr(data, field), torch.Tensor), field
    assert torch.equal(data.x_val, expected.x_test[:10]) and data.y_val.dtype == torch.int64
    assert torch.equal(data.x_train, expected.x_train), "its own split: nothing carved"


def test_an_array_that_is_neither_a_tensor_nor_numpy_is_a_clear_data_error():
    with pytest.raises(TypeError, match=r"dataset 'numpy_blobs': x_test must be a torch\.Tensor"):
        _load("list")
