"""Each panel drawn once: init panels that no training setting changes are folded into one
``init`` stage, found in the numbers; a setting that does change them keeps its panels."""

from __future__ import annotations

import pandas as pd

from benchinit.report.once import STAGE, collapse_init, distinct_groups, staged

KEYS = ["initializer", "activation", "optimizer", "phase", "layer"]


def _table(init_differs: bool = False) -> pd.DataFrame:
    rows = []
    for activation in ("relu", "tanh"):
        for k, optimizer in enumerate(("adam", "sgd")):
            for phase in ("init", "final"):
                for layer in (1, 2):
                    shift = 0.1 * k if phase == "final" or init_differs else 0.0
                    mean = layer + (activation == "tanh") + shift
                    rows.append(
                        {"initializer": "he", "activation": activation, "optimizer": optimizer,
                         "phase": phase, "layer": layer, "mean": mean, "low": mean - 0.1,
                         "high": mean + 0.1, "seeds": 3}
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_init_panels_are_drawn_once_when_the_optimizer_does_not_change_them():
    table, facets, collapsed = collapse_init(_table(), ["activation", "optimizer", "phase"], KEYS)
    assert collapsed == ["optimizer"] and facets == ["activation", STAGE]
    panels = list(dict.fromkeys(zip(table["activation"], table[STAGE], strict=True)))
    assert panels == [
        ("relu", "init"),
        ("relu", "adam · final"),
        ("relu", "sgd · final"),
        ("tanh", "init"),
        ("tanh", "adam · final"),
        ("tanh", "sgd · final"),
    ]
    init = table[table[STAGE] == "init"]
    assert len(init) == 4 and set(init["optimizer"]) == {"any"}, "one init line per layer"
    assert len(table[table["phase"] == "final"]) == 8, "every trained panel kept"


def test_a_setting_that_changes_the_initialization_keeps_its_panels():
    before = _table(init_differs=True)
    table, facets, collapsed = collapse_init(before, ["activation", "optimizer", "phase"], KEYS)
    assert collapsed == [] and facets == ["activation", "optimizer", "phase"]
    assert table.equals(before)


def test_a_companion_table_follows_the_same_panels():
    theory = _table()[lambda t: t["phase"] == "init"]
    dashed = staged(theory, ["optimizer"], ["activation"])
    assert set(dashed[STAGE]) == {"init"} and len(dashed) == 4


def test_a_figure_that_repeats_another_is_left_out():
    frame = pd.DataFrame({"bin": [0, 1], "count": [5, 7]})
    groups = [
        ("adam", frame.assign(optimizer="adam")),
        ("sgd", frame.assign(optimizer="sgd")),
        ("rms", frame.assign(optimizer="rms", count=[5, 8])),
    ]
    kept = distinct_groups(groups, ["optimizer"], ["count"])
    assert [(key, same) for key, _, same in kept] == [
        (("adam",), [("adam",), ("sgd",)]),
        (("rms",), [("rms",)]),
    ]


def test_a_model_without_a_jacobian_is_said_in_the_signal_section():
    from types import SimpleNamespace

    from benchinit.report.page import model_note

    def study(name, values=None):
        settings = {"model": {"name": name}}
        return SimpleNamespace(study={"settings": settings, "values": values or {}})

    assert model_note(study("mlp")) == ""
    assert "'cnn'" in model_note(study("cnn")) and "Jacobian" in model_note(study("cnn"))
    both = model_note(study("mlp", {"model.name": ["mlp", "resnet"]}))
    assert "'resnet'" in both and "'mlp'" not in both
    assert model_note(study("mlp", {"model.name": ["mlp()"]})) == ""
    assert model_note(study({"name": "mlp"})) == ""  # an inline table names the MLP too
    assert "'cnn'" in model_note(study("cnn(kernel=5)"))
