"""Will it fit? An estimate of a stacked batch's memory, checked before anything runs.

A cell is cheap to describe and can be enormous to compute (``model.width = 10000000`` asks
for tens of gigabytes per member). :func:`check` estimates the peak memory of the largest
planned batch times the batches that run at once, and refuses a plan that exceeds the
memory the device has available, with the estimate and the limit in the message. The
estimate is deliberately generous (every tensor the engine keeps, twice for temporaries)
and only meant to stop what clearly cannot run; the caller can skip the check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from benchinit.engine.evaluation import eval_chunk
from benchinit.engine.execute import Batch
from benchinit.engine.model_plugin import member_size
from benchinit.engine.models import mlp_size
from benchinit.engine.stack import bind, dataset_size, load_data
from benchinit.errors import BenchinitError, plugin_failed
from benchinit.plugins.guard import plugin_code
from benchinit.plugins.registry import registry_from

OUTPUTS_GUESS = 100  # a head's outputs when the data is not loaded (small either way)


def _shape(batch: Batch) -> tuple[int, int, int, int, tuple[int, ...] | None]:
    """(features, outputs, training samples, test samples, a sample's image shape or None)
    of the batch's dataset: from the
    dataset's ``size`` when it has one (nothing allocated), else from the loaded data. A
    dataset whose ``size`` or data is broken counts as empty here: its cells fail with the
    plugin's error when they run (benchinit.engine.stack.load_data checks both)."""
    config = batch.cells[0].config["data"]
    registry = registry_from(batch.registry)
    try:
        with plugin_code():
            size = dataset_size(registry, bind(registry, "dataset", config))
            if size is not None:
                train, test, features = size
                return features, OUTPUTS_GUESS, train, test, None
            data = load_data(registry, config)
    except BaseException as exc:  # a broken dataset fails its cells when they run
        if not plugin_failed(exc):
            raise
        return 0, 0, 0, 0, None
    return data.features, data.outputs, len(data.x_train), len(data.x_test), data.shape


def estimate(batch: Batch) -> int:
    """Peak bytes one batch needs on its device (an upper estimate)."""
    config = batch.cells[0].config
    members = len(batch.cells)
    model = config["model"]
    width, depth = int(model["width"]), int(model["depth"])
    scalar = 8 if model["dtype"] == "float64" else 4
    features, outputs, n_train, n_test, shape = _shape(batch)
    train = config["kind"] == "train"
    try:  # the model's own arithmetic (the MLP's: weights and biases; units per layer)
        registry = registry_from(batch.registry)
        one, hidden, _ = member_size(registry, model, features, shape, 2 * outputs * train)
    except BaseException as exc:  # a model that cannot be built fails its cells when they run
        if not plugin_failed(exc):
            raise
        one, hidden = mlp_size(features, width, depth, 2 * outputs if train else 0)
        one += hidden
    params = one * members
    data = (n_train + n_test) * features * scalar
    if train:
        settings = config["train"]
        # a step takes at most every training sample, the probes min(probe_samples, n), an
        # evaluation pass its chunk of a split (benchinit.engine.evaluation.eval_chunk, here
        # with every hidden unit as the widest layer: fewer rows, never fewer bytes)
        rows = max(
            min(settings["batch_size"], n_train),
            min(settings["probe_samples"], n_train),
            min(eval_chunk(members, hidden, scalar), max(n_train, n_test)),
        )
        # weights, gradients, two optimizer states, the divergence snapshot
        state = 5 * params * scalar
        activations = 2 * members * rows * hidden * 2 * scalar  # pre-activation and output
        order = members * n_train * 8  # each member's permutation (int64)
        return state + activations + data + order
    # signal: weights and gradients; per layer pre-activation, output, their gradients and
    # the derivative, for every member and sample
    return 2 * params * scalar + 2 * members * n_train * hidden * 5 * scalar + data


def available(device: str) -> int:
    """Bytes the device has free now (CPU: MemAvailable, else physical memory)."""
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check(batches: Sequence[Batch], device: str, concurrent: int = 1) -> None:
    """Refuse (BenchinitError) a plan whose batches cannot fit in the device's memory."""
    if not batches:
        return
    sizes = sorted(((estimate(b), b) for b in batches), key=lambda x: x[0], reverse=True)
    need = sum(size for size, _ in sizes[: max(1, concurrent)])
    have = available(device)
    if need <= have:
        return
    biggest: Any = sizes[0][1].cells[0].config
    model = biggest["model"]
    raise BenchinitError(
        f"the run needs about {size_text(need)} of memory on {device} (the largest stacked "
        f"batch: {len(sizes[0][1].cells)} cells of a depth-{model['depth']}, "
        f"width-{model['width']} MLP; {min(concurrent, len(batches))} batch(es) at once), "
        f"more than the {size_text(have)} available; shrink the model or the data, run "
        "fewer jobs at once, or skip this check with {check_memory}",
        options={"check_memory": "check_memory=False"},
    )
