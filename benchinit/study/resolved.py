"""A loaded study written back as it resolved: every section with its defaults filled in, the
TOML a results folder keeps as study.toml (rerun it to get the same cells).
"""

from __future__ import annotations

from typing import Any

import tomli_w

from benchinit.study import trials
from benchinit.study.load import Study
from benchinit.study.settings import documented_model


def resolved_document(study: Study) -> dict[str, dict[str, Any]]:
    """The study with every default filled in, as saved beside the results.

    Running the saved file again gives the same cells (plugin files become absolute paths).
    """
    data = study.registry.bind("dataset", study.data)
    model = documented_model(study.settings["model"])
    model["bias_init"] = study.registry.bind("initializer", model["bias_init"]).label
    data_table: dict[str, Any] = {"name": data.name, **data.params}
    if study.kind == "train":
        data_table["validation"] = study.validation
    document: dict[str, dict[str, Any]] = {
        "study": {
            "name": study.name,
            "title": study.title,
            "kind": study.kind,
            "seeds": study.seeding.table() if study.seeding else list(study.seeds),
            "metric": study.metric,
            "description": study.description,
            "plugins": list(study.registry.files),
        },
        "data": data_table,
        "model": model,
    }
    if study.kind == "train":
        document["train"] = dict(study.settings["train"])
    document["grid"] = {axis: list(values) for axis, values in study.axes.items()}
    if study.tune is not None:
        document["tune"] = trials.resolved_table(study.tune)
    return document


def resolved_toml(study: Study) -> str:
    """:func:`resolved_document` as TOML (``None`` values, meaning "unset", left out).

    Written with tomli-w, which escapes every control character, so any study text
    round-trips through ``tomllib``.
    """
    document = {
        section: {k: v for k, v in table.items() if v is not None}
        for section, table in resolved_document(study).items()
    }
    return tomli_w.dumps(document, multiline_strings=True)
