"""What ``meta.json`` holds: the study, the command, the environment, the plugins, the cells.

A run makes it (:func:`run_meta`) and the store writes it; everything downstream reads it
(results, report, compare, history). Its shape is declared here once, as TypedDicts, and
:func:`check_meta` validates a loaded file against it, so readers index keys directly instead
of guessing with ``.get()``: a damaged or foreign file is one clear error naming the file and
the key. Keys added after schema 1 was first written (``overrides``, ``provenance``,
``study.settings``) are optional on reading and filled with empty values; so are the code
fingerprints (``plugins[].code``, ``environment.benchinit_code``, benchinit.fingerprint),
which older files lack.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict, cast

from benchinit.errors import ResultsError
from benchinit.metrics import METRICS

SCHEMA_VERSION = 1


class StudyInfo(TypedDict):
    name: str  # the study's name (the default results folder)
    title: str
    kind: str  # "signal" | "train"
    metric: str  # the main metric (benchinit.metrics)
    task: str  # "classification" | "regression"
    source: str  # the study file, or "builtin:<name>"
    description: str  # Markdown
    seeds: list[int]
    axes: list[str]  # the grid columns, in study order
    values: dict[str, list[Any]]  # each axis's values (labels), in grid order
    settings: dict[str, dict[str, Any]]  # resolved [data], [model], [train] (not the grid)
    # seeds until decided: the rule and each configuration's seeds
    # (benchinit.execution.seeding.record);
    # {} when the study ran a fixed list of seeds
    seeding: dict[str, Any]
    # a tuned study's resolved [tune] table (benchinit.study.trials.resolved_table), read back
    # by the report as stored; {} when untuned, or written before it was kept here
    tune: dict[str, Any]


class PluginRecord(TypedDict):
    name: str
    origin: str  # builtin | distribution | file | object
    source: str
    version: str
    code: NotRequired[str]  # its source's fingerprint (benchinit.fingerprint); "" if none


class Component(TypedDict):
    kind: str  # initializer, activation, loss, optimizer, dataset
    name: str
    doc: str
    source: str


class Meta(TypedDict):
    schema: int
    study: StudyInfo
    command: list[str]  # the command line that made the results
    overrides: list[str]  # --set KEY=VALUE items (and --seeds) the run was made with
    environment: dict[str, Any]  # versions, device, threads, precision support, ...
    provenance: dict[str, Any]  # git commit, torch build configuration, host
    plugins: list[PluginRecord]
    components: list[Component]  # the plugins the grid names, with their docs
    cells: list[str]  # ids of the current study's cells, in grid order
    started: str  # ISO 8601, UTC
    finished: str | None  # None while running or after an interrupted run


# key -> (accepted types, default when missing; ... = required)
_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "schema": ((int,), ...),
    "study": ((dict,), ...),
    "command": ((list,), ...),
    "overrides": ((list,), []),
    "environment": ((dict,), ...),
    "provenance": ((dict,), {}),
    "plugins": ((list,), []),
    "components": ((list,), []),
    "cells": ((list,), ...),
    "started": ((str,), ""),
    "finished": ((str, type(None)), None),
}
_STUDY_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), ...),
    "title": ((str,), ...),
    "kind": ((str,), ...),
    "metric": ((str,), ...),
    "task": ((str,), ""),
    "source": ((str,), ""),
    "description": ((str,), ""),
    "seeds": ((list,), ...),
    "axes": ((list,), ...),
    "values": ((dict,), {}),
    "settings": ((dict,), {}),
    "seeding": ((dict,), {}),
    "tune": ((dict,), {}),
}
_PROVENANCE_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "git": ((dict,), {}),
    "torch_config": ((dict,), {}),
    "host": ((str,), ""),
    "command": ((list,), []),
}
_GIT_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "commit": ((str,), ""),
    "branch": ((str,), ""),
    "dirty": ((bool, type(None)), None),
}
_RECORD_FIELDS = {
    "plugins": ("name", "origin", "source", "version"),
    "components": ("kind", "name", "doc", "source"),
}


def _fields(
    value: Any, fields: dict[str, tuple[tuple[type, ...], Any]], where: str, prefix: str
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ResultsError(
            f"'{where}' is not a benchinit meta.json: {prefix or 'the file'} must be a JSON "
            f"object, got {type(value).__name__}"
        )
    out = dict(value)
    for key, (types, default) in fields.items():
        if key not in out:
            if default is ...:
                raise ResultsError(f"'{where}' is damaged: key '{prefix}{key}' is missing")
            out[key] = default.copy() if isinstance(default, list | dict) else default
        elif not isinstance(out[key], types) or (isinstance(out[key], bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ResultsError(
                f"'{where}' is damaged: key '{prefix}{key}' must be {names}, "
                f"got {type(out[key]).__name__}"
            )
    return out


def _strings(items: list[Any], where: str, key: str) -> None:
    if not all(isinstance(item, str) for item in items):
        raise ResultsError(f"'{where}' is damaged: key '{key}' must list strings")


def check_meta(value: Any, where: str) -> Meta:
    """``value`` (parsed JSON) as a :class:`Meta`, or a ResultsError naming ``where``."""
    meta = _fields(value, _FIELDS, where, "")
    if meta["schema"] != SCHEMA_VERSION:
        raise ResultsError(
            f"'{where}' has results schema {meta['schema']!r}; this benchinit reads "
            f"schema {SCHEMA_VERSION}"
        )
    study = _fields(meta["study"], _STUDY_FIELDS, where, "study.")
    if study["kind"] not in METRICS:
        raise ResultsError(
            f"'{where}' is damaged: key 'study.kind' must be one of {', '.join(METRICS)}, "
            f"got {study['kind']!r}"
        )
    if study["metric"] not in METRICS[study["kind"]]:
        raise ResultsError(
            f"'{where}' is damaged: key 'study.metric' names no metric of "
            f"{study['kind']} studies: {study['metric']!r}"
        )
    for key in ("axes",):
        _strings(study[key], where, f"study.{key}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in study["seeds"]):
        raise ResultsError(f"'{where}' is damaged: key 'study.seeds' must list integers")
    for key in ("command", "overrides", "cells"):
        _strings(meta[key], where, key)
    for key, names in _RECORD_FIELDS.items():
        for item in meta[key]:
            if not isinstance(item, dict) or not all(isinstance(item.get(n), str) for n in names):
                raise ResultsError(
                    f"'{where}' is damaged: every entry of '{key}' must be an object with "
                    f"string keys {', '.join(names)}"
                )
    provenance = _fields(meta["provenance"], _PROVENANCE_FIELDS, where, "provenance.")
    provenance["git"] = _fields(provenance["git"], _GIT_FIELDS, where, "provenance.git.")
    meta["study"], meta["provenance"] = study, provenance
    return cast(Meta, meta)
