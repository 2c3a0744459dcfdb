"""Synthetic result sets of any size, written straight into a results folder.

For report benchmarks and scale tests: the tables have the shape and dtypes benchinit
writes (runs, curves, layers, histograms) with plausible values, without training anything.
``runs_frame`` + ``write_runs`` write just a runs table with chosen values, for compare and
history tests whose truth must be known exactly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchinit.results.schema import COLUMNS, conform
from benchinit.results.store import SCHEMA_VERSION, Store

INITIALIZERS = [
    "zeros",
    "normal",
    "normal(std=0.01)",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "orthogonal",
]
ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "elu"]
OPTIMIZERS = ["adam", "sgd(lr=0.1)"]


def write_synthetic(
    folder: Path,
    *,
    seeds: int = 10,
    epochs: int = 20,
    layers: int = 3,
    chunk: int = 50,
    losses: tuple[str, ...] = ("cross_entropy",),
) -> int:
    """Write a 10 x 5 x 2 x ``losses`` x ``seeds`` result set (1,000 cells by default)."""
    rng = np.random.default_rng(0)
    store = Store(folder, create=True)
    axes = ["initializer", "activation", "optimizer", "loss"]
    configs = list(itertools.product(INITIALIZERS, ACTIVATIONS, OPTIMIZERS, losses))
    cells = []
    for n, (config, seed) in enumerate(itertools.product(configs, range(seeds))):
        cells.append((f"{n:016x}", dict(zip(axes, config, strict=True)), seed))
    for start in range(0, len(cells), chunk):
        part = cells[start : start + chunk]
        runs, curves, layer_rows, hists = [], [], [], []
        for cell, labels, seed in part:
            quality = (INITIALIZERS.index(labels["initializer"]) + 1) / len(INITIALIZERS)
            status = "diverged" if rng.random() < 0.02 else "ok"
            accuracy = 0.1 + 0.85 * quality * (1 - np.exp(-np.arange(epochs + 1) / 5))
            accuracy = np.clip(accuracy + rng.normal(0, 0.01, epochs + 1), 0, 1)
            runs.append(
                {
                    "cell": cell,
                    **labels,
                    "seed": seed,
                    "status": status,
                    "error": "loss became non-finite in epoch 3" if status != "ok" else "",
                    "diverged_epoch": 3 if status != "ok" else None,
                    "train_loss": float(2.3 * (1 - accuracy[-1])),
                    "test_loss": float(2.3 * (1 - accuracy[-1]) + 0.05),
                    "test_accuracy": float(accuracy[-1]),
                    "epochs_to_target": np.nan,
                    "seconds": 0.5,
                    "device": "cpu",
                }
            )
            for epoch in range(epochs + 1):
                for split, metric, value in (
                    ("train", "loss", 2.3 * (1 - accuracy[epoch])),
                    ("test", "loss", 2.3 * (1 - accuracy[epoch]) + 0.05),
                    ("test", "accuracy", accuracy[epoch]),
                ):
                    curves.append((cell, epoch, split, metric, float(value)))
            for phase, layer in itertools.product(("init", "final"), range(1, layers + 1)):
                std = quality * 0.9**layer * (1.2 if phase == "final" else 1.0)
                for metric, value in (
                    ("act_mean", 0.1),
                    ("act_std", std),
                    ("preact_std", std * 1.4),
                    ("saturated_frac", 0.1),
                    ("dead_frac", 0.3),
                    ("grad_norm", 10.0**-layer),
                    ("theory_std", std * 1.4),
                ):
                    if metric == "theory_std" and phase == "final":
                        continue
                    layer_rows.append((cell, phase, layer, metric, value * rng.uniform(0.9, 1.1)))
                counts = rng.multinomial(51200, np.ones(30) / 30)
                for b in range(30):
                    hists.append((cell, phase, layer, b, b / 10, (b + 1) / 10, int(counts[b])))
        store.write(
            {
                "runs": conform("runs", pd.DataFrame(runs)),
                "curves": conform(
                    "curves",
                    pd.DataFrame(curves, columns=["cell", "epoch", "split", "metric", "value"]),
                ),
                "layers": conform(
                    "layers",
                    pd.DataFrame(layer_rows, columns=["cell", "phase", "layer", "metric", "value"]),
                ),
                "histograms": conform(
                    "histograms",
                    pd.DataFrame(
                        hists, columns=["cell", "phase", "layer", "bin", "left", "right", "count"]
                    ),
                ),
                "spectra": conform("spectra", pd.DataFrame(columns=list(COLUMNS["spectra"]))),
            }
        )
    values = {
        "initializer": INITIALIZERS,
        "activation": ACTIVATIONS,
        "optimizer": OPTIMIZERS,
        "loss": ["cross_entropy"],
    }
    meta = {
        "schema": SCHEMA_VERSION,
        "study": {
            "name": "synthetic",
            "title": "Synthetic 1,000-cell study",
            "kind": "train",
            "metric": "test_accuracy",
            "task": "classification",
            "source": "synthetic",
            "description": "Generated for benchmarks.",
            "seeds": list(range(seeds)),
            "axes": axes,
            "values": values,
        },
        "command": ["benchinit", "run", "synthetic"],
        "environment": {"device": "cpu", "torch": "n/a"},
        "plugins": [],
        "components": [],
        "cells": [c[0] for c in cells],
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T01:00:00+00:00",
    }
    store.write_meta(meta, '[study]\nname = "synthetic"\n')
    (folder / "meta.json").write_text(json.dumps(meta))
    return len(cells)


def runs_frame(
    values: np.ndarray,
    *,
    seeds: Sequence[int] | None = None,
    metric: str = "test_accuracy",
    labels: Sequence[str] | None = None,
    axis: str = "initializer",
) -> pd.DataFrame:
    """A runs table from a (configurations x seeds) array of one metric: configuration i is
    ``labels[i]`` (default ``init<i>``) on ``axis``; every cell is ``ok``."""
    configs, n = values.shape
    seeds = list(range(n)) if seeds is None else list(seeds)
    labels = [f"init{i}" for i in range(configs)] if labels is None else list(labels)
    return pd.DataFrame(
        {
            axis: np.repeat(labels, n),
            "seed": np.tile(seeds, configs),
            "status": "ok",
            metric: values.reshape(-1).astype(float),
        }
    )


def write_runs(
    folder: Path,
    runs: pd.DataFrame,
    *,
    axes: Sequence[str] = ("initializer",),
    name: str = "gate",
    title: str = "Synthetic gate study",
    kind: str = "train",
    metric: str = "test_accuracy",
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a results folder holding only a runs table (grid columns, ``seed``, ``status``,
    metric columns, and any extra columns such as ``init_hash`` or ``tuned.*``) and a
    ``meta.json`` (``meta`` is merged into it): what compare and history read, in
    milliseconds instead of a training run."""
    store = Store(folder, create=True)
    runs = runs.copy()
    runs.insert(0, "cell", [f"{folder.name[:8]}-{i:08x}" for i in range(len(runs))])
    for column, default in (("error", ""), ("seconds", 0.1), ("device", "cpu")):
        if column not in runs:
            runs[column] = default
    empty = {
        table: conform(table, pd.DataFrame(columns=list(COLUMNS[table])))
        for table in ("curves", "layers", "histograms", "spectra")
    }
    store.write({"runs": conform("runs", runs), **empty})
    study = {
        "title": title,
        "kind": kind,
        "metric": metric,
        "seeds": sorted({int(s) for s in runs["seed"]}),
        "axes": list(axes),
        "values": {axis: list(dict.fromkeys(runs[axis].tolist())) for axis in axes},
        "settings": {"model": {"precision": "float32"}},
    }
    write_meta(store, name, study, runs["cell"].tolist(), meta)
    return folder


def write_meta(
    store: Store,
    name: str,
    study: dict[str, Any],
    cells: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> None:
    """A synthetic folder's ``meta.json``: a complete, valid one with ``study`` fields and
    ``cells``; ``extra`` is merged in (dicts key by key), to vary or damage it."""
    full: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "study": {
            "name": name,
            "title": name,
            "task": "classification",
            "source": "synthetic",
            "description": "",
            **study,
        },
        "command": ["benchinit", "run", name],
        "overrides": [],
        "environment": {"device": "cpu", "torch": "2.13.0"},
        "provenance": {},
        "plugins": [],
        "components": [],
        "cells": list(cells),
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(full.get(key), dict):
            full[key] = {**full[key], **value}
        else:
            full[key] = value
    store.write_meta(full, f"[study]\nname = {json.dumps(name)}\n")


SIGNAL_METRICS = ("act_entropy", "std_drift", "saturated_frac", "dead_frac", "grad_drift")


def write_signal(
    folder: Path,
    *,
    configs: int = 6,
    seeds: int = 100,
    chunk: int = 8,
    layers: int = 5,
    bins: int = 20,
) -> int:
    """Write a signal study of ``configs`` initializers x ``seeds`` as benchinit's runs do:
    through the store, ``chunk`` cells per chunk, five tables each (a 600-cell folder by
    default: 75 chunks, 375 Parquet files). Returns the number of cells."""
    rng = np.random.default_rng(1)
    store = Store(folder, create=True)
    labels = [f"init{i}" for i in range(configs)]
    cells = [(f"{n:016x}", labels[n // seeds], n % seeds) for n in range(configs * seeds)]
    layer_metrics = ("act_mean", "act_std", "preact_std", "saturated_frac", "dead_frac")
    for start in range(0, len(cells), chunk):
        part = cells[start : start + chunk]
        ids = [c for c, _, _ in part]
        runs = pd.DataFrame(
            {
                "cell": ids,
                "initializer": [label for _, label, _ in part],
                "seed": [seed for _, _, seed in part],
                "status": "ok",
                "error": "",
                **{m: rng.normal(1.0, 0.1, len(part)) for m in SIGNAL_METRICS},
                "seconds": 0.01,
                "device": "cpu",
            }
        )
        grid = list(itertools.product(ids, range(1, layers + 1), layer_metrics))
        layer_rows = pd.DataFrame(
            {
                "cell": [g[0] for g in grid],
                "phase": "init",
                "layer": [g[1] for g in grid],
                "metric": [g[2] for g in grid],
                "value": rng.random(len(grid)),
            }
        )
        hist = list(itertools.product(ids, range(1, layers + 1), range(bins)))
        hists = pd.DataFrame(
            {
                "cell": [h[0] for h in hist],
                "phase": "init",
                "layer": [h[1] for h in hist],
                "bin": [h[2] for h in hist],
                "left": [h[2] / bins for h in hist],
                "right": [(h[2] + 1) / bins for h in hist],
                "count": rng.integers(0, 1000, len(hist)),
            }
        )
        spectra = hists[hists["layer"] == layers]
        store.write(
            {
                "runs": conform("runs", runs),
                "curves": conform("curves", pd.DataFrame(columns=list(COLUMNS["curves"]))),
                "layers": conform("layers", layer_rows),
                "histograms": conform("histograms", hists),
                "spectra": conform("spectra", spectra),
            }
        )
    study = {
        "kind": "signal",
        "metric": "std_drift",
        "seeds": list(range(seeds)),
        "axes": ["initializer"],
        "values": {"initializer": labels},
    }
    write_meta(store, "signal", study, [c for c, _, _ in cells])
    return len(cells)
