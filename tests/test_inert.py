"""Settings with no effect in a configuration: reset to their defaults before the cell id is
computed (the same cell as without them), one warning per setting, and refused where grid
values or tuning trials would become one configuration (benchinit.study.inert)."""

from __future__ import annotations

import hashlib
import itertools
import textwrap
import warnings

import pytest

from benchinit import load_study, run
from benchinit.errors import BenchinitWarning, StudyError
from benchinit.execution.stages import tune_cells
from benchinit.study.cells import cell_id
from benchinit.study.schedules import READS, SCHEDULE_KEYS, inert, lr_factor
from benchinit.study.sources import builtin_studies

BASE = """
    [study]
    kind = "train"
    seeds = 2
    [data]
    name = "blobs"
    samples = 40
    [model]
    depth = 1
    width = 6
    [train]
    epochs = 2
    batch_size = 16
    [grid]
    initializer = ["kaiming_normal", "xavier_normal"]
    activation = "relu"
    optimizer = "sgd(lr=0.1)"
"""


def loaded(path, overrides):
    """(the study, the keys it warned about, one entry per warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = load_study(path, overrides)
    messages = [str(w.message) for w in caught if issubclass(w.category, BenchinitWarning)]
    assert all(m.endswith(": ignored") for m in messages), messages
    return study, [m.split(" ", 1)[0] for m in messages]


# (overrides that make the configuration, the setting(s) with no effect in it, keys warned)
NO_EFFECT = {
    "residual at depth 1": ([], ["model.residual=0.5"], ["model.residual"]),
    "residual at depth 0": (
        ["model.depth=0", "model.width=100"],
        ['model.residual="1/sqrt(depth)"'],
        ["model.residual"],
    ),
    "norm and width at depth 0": (
        ["model.depth=0", "model.width=100"],
        ['model.norm="layer"', "model.width=50"],
        ["model.norm", "model.width"],
    ),
    "bias_init without a bias": (
        ["model.bias=false"],
        ['model.bias_init="normal(std=0.1)"'],
        ["model.bias_init"],
    ),
    "batch_size at 0 epochs": (
        ["train.epochs=0", "train.batch_size=128", 'grid.optimizer="adam"'],
        ["train.batch_size=7"],
        ["train.batch_size"],
    ),
    "the optimizer at 0 epochs": (
        ["train.epochs=0", "train.batch_size=128", 'grid.optimizer="adam"'],
        ['grid.optimizer="sgd(lr=0.5, momentum=0.9)"'],
        ["optimizer"],
    ),
    "target_accuracy on regression data": (
        ['data.name="linear"'],
        ["train.target_accuracy=0.9"],
        ["train.target_accuracy"],
    ),
    "schedule parameters the schedule does not read": (
        [],
        ['grid.optimizer="sgd(lr=0.1, step_size=3, eta_min=0.01)"'],
        ["optimizer.step_size", "optimizer.eta_min"],
    ),
    "a schedule in a run of one epoch": (
        ["train.epochs=1"],
        ["grid.optimizer=\"sgd(lr=0.1, schedule='exponential', gamma=0.5)\""],
        ["optimizer.schedule", "optimizer.gamma"],
    ),
    "a step schedule that would step after the last epoch": (
        [],
        ["grid.optimizer=\"sgd(lr=0.1, schedule='step', step_size=2)\""],
        ["optimizer.schedule", "optimizer.step_size"],
    ),
}


@pytest.mark.parametrize("case", sorted(NO_EFFECT))
def test_a_setting_with_no_effect_keeps_the_cell_and_warns_once(case, write_study):
    where, setting, keys = NO_EFFECT[case]
    path = write_study(BASE)
    without, quiet = loaded(path, where)
    assert quiet == []
    study, warned = loaded(path, [*where, *setting])
    assert [c.id for c in study.cells()] == [c.id for c in without.cells()]
    assert warned == keys, "one warning per setting, not one per cell"


def test_where_a_setting_has_an_effect_it_still_makes_a_new_cell(write_study):
    path = write_study(BASE)
    base = {c.id for c in load_study(path, ["model.depth=2"]).cells()}
    for setting in (
        "model.residual=0.5",
        'model.norm="layer"',
        'model.bias_init="normal(std=0.1)"',
        "grid.optimizer=\"sgd(lr=0.1, schedule='step', step_size=1)\"",
        "train.target_accuracy=0.9",
    ):
        study, warned = loaded(path, ["model.depth=2", setting])
        assert not {c.id for c in study.cells()} & base, setting
        assert warned == [], setting


def test_a_rerun_without_the_setting_computes_nothing(write_study, tmp_path):
    path = write_study(BASE)
    first = run(load_study(path), tmp_path / "out", report=False, progress=False)
    assert first.computed == 4
    again = run(
        loaded(path, ["model.residual=0.5"])[0], tmp_path / "out", report=False, progress=False
    )
    assert again.computed == 0 and again.reused == 4


COLLAPSE = {
    "residual values at depth 1": (['grid."model.residual"=[false, 0.5]'], "grid.model.residual"),
    "the same in the other order": (['grid."model.residual"=[0.5, false]'], "grid.model.residual"),
    "bias_init values without a bias": (
        ['grid."model.bias_init"=["zeros", "normal(std=0.1)"]', "model.bias=false"],
        "grid.model.bias_init",
    ),
    "widths at depth 0": (
        ['grid."model.depth"=[0, 2]', 'grid."model.width"=[4, 8]'],
        "grid.model.width",
    ),
    "a schedule parameter without its schedule": (
        ['grid.optimizer=["sgd", "sgd(gamma=0.5)"]'],
        "grid.optimizer",
    ),
    "optimizers at 0 epochs": (
        ['grid.optimizer=["sgd", "adam"]', "train.epochs=0"],
        "grid.optimizer",
    ),
}


@pytest.mark.parametrize("case", sorted(COLLAPSE))
def test_grid_values_that_become_one_configuration_are_refused(case, write_study):
    overrides, key = COLLAPSE[case]
    with pytest.raises(StudyError) as raised:
        load_study(write_study(BASE), overrides)
    message = str(raised.value)
    assert f"key '{key}" in message and "make one configuration" in message
    assert "has no effect" in message, "it says which setting made them one"


def test_tuning_a_parameter_with_no_effect_is_refused(write_study):
    tuned = BASE + '[tune]\n"optimizer.gamma" = [0.1, 0.5]\n'
    with pytest.raises(StudyError, match=r"key 'tune\.optimizer\.gamma'.*has no effect"):
        load_study(write_study(tuned))
    untuned = write_study(BASE.replace('"sgd(lr=0.1)"', '"sgd"') + '[tune]\n"optimizer.lr" = [1]')
    with pytest.raises(StudyError, match=r"key 'tune\.optimizer\.lr'.*train\.epochs = 0"):
        load_study(untuned, ["train.epochs=0"])
    # a tuned step_size decides itself whether the step schedule acts: never taken as fixed
    stepped = BASE.replace('"sgd(lr=0.1)"', "\"sgd(lr=0.1, schedule='step')\"")
    study = load_study(write_study(stepped + '[tune]\n"optimizer.step_size" = [1, 5]\n'))
    steps = {
        c.config["optimizer"]["params"]["step_size"] for c in tune_cells(study.cells(), study.tune)
    }
    assert steps == {1, 5}
    assert {c.config["optimizer"]["params"]["schedule"] for c in study.cells()} == {"step"}


def test_schedule_reads_are_what_lr_factor_reads():
    base = {"schedule": "constant", "step_size": 2, "gamma": 0.5, "eta_min": 0.01}
    for schedule in READS:
        params = {**base, "schedule": schedule}
        factors = [lr_factor(params, 0.1, 6)(e) for e in range(6)]
        for key in SCHEDULE_KEYS[1:]:
            changed = {**params, key: params[key] * 2}
            moved = [lr_factor(changed, 0.1, 6)(e) for e in range(6)] != factors
            assert moved == (key in READS[schedule]), (schedule, key)


def test_a_schedule_is_inert_exactly_when_its_learning_rate_never_changes():
    for schedule, step_size, gamma, epochs in itertools.product(
        ("step", "exponential", "cosine"), (1, 2, 3, 10), (0.5, 1.0), (0, 1, 2, 3)
    ):
        params = {"schedule": schedule, "step_size": step_size, "gamma": gamma, "eta_min": 0.0}
        factor = lr_factor(params, 0.1, epochs)
        constant = all(factor(e) == 1 for e in range(epochs))
        assert ("schedule" in inert(params, epochs)) == constant, (params, epochs)


# Built-in seed study and a train study whose settings all have an effect (residual, batch
# and layer norm, a bias initializer, three schedules, a target, tuning): their cell ids,
# plugin versions blanked so that a version bump does not move them, as computed on main
# before settings with no effect were reset. The rules must never touch these.
EFFECTIVE = """
    [study]
    kind = "train"
    seeds = 2
    [data]
    name = "digits"
    [model]
    depth = 3
    width = 16
    bias_init = "normal(std=0.1)"
    residual = 0.5
    norm = "batch"
    [train]
    epochs = 3
    batch_size = 64
    target_accuracy = 0.9
    [grid]
    initializer = ["kaiming_normal", "xavier_normal"]
    activation = "relu"
    optimizer = [
        "sgd(schedule='step', step_size=2, gamma=0.5)",
        "adam(schedule='cosine', eta_min=0.0001)",
        "sgd(schedule='exponential', gamma=0.9)",
    ]
    "model.depth" = [2, 3]
    "model.norm" = ["none", "layer", "batch"]
    [tune]
    "optimizer.lr" = [0.01, 0.1]
    seeds = 1
"""
PINNED = {"seed": (120, "202266337ae0bbaf"), "effective": (144, "f012c53d97df5ff5")}


def _blank_versions(value):
    if isinstance(value, dict):
        return {k: "-" if k == "version" else _blank_versions(v) for k, v in value.items()}
    return value


def test_cell_ids_where_every_setting_has_an_effect_are_unchanged(write_study):
    for name, source in (("seed", "seed"), ("effective", write_study(EFFECTIVE))):
        study, warned = loaded(source, [])
        assert warned == []
        cells = study.cells() + (tune_cells(study.cells(), study.tune) if study.tune else [])
        ids = sorted(cell_id(_blank_versions(dict(c.config))) for c in cells)
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
        assert (len(ids), digest) == PINNED[name], name


def test_no_builtin_study_carries_a_setting_with_no_effect(monkeypatch):
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD")  # cnn-init names lsuv (plugins/)
    for name in sorted(builtin_studies()):
        assert loaded(name, [])[1] == [], name


def test_the_command_line_prints_each_warning_once(write_study, tmp_path, capsys):
    from benchinit.cli import main

    path = write_study(textwrap.dedent(BASE))
    args = ["run", str(path), "--out", str(tmp_path / "o"), "--no-report", "--quiet"]
    assert main([*args, "--set", "model.residual=0.5", "--set", "train.epochs=1"]) == 0
    err = capsys.readouterr().err
    assert err.count("benchinit: warning: model.residual has no effect at depth 1") == 1, err
