"""The hooks a benchinit plugin implements: one per kind of thing it can add.

A plugin is a module (or any object) with functions decorated by ``benchinit.hookimpl``::

    from benchinit import Initializer, hookimpl

    @hookimpl
    def benchinit_initializers():
        return [Initializer("my_init", my_init)]

and is found through the entry-point group ``benchinit`` of an installed distribution, or
given as a ``.py`` file (``--plugin FILE``, or ``plugins = [...]`` in a study). Every hook is
optional. Names must be unique across all plugins: a clash is an error naming both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from benchinit.plugins.descriptors import (
    Activation,
    Dataset,
    Initializer,
    Loss,
    Optimizer,
    ReportSection,
)
from benchinit.plugins.model_kind import Model

if TYPE_CHECKING:
    from benchinit.results.tables import Results

hookspec = pluggy.HookspecMarker("benchinit")
hookimpl = pluggy.HookimplMarker("benchinit")

# -------------------------------------------------------------------------------------------
# Building blocks of a network and its training
# -------------------------------------------------------------------------------------------


@hookspec
def benchinit_initializers() -> list[Initializer]:
    """Weight initializers this plugin provides.

    :returns: :class:`~benchinit.plugins.descriptors.Initializer` descriptors; each ``fn`` fills one
        weight tensor in place from ``(weight, generator, activation, **params)``.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def benchinit_activations() -> list[Activation]:
    """Elementwise activation functions this plugin provides.

    :returns: :class:`~benchinit.plugins.descriptors.Activation` descriptors, each with its gain and
        histogram range.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def benchinit_losses() -> list[Loss]:
    """Loss functions this plugin provides.

    :returns: :class:`~benchinit.plugins.descriptors.Loss` descriptors, each declaring the tasks it
        fits and the targets and outputs it expects.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def benchinit_optimizers() -> list[Optimizer]:
    """Optimizers this plugin provides.

    :returns: :class:`~benchinit.plugins.descriptors.Optimizer` descriptors, each declaring whether
        it is elementwise (safe to train many stacked models with one instance) and its
        ``lr_scaling`` ("sgd" or "adam": it takes torch parameter groups, so muP can scale
        each layer's rate; None: a muP study refuses it).
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def benchinit_models() -> list[Model]:
    """Models this plugin provides (``[model] name``; ``mlp`` is the default).

    :returns: :class:`~benchinit.plugins.descriptors.Model` descriptors; each ``fn(shape)``
        builds ``shape.members`` models as one stacked module and declares its layers.
    """
    raise NotImplementedError  # a specification: plugins implement it


# -------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------


@hookspec
def benchinit_datasets() -> list[Dataset]:
    """Datasets this plugin provides.

    :returns: :class:`~benchinit.plugins.descriptors.Dataset` descriptors; each ``fn(**params)``
        returns a :class:`~benchinit.plugins.descriptors.Data` with a fixed, seeded split.
    """
    raise NotImplementedError  # a specification: plugins implement it


# -------------------------------------------------------------------------------------------
# Reports
# -------------------------------------------------------------------------------------------


@hookspec
def benchinit_report_sections(results: Results) -> list[ReportSection]:
    """Sections to add to a study's HTML report, after the built-in ones.

    Called when ``benchinit run`` renders the report; the sections are stored with the
    results, so ``benchinit report DIR`` shows them without loading the plugin.

    :param results: the study's :class:`benchinit.results.tables.Results` (tables and metadata).
    :returns: :class:`~benchinit.plugins.descriptors.ReportSection` objects (Markdown text, a table
        or an image; never raw markup).
    """
    raise NotImplementedError  # a specification: plugins implement it


HOOKS_BY_KIND = {
    "initializer": "benchinit_initializers",
    "activation": "benchinit_activations",
    "loss": "benchinit_losses",
    "optimizer": "benchinit_optimizers",
    "dataset": "benchinit_datasets",
    "model": "benchinit_models",
}
