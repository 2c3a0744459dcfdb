"""``benchinit.run``: a study's cells -> batches -> an executor -> the store -> the report.

A run first records the study and environment (so even an interrupted run leaves a readable
folder), skips the cells already finished, claims the rest, groups them into stacked
batches and stores each batch's records as it arrives. Cells another run is computing are
waited for at the end, not computed twice.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchinit._version import __version__
from benchinit.engine import Batch, device_name
from benchinit.errors import BenchinitError
from benchinit.execute import make_executor
from benchinit.progress import Progress
from benchinit.results import Results, load_results
from benchinit.store import SCHEMA_VERSION, Store
from benchinit.study import Cell, Study, resolved_document
from benchinit.tomlwrite import dumps

# Members per stacked model, by device type. On a CPU the work is compute-bound and a stack
# of 1 or 12 trains 12 MLPs in the same time (measured: 784-256-256-10 and 64-100-100-10),
# so stacks stay small and a process pool gets enough batches to balance. A GPU is
# launch-bound on small MLPs: there one stack should hold as many members as memory allows.
MAX_MEMBERS = {"cpu": 8, "cuda": 128}


@dataclass
class RunOutcome:
    """What a run did, and where its results are."""

    out: Path
    results: Results
    computed: int  # cells computed by this run
    reused: int  # cells found finished in the folder
    seconds: float
    report: Path | None

    @property
    def failed(self) -> int:
        return self.results.counts()["failed"]

    def summary(self, rows: int = 8) -> str:
        """A few lines for the terminal: counts, the best configurations, where things are."""
        counts = self.results.counts()
        lines = [
            f"{self.results.study['name']}: {len(self.results.runs)} cells "
            f"({counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed); "
            f"{self.computed} computed in {self.seconds:.1f} s, {self.reused} already stored",
        ]
        if counts["ok"]:
            table = self.results.summary()
            metric = self.results.metric
            columns = [*self.results.varying, "mean", "ci_low", "ci_high", "seeds", "diverged"]
            shown = table[columns].head(rows).rename(columns={"mean": metric})
            lines += ["", shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
            if len(table) > rows:
                lines.append(f"... {len(table) - rows} more configurations in the report")
            lines.append("")
        lines.append(f"results: {self.out}")
        if self.report is not None:
            lines.append(f"report:  {self.report}")
        return "\n".join(lines)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; checks an explicit device."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchinitError(
            f"--device {name!r} is not a device; use auto, cpu or cuda[:N]"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchinitError(
            f"--device {name}: CUDA is not available here (torch {torch.__version__}); "
            "use --device cpu, or auto to take CUDA when present"
        )
    return str(device)


def environment(device: str) -> dict[str, Any]:
    return {
        "benchinit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "device": device_name(torch.device(device)),
        "cuda": torch.version.cuda,
    }


def plan(
    cells: Sequence[Cell],
    study: Study,
    *,
    device: str,
    threads: int,
    deterministic: bool = False,
    max_members: int | None = None,
) -> list[Batch]:
    """Group cells into stacked batches.

    Cells that differ only in initializer and seed share a stack, unless their optimizer is
    not elementwise (then each trains alone). Big groups are split evenly into stacks of at
    most ``max_members`` (default: MAX_MEMBERS of the device type). The plan depends only on
    the cells and the device, never on the executor or the number of jobs, so results are
    bit-identical whichever executor runs them; regrouping changes float32 results only in
    the last digits (a batched matmul rounds differently from a single one).
    """
    size = max_members or MAX_MEMBERS.get(torch.device(device).type, 32)
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        optimizer = cell.config.get("optimizer")
        alone = (
            optimizer is not None
            and not study.registry.get("optimizer", optimizer["name"]).descriptor.elementwise
        )  # type: ignore[attr-defined]
        groups[cell.id if alone else cell.group_key()].append(cell)
    spec = study.registry.spec()
    batches = []
    for group in groups.values():
        pieces = math.ceil(len(group) / size)
        for i in range(pieces):
            part = group[i * len(group) // pieces : (i + 1) * len(group) // pieces]
            batches.append(Batch(tuple(part), spec, device, threads, deterministic))
    return batches


def run(
    study: Study,
    out: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    executor: str = "local",
    jobs: int = 1,
    threads: int = 1,
    scheduler: str | None = None,
    report: bool = True,
    progress: bool = True,
    command: Sequence[str] | None = None,
    deterministic: bool | None = None,
) -> RunOutcome:
    """Run every unfinished cell of ``study`` into ``out`` (default ``reports/<name>``).

    ``deterministic`` (default: the environment variable ``BENCHINIT_DETERMINISTIC``) makes
    torch use deterministic algorithms in every worker (on CUDA, with cuBLAS's fixed
    workspace); it is recorded with the environment, not in the cell ids.
    """
    if deterministic is None:
        deterministic = os.environ.get("BENCHINIT_DETERMINISTIC", "") not in ("", "0")
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts
    started = time.perf_counter()
    out_path = Path(out) if out is not None else Path("reports") / study.name
    device = resolve_device(device)
    cells = study.cells()
    store = Store(out_path, create=True)
    meta = _meta(study, cells, device, command, threads)
    meta["environment"]["deterministic"] = deterministic
    toml = dumps(resolved_document(study))
    store.write_meta(meta, toml)

    finished = store.finished()
    todo = [c for c in cells if c.id not in finished]
    by_id = {c.id: c for c in cells}
    claimed = store.try_claim(c.id for c in todo)
    deferred = [by_id[cid] for cid in {c.id for c in todo} - set(claimed)]
    bar = Progress(len(cells), study.name, enabled=progress)
    bar.advance(len(cells) - len(todo))
    pool = make_executor(executor, study.registry, jobs=jobs, threads=threads, scheduler=scheduler)
    computed = 0
    batch_settings = {"device": device, "threads": threads, "deterministic": deterministic}
    try:
        claimed_cells = [by_id[c] for c in claimed]
        computed += _execute(pool, claimed_cells, study, store, bar, batch_settings)
        for cell in sorted(deferred, key=lambda c: c.id):  # computed by another run
            store.wait_claim(cell.id)
            if cell.id in store.finished():
                store.release([cell.id])
                bar.advance(1)
                continue
            computed += _execute(pool, [cell], study, store, bar, batch_settings)
    finally:
        pool.close()
        bar.close()
        store.release()
    meta["finished"] = _now()
    store.write_meta(meta, toml)
    results = load_results(out_path)
    report_path = None
    if report:
        from benchinit.report import render_report

        report_path = render_report(out_path, registry=study.registry, parallel=jobs)
    return RunOutcome(
        out_path,
        results,
        computed,
        len(cells) - len(todo),
        time.perf_counter() - started,
        report_path,
    )


def _execute(
    pool: Any,
    cells: list[Cell],
    study: Study,
    store: Store,
    bar: Progress,
    settings: dict[str, Any],
) -> int:
    """Run ``cells`` in stacked batches, storing and unlocking each as it finishes."""
    if not cells:
        return 0
    done = 0
    batches = plan(cells, study, **settings)
    for batch, records in pool.run(batches):
        store.write(records)
        ids = [c.id for c in batch.cells]
        store.release(ids)
        bar.advance(len(ids))
        done += len(ids)
    return done


def _components(study: Study, cells: Sequence[Cell]) -> list[dict[str, str]]:
    """The plugins the grid names, with their docs: the report shows them without plugins."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    axes = [
        ("initializer", "initializer"),
        ("activation", "activation"),
        ("loss", "loss"),
        ("optimizer", "optimizer"),
        ("data", "dataset"),
    ]
    for cell in cells:
        for axis, kind in axes:
            if axis in cell.config and (kind, cell.config[axis]["name"]) not in seen:
                entry = study.registry.get(kind, cell.config[axis]["name"])
                seen[(kind, entry.descriptor.name)] = {
                    "kind": kind,
                    "name": entry.descriptor.name,
                    "doc": entry.descriptor.doc,
                    "source": entry.plugin.source,
                }
    return list(seen.values())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _meta(
    study: Study, cells: Sequence[Cell], device: str, command: Sequence[str] | None, threads: int
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "study": {
            "name": study.name,
            "title": study.title,
            "kind": study.kind,
            "metric": study.metric,
            "task": study.task,
            "source": study.source,
            "description": study.description,
            "seeds": list(study.seeds),
            "axes": list(study.axes),
            "values": {  # each axis's values, in grid order
                axis: list(dict.fromkeys(c.labels[axis] for c in cells)) for axis in study.axes
            },
        },
        "command": list(command) if command else [sys.executable, "-m", "benchinit"],
        "environment": {**environment(device), "threads": threads},
        "plugins": [
            {"name": p.name, "origin": p.origin, "source": p.source, "version": p.version}
            for p in study.registry.plugins.values()
        ],
        "components": _components(study, cells),
        "cells": [c.id for c in cells],
        "started": _now(),
        "finished": None,
    }
