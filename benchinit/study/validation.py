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

import hashlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from benchinit.lazy import lazy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:  # the study loader's errors need no numpy: it loads when indices are drawn
    np = lazy("numpy")

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
