"""Cells: one fully resolved configuration and one seed, identified by a hash of its content.

A cell's ``config`` is plain JSON data: the plugin names, parameters and versions; the data,
model and training settings; the seed. Its id is a hash of that, so a rerun recognises
finished cells and any change that has an effect makes a new cell (benchinit.study.inert resets
the settings that have none). ``labels`` are its grid columns in the result tables.

This module also holds the grouping rule: cells whose configurations differ only in
initializer and seed can train together as one stacked model (:func:`group_key`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CELL_FORMAT = 1  # bump when the engine's meaning of a cell changes: every cell id changes
# What may differ between the members of one stacked model.
PER_MEMBER = ("initializer", "seed")


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value (sorted keys, no spaces): what cell ids hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cell_id(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One fully resolved configuration and one seed (see the module docstring)."""

    id: str
    config: Mapping[str, Any]
    labels: Mapping[str, Any]

    @classmethod
    def of(cls, config: Mapping[str, Any], labels: Mapping[str, Any]) -> Cell:
        return cls(cell_id(config), config, labels)

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def kind(self) -> str:
        """The study kind that computes it: "signal" or "train"."""
        return str(self.config["kind"])


def group_key(cell: Cell) -> str:
    """Cells with equal keys may run as one stacked model: all but initializer and seed."""
    return canonical_json({k: v for k, v in cell.config.items() if k not in PER_MEMBER})
