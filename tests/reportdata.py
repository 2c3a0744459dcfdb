"""Small result folders with chosen axes, values and damage, written without training.

For report and index tests whose input must be exactly known (odd axis names, one
configuration, failed cells, NaN and infinities, hostile strings): :func:`write_results`
writes the four tables benchinit stores, with the dtypes it stores, and a ``meta.json``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from synthetic import write_meta

from benchinit.report.page import render_report
from benchinit.results.schema import conform
from benchinit.results.store import Store

Value = Callable[[dict[str, Any], int], float]


def _default_value(config: dict[str, Any], seed: int) -> float:
    rank = sum(hash(str(v)) % 7 for v in config.values())
    return 0.5 + 0.05 * (rank % 9) + 0.02 * seed


def write_results(
    folder: Path,
    axes: dict[str, Sequence[Any]],
    *,
    seeds: int = 2,
    kind: str = "train",
    layers: int = 2,
    epochs: int = 2,
    value: Value = _default_value,
    status: Callable[[dict[str, Any], int], str] = lambda config, seed: "ok",
    title: str = "Report test study",
    name: str = "reportdata",
    description: str = "Written by tests/reportdata.py.",
    meta: dict[str, Any] | None = None,
    records: bool = True,
    edit: Callable[[dict[str, pd.DataFrame]], None] | None = None,
) -> Path:
    """A results folder over the product of ``axes`` x ``seeds``; ``value(config, seed)``
    gives the main metric (and shapes the curves), ``status(config, seed)`` each cell's
    status. ``records=False`` writes meta.json only (no finished cell); ``edit`` may change
    the four tables (in place) before they are stored, to plant damage."""
    store = Store(folder, create=True)
    metric = "test_accuracy" if kind == "train" else "act_entropy"
    names = list(axes)
    cells = []
    for n, (combo, seed) in enumerate(
        itertools.product(itertools.product(*axes.values()), range(seeds))
    ):
        cells.append((f"{name[:6]}{n:010x}", dict(zip(names, combo, strict=True)), seed))
    runs, curves, layer_rows, hists = [], [], [], []
    for cell, config, seed in cells:
        state = status(config, seed)
        main = value(config, seed) if state == "ok" else np.nan
        runs.append(
            {
                "cell": cell,
                **config,
                "seed": seed,
                "status": state,
                "error": "ValueError: planted failure" if state == "failed" else "",
                "diverged_epoch": 1 if state == "diverged" else None,
                metric: main,
                **({"test_loss": 1.0 - main, "train_loss": 1.1 - main} if kind == "train" else {}),
                "seconds": 0.1,
                "device": "cpu",
            }
        )
        if state == "failed":
            continue
        if kind == "train":
            for epoch in range(epochs + 1):
                share = epoch / max(epochs, 1)
                for split, name_, v in (
                    ("train", "loss", 2.3 - share * (2.3 - (1.1 - main))),
                    ("test", "loss", 2.3 - share * (2.3 - (1.0 - main))),
                    ("test", "accuracy", 0.1 + share * (main - 0.1)),
                ):
                    curves.append((cell, epoch, split, name_, float(v)))
        phases = ("init", "final") if kind == "train" else ("init",)
        for phase, layer in itertools.product(phases, range(1, layers + 1)):
            for stat, v in (
                ("act_std", 0.5 / layer + 0.01 * seed),
                ("preact_std", 0.8 / layer + 0.01 * seed),
                ("theory_std", 0.8 / layer),
                ("grad_norm", 10.0**-layer * (1 + 0.1 * seed)),
                ("saturated_frac", 0.1),
                ("dead_frac", 0.0),
            ):
                layer_rows.append((cell, phase, layer, stat, float(v)))
            for b in range(30):
                hists.append((cell, phase, layer, b, -1 + b / 15, -1 + (b + 1) / 15, 10 + b))
    if records and cells:
        tables = {
            "runs": pd.DataFrame(runs),
            "curves": pd.DataFrame(curves, columns=["cell", "epoch", "split", "metric", "value"]),
            "layers": pd.DataFrame(
                layer_rows, columns=["cell", "phase", "layer", "metric", "value"]
            ),
            "histograms": pd.DataFrame(
                hists, columns=["cell", "phase", "layer", "bin", "left", "right", "count"]
            ),
        }
        if edit is not None:
            edit(tables)
        store.write({name: conform(name, frame) for name, frame in tables.items()})
    study = {
        "title": title,
        "kind": kind,
        "metric": metric,
        "source": "tests/reportdata.py",
        "description": description,
        "seeds": list(range(seeds)),
        "axes": names,
        "values": {a: list(v) for a, v in axes.items()},
        "settings": {"model": {"depth": layers}},
    }
    extra = dict(meta or {})
    extra["environment"] = {"python": "3.11", **extra.get("environment", {})}
    write_meta(store, name, study, [c[0] for c in cells], extra)
    return folder


HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _value(config, seed):
    return {"kaiming_normal": 0.9, "xavier_normal": 0.8, "zeros": 0.1}[config["initializer"]] + (
        0.01 * seed
    )


def write_runs_tree(root: Path) -> dict[str, Path]:
    """Three result sets (one with failed cells, one with hostile strings, one without a
    report) and three damaged folders, in nested folders."""
    sets = {
        "mnist": write_results(
            root / "course" / "mnist",
            {"initializer": ["kaiming_normal", "xavier_normal", "zeros"], "optimizer": ["adam"]},
            seeds=3,
            value=_value,
            name="mnist-mlp",
            title="MNIST by initializer",
            meta={"started": "2026-03-01T10:00:00+00:00", "environment": {"torch": "2.13.0"}},
        ),
        "failing": write_results(
            root / "course" / "failing",
            {"initializer": ["kaiming_normal", "zeros"]},
            seeds=2,
            value=_value,
            status=lambda c, s: "failed" if c["initializer"] == "zeros" else "ok",
            name="failing",
            title="Some cells fail",
            meta={"started": "2026-03-02T10:00:00+00:00"},
        ),
        "hostile": write_results(
            root / f"odd {HOSTILE[:8]}",
            {"initializer": [HOSTILE, "xavier_normal"]},
            seeds=2,
            kind="signal",
            name=f"n{HOSTILE}",
            title=f"t{HOSTILE}",
            meta={
                "started": "2026-03-03T10:00:00+00:00",
                "environment": {"device": f"d{HOSTILE}", "torch": f"v{HOSTILE}"},
            },
        ),
    }
    render_report(sets["mnist"])
    render_report(sets["hostile"])
    damaged = root / "damaged"
    (damaged / "list-meta").mkdir(parents=True)
    (damaged / "list-meta" / "meta.json").write_text("[]")
    (damaged / "binary-meta").mkdir()
    (damaged / "binary-meta" / "meta.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    corrupt = write_results(damaged / "corrupt-records", {"initializer": ["a", "b"]})
    for chunk in (corrupt / "records").iterdir():
        (chunk / "runs.parquet").write_bytes(b"not parquet")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not results")
    return sets


def drawn_as(job: Any) -> str:
    """How a per-layer figure draws: "dots" or "lines" (a stack of statistics included,
    benchinit.figures.stacked)."""
    if job.draw.__name__ == "stacked_plot":
        return "dots" if job.kwargs["dots"] else "lines"
    return {"dot_plot": "dots", "band_plot": "lines"}[job.draw.__name__]


def statistics(jobs: Sequence[Any]) -> dict[str, Any]:
    """Each per-layer statistic drawn -> the job that draws it: a stack's rows (its CSV's
    ``statistic`` column) or a figure of its own (its name, ``signal-preact_std``)."""
    found = {}
    for job in jobs:
        if "statistic" in job.data:
            found.update(dict.fromkeys(job.data["statistic"].unique(), job))
        else:
            found[job.name.split("-", 1)[-1]] = job
    return found


def statistic_rows(job: Any, name: str) -> pd.DataFrame:
    """The rows of ``job``'s numbers for statistic ``name`` (all of them for a figure of
    its own)."""
    if "statistic" not in job.data:
        return job.data
    return job.data[job.data["statistic"] == name].drop(columns="statistic")
