"""What ``compare`` and ``history`` return: the verdicts, the tables behind them, and where
the page was written. Plain data with the verdict rule's answers (``regressed``, ``counts``,
``warning``); the renderers (:mod:`benchinit.gate.compare_render`,
:mod:`benchinit.gate.history_render`) turn an outcome into text, JSON, Markdown and HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchinit.gate import verdicts
from benchinit.results.tables import Results


@dataclass
class CompareOutcome:
    """The verdicts (one row per configuration and metric) and where they were written."""

    table: pd.DataFrame
    base: Results
    new: Results
    correction: str = "holm"
    alpha: float = 0.05
    html: Path | None = None
    environment: list[dict[str, Any]] = field(default_factory=list)
    # One row per metric: the study as a whole (evidence.test_rows), and the priors
    # the configurations' variances were moderated with (verdicts.moderate).
    study: pd.DataFrame = field(default_factory=pd.DataFrame)
    priors: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def regressed(self) -> bool:
        """What the exit status reads: a configuration regressed, or the study as a whole
        regressed on some metric."""
        return verdicts.regressed(self.table, self.study)

    def counts(self) -> dict[str, int]:
        return verdicts.counts(self.table)

    @property
    def warning(self) -> str:
        return verdicts.power_warning(self.table)


@dataclass
class HistoryOutcome:
    """Verdicts of every step (``table``, column ``step``: run ``step`` -> ``step + 1``,
    1-based; ``study``: the study as a whole per step and metric; ``priors``: the priors of
    the moderated variances per step, metric and design), each run's mean and interval per
    configuration (``series``), and what changed between consecutive runs (``changes[i]``:
    from run i + 1 to run i + 2)."""

    runs: list[Results]
    table: pd.DataFrame
    series: pd.DataFrame
    changes: list[list[dict[str, Any]]]
    metrics: list[str]
    correction: str = "holm"
    alpha: float = 0.05
    html: Path | None = None
    study: pd.DataFrame = field(default_factory=pd.DataFrame)
    priors: pd.DataFrame = field(default_factory=pd.DataFrame)
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = len(self.runs) - 1

    def step_table(self, step: int) -> pd.DataFrame:
        return self.table[self.table["step"] == step] if len(self.table) else self.table

    def step_study(self, step: int) -> pd.DataFrame:
        return self.study[self.study["step"] == step] if len(self.study) else self.study

    def step_priors(self, step: int) -> pd.DataFrame:
        return self.priors[self.priors["step"] == step] if len(self.priors) else self.priors

    @property
    def regressed(self) -> bool:
        """The last step regressed, a configuration or the study as a whole (older steps
        do not fail a nightly job)."""
        return verdicts.regressed(self.step_table(self.steps), self.step_study(self.steps))

    @property
    def warning(self) -> str:
        return verdicts.power_warning(self.table) if len(self.table) else ""
