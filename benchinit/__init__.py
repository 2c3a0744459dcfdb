"""benchinit: benchmark and report weight initializers, activations, losses and optimizers.

Public API (everything else is internal)::

    hookimpl                          decorate a plugin's hook functions
    Initializer, Activation, Loss,    descriptors a plugin returns
    Optimizer, Dataset, Data, Model,
    Layer, ModelShape, ReportSection
    load_study(path_or_name, ...)     a validated Study
    run(study, out=..., ...)          run its cells, store records, render the report
    load_results(dir)                 the stored tables as pandas DataFrames
    render_report(dir)                (re)write dir/index.html from stored results
    compare(base, new, ...)           compare two result sets
    history(dirs, ...)                a series of result sets -> trend page
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchinit._version import __version__
from benchinit.errors import BenchinitError, PluginError, ResultsError, StudyError
from benchinit.plugins.descriptors import (
    Activation,
    Bound,
    Data,
    Dataset,
    Initializer,
    Loss,
    Optimizer,
    ReportSection,
)
from benchinit.plugins.hookspecs import hookimpl
from benchinit.plugins.model_kind import Layer, Model, ModelShape

if TYPE_CHECKING:  # the lazy names below, for type checkers
    from benchinit.gate.compare import compare
    from benchinit.gate.history import history
    from benchinit.pipeline import run
    from benchinit.report.page import render_report
    from benchinit.results.tables import Results, load_results
    from benchinit.study.load import Study, load_study

__all__ = [
    "Activation",
    "BenchinitError",
    "Bound",
    "Data",
    "Dataset",
    "Initializer",
    "Layer",
    "Loss",
    "Model",
    "ModelShape",
    "Optimizer",
    "PluginError",
    "ReportSection",
    "Results",
    "ResultsError",
    "Study",
    "StudyError",
    "__version__",
    "compare",
    "history",
    "hookimpl",
    "load_results",
    "load_study",
    "render_report",
    "run",
]

# Heavier parts load on first use: a plugin's `from benchinit import hookimpl` stays cheap, and the
# read side (compare, history, index, report) never imports torch or the study loader.
_LAZY = {
    "Study": "benchinit.study.load",
    "load_study": "benchinit.study.load",
    "run": "benchinit.pipeline",
    "load_results": "benchinit.results.tables",
    "Results": "benchinit.results.tables",
    "render_report": "benchinit.report.page",
    "compare": "benchinit.gate.compare",
    "history": "benchinit.gate.history",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'benchinit' has no attribute {name!r}")
