"""Failed and diverged configurations in words, for a terminal or a log.

A run that exits 1 says why at its end, like pytest's short test summary: each failing
configuration with its first error (the error of its lowest seed: type, message and where
it was raised, on one line), the diverged configurations with the epochs they diverged at,
and where the rest is. Lists are capped; the line after a capped list says how many more.
No torch: ``benchinit show`` prints the same lines from a stored folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

MAX_LISTED = 10  # configurations listed per kind of problem; the rest are counted
MAX_ERROR = 300  # characters of an error shown on its line


@dataclass(frozen=True)
class Problem:
    """One configuration that failed or diverged."""

    stage: str  # "" for the study's cells, "tuning" for a tuned study's tuning cells
    config: str  # its grid values, "relu, sgd"
    cells: int  # how many of its cells (seeds, tuning trials) failed or diverged
    seeds: int  # how many cells the configuration has
    detail: str  # the first error, or the epochs it diverged at

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage or "final",
            "configuration": self.config,
            "cells": self.cells,
            "of": self.seeds,
            "detail": self.detail,
        }


def first_line(error: Any, limit: int = MAX_ERROR) -> str:
    """An error on one line: its lines joined, cut at ``limit`` characters."""
    text = " ".join(str(error).split()) if isinstance(error, str) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _config(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) or "(one configuration)"


def problems(
    runs: pd.DataFrame, axes: Sequence[str], status: str, stage: str = ""
) -> list[Problem]:
    """The configurations of ``runs`` with cells of ``status`` (``failed`` or
    ``diverged``), in the table's order, each with its first error or its epochs."""
    axes = [a for a in axes if a in runs]
    if not len(runs) or "status" not in runs:
        return []
    out = []
    keys: Any = axes if axes else (lambda _: 0)
    for key, group in runs.groupby(keys, sort=False, dropna=False):
        bad = group[group["status"] == status]
        if not len(bad):
            continue
        values = list(key) if isinstance(key, tuple) else [key]
        if status == "failed":
            first = bad.sort_values("seed", kind="stable").iloc[0]
            detail = first_line(first.get("error")) or "no error recorded"
        else:
            epochs = pd.to_numeric(bad.get("diverged_epoch"), errors="coerce").dropna()
            shown = ", ".join(str(int(e)) for e in sorted(set(epochs)))
            detail = f"at epoch {shown}" if shown else "diverged"
        label = _config(values) if axes else "(one configuration)"
        out.append(Problem(stage, label, len(bad), len(group), detail))
    return out


def all_problems(results: Any) -> tuple[list[Problem], list[Problem]]:
    """(failed, diverged) configurations of a ``Results``: its cells, then its tuning
    cells."""
    axes = results.axes
    failed = problems(results.runs, axes, "failed")
    diverged = problems(results.runs, axes, "diverged")
    if len(results.tuning):
        failed += problems(results.tuning, axes, "failed", "tuning")
    return failed, diverged


def _listed(items: list[Problem], verb: str, limit: int) -> list[str]:
    if not items:
        return []
    cells = sum(p.cells for p in items)
    many = "s" * (len(items) != 1)
    lines = [f"{len(items)} configuration{many} {verb} ({cells} cell{'s' * (cells != 1)}):"]
    for p in items[:limit]:
        where = "tuning " if p.stage else ""
        lines.append(f"  {where}{p.config} [{p.cells} of {p.seeds}]: {p.detail}")
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more configuration(s) {verb}")
    return lines


def report_lines(results: Any, where: str, limit: int = MAX_LISTED) -> list[str]:
    """The lines a run or ``benchinit show`` prints about failures and divergences;
    ``where`` says where the rest is. Empty when every cell finished."""
    failed, diverged = all_problems(results)
    lines = _listed(failed, "failed", limit) + _listed(diverged, "diverged", limit)
    if lines:
        lines.append(where)
    return lines
