"""``meta.json`` as a run makes it: the study, its cells, the environment, provenance and
plugins, in the schema that :mod:`benchinit.results.meta` owns and checks when read."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchinit._version import __version__
from benchinit.engine.stack import device_name, fast_bf16
from benchinit.execution import provenance
from benchinit.fingerprint import engine_code
from benchinit.results.meta import SCHEMA_VERSION, Component, Meta
from benchinit.study import trials
from benchinit.study.cells import Cell
from benchinit.study.load import Study
from benchinit.study.settings import documented_model


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
        "bf16_fast": fast_bf16(device),
        "cuda": torch.version.cuda,
    }


def components(study: Study, cells: Sequence[Cell]) -> list[Component]:
    """The plugins the grid names, with their docs: the report shows them without plugins."""
    seen: dict[tuple[str, str], Component] = {}
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


def _folders(study: Study) -> list[Path]:
    """Where to look for a git repository: the study file's folder, then the cwd."""
    folders = [] if study.source.startswith("builtin:") else [Path(study.source).parent]
    return [*folders, Path.cwd()]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_meta(
    study: Study,
    cells: Sequence[Cell],
    device: str,
    command: Sequence[str] | None,
    threads: int,
    deterministic: bool,
) -> Meta:
    data = study.registry.bind("dataset", study.data)
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
            "settings": {
                "data": {"name": data.name, **data.params},
                **study.settings,
                "model": documented_model(study.settings["model"]),
            },
            "tune": trials.resolved_table(study.tune) if study.tune else {},
            "seeding": (
                {"rule": study.seeding.table(), "metric": study.metric} if study.seeding else {}
            ),
        },
        "command": list(command) if command else [sys.executable, "-m", "benchinit"],
        "overrides": list(study.overrides),
        "environment": {
            **environment(device),
            "benchinit_code": engine_code(),  # the compute path's fingerprint
            "threads": threads,
            "deterministic": deterministic,
        },
        "provenance": provenance.collect(_folders(study)),
        "plugins": [
            {
                "name": p.name,
                "origin": p.origin,
                "source": p.source,
                "version": p.version,
                "code": study.registry.code(p.name),
            }
            for p in study.registry.plugins.values()
        ],
        "components": components(study, cells),
        "cells": [c.id for c in cells],
        "started": now(),
        "finished": None,
    }
