"""[tune]: the table's checks (every error names the key and the choices) and the trials."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from benchinit import Optimizer, hookimpl
from benchinit.errors import StudyError
from benchinit.plugins.registry import Registry
from benchinit.study.trials import resolved_table, trials
from benchinit.study.tuning import DEFAULT_SEEDS, TUNE_SEED_BASE, TuneSpec, parse_tune


def plain_sgd(params, *, lr: float = 0.1, steps: int = 3, nesterov: bool = False, scale=2.0):
    """SGD with an integer, a boolean and an unannotated parameter (test plugin)."""
    return torch.optim.SGD(params, lr=lr)


def no_lr(params, *, rho: float = 0.9):
    """An optimizer without a learning rate (test plugin)."""
    return torch.optim.Adadelta(params, rho=rho)


class _Plugin:
    @hookimpl
    def benchinit_optimizers(self) -> list[Optimizer]:
        return [Optimizer("plain_sgd", plain_sgd), Optimizer("no_lr", no_lr)]


REGISTRY = Registry(autoload=False, objects=[(_Plugin(), "tune_test_plugin")])
AXES: dict[str, list[Any]] = {
    "initializer": ["kaiming_normal", "xavier_normal"],
    "activation": ["relu"],
    "loss": ["cross_entropy"],
    "optimizer": ["sgd", "adam"],
}


def fail(key: str, message: str) -> StudyError:
    return StudyError("study.toml", key, message)


def parse(table: dict, axes: dict | None = None, **kw: Any) -> TuneSpec:
    options = {"kind": "train", "task": "classification", "metric": "test_accuracy", **kw}
    return parse_tune(table, axes or AXES, REGISTRY, fail=fail, **options)


def error(table: dict, axes: dict | None = None, **kw: Any) -> StudyError:
    with pytest.raises(StudyError) as info:
        parse(table, axes, **kw)
    return info.value


# --- a valid table ----------------------------------------------------------------------


def test_a_list_with_defaults():
    spec = parse({"optimizer.lr": [1e-3, 1e-2, 0.1]})
    (lr,) = spec.params
    assert (lr.axis, lr.param, lr.values, lr.is_range) == (
        "optimizer",
        "lr",
        (1e-3, 1e-2, 0.1),
        False,
    )
    assert spec.select == "val_accuracy" and spec.direction == "max"
    assert tuple(spec.seeds) == tuple(TUNE_SEED_BASE + i for i in range(DEFAULT_SEEDS))
    assert spec.axes == ("initializer", "activation", "loss", "optimizer")
    assert spec.columns == ("tuned.optimizer.lr",)
    assert trials(spec) == [{"optimizer.lr": 1e-3}, {"optimizer.lr": 1e-2}, {"optimizer.lr": 0.1}]


def test_tuning_seeds_never_meet_the_studys_own():
    spec = parse({"optimizer.lr": [0.1], "seeds": 3})
    assert len(spec.seeds) == 3 and min(spec.seeds) >= TUNE_SEED_BASE


def test_default_select_follows_the_main_metric_and_the_task():
    assert parse({"optimizer.lr": [0.1]}, metric="test_loss").select == "val_loss"
    assert parse({"optimizer.lr": [0.1]}, metric="train_loss").select == "val_accuracy"
    regression = parse({"optimizer.lr": [0.1]}, task="regression", metric="test_mse")
    assert (regression.select, regression.direction) == ("val_mse", "min")
    assert parse({"optimizer.lr": [0.1]}, task="regression", metric="test_loss").select == (
        "val_loss"
    )


def test_dotted_toml_keys_and_integers_widen_to_floats():
    spec = parse({"optimizer": {"lr": [1, 2]}, "select": "val_loss"})
    assert spec.params[0].values == (1.0, 2.0)
    assert all(isinstance(v, float) for v in spec.params[0].values)
    assert spec.direction == "min"


def test_gain_is_numeric_though_it_also_takes_a_word():
    # xavier_normal's gain: float | Literal["activation"]
    spec = parse({"initializer.gain": {"range": [0.5, 2.0], "trials": 3}})
    assert [t["initializer.gain"] for t in trials(spec)] == [1.25, 0.875, 1.625]


def test_schedule_parameters_are_tunable():
    spec = parse({"optimizer.gamma": [0.1, 0.5]})
    assert spec.params[0].key == "optimizer.gamma"


# --- trials ------------------------------------------------------------------------------


def test_a_log_range_of_2k_minus_1_trials_is_the_regular_interior_grid():
    spec = parse({"optimizer.lr": {"log_range": [1e-4, 1.0], "trials": 7}})
    values = sorted(t["optimizer.lr"] for t in trials(spec))
    expected = [10 ** (-4 + 4 * i / 8) for i in range(1, 8)]
    assert values == pytest.approx(expected, rel=1e-3)
    assert all(1e-4 < v < 1.0 for v in values)
    assert spec.params[0].log_scale


def test_range_values_are_rounded_to_four_significant_digits():
    spec = parse({"optimizer.lr": {"log_range": [1e-4, 1.0], "trials": 5}})
    for trial in trials(spec):
        value = trial["optimizer.lr"]
        assert float(f"{value:.4g}") == value


def test_ranges_are_drawn_jointly_and_deterministically():
    table = {
        "optimizer.lr": {"log_range": [1e-3, 1.0], "trials": 6},
        "optimizer.momentum": {"range": [0.0, 0.99], "trials": 6},
    }
    first = trials(parse(table, {**AXES, "optimizer": ["sgd"]}))
    assert first == trials(parse(table, {**AXES, "optimizer": ["sgd"]}))
    assert len(first) == 6  # one joint sequence of 6 points, not a 6 x 6 grid
    assert len({t["optimizer.lr"] for t in first}) == 6
    assert len({t["optimizer.momentum"] for t in first}) == 6
    assert all(1e-3 < t["optimizer.lr"] < 1 and 0 < t["optimizer.momentum"] < 0.99 for t in first)


def test_lists_combine_as_a_product_with_the_range_points():
    table = {
        "optimizer.momentum": [0.0, 0.9],
        "optimizer.lr": {"log_range": [1e-3, 1.0], "trials": 3},
        "optimizer.gamma": [0.1, 0.5],
    }
    got = trials(parse(table, {**AXES, "optimizer": ["sgd"]}))
    assert len(got) == 2 * 2 * 3
    assert list(got[0]) == ["optimizer.momentum", "optimizer.lr", "optimizer.gamma"]  # file order
    lrs = sorted({t["optimizer.lr"] for t in got})
    assert len(lrs) == 3
    assert {(t["optimizer.momentum"], t["optimizer.gamma"]) for t in got} == {
        (0.0, 0.1),
        (0.0, 0.5),
        (0.9, 0.1),
        (0.9, 0.5),
    }


def test_an_integer_parameter_gets_integers_and_repeats_are_tried_once():
    axes = {**AXES, "optimizer": ["plain_sgd"]}
    spec = parse({"optimizer.steps": {"range": [1, 3], "trials": 15}}, axes)
    values = [t["optimizer.steps"] for t in trials(spec)]
    assert all(type(v) is int for v in values)
    assert sorted(values) == [1, 2, 3]
    assert parse({"optimizer.steps": [1, 4]}, axes).params[0].values == (1, 4)


def test_an_unannotated_parameter_with_a_numeric_default_is_numeric():
    axes = {**AXES, "optimizer": ["plain_sgd"]}
    assert parse({"optimizer.scale": [1.0, 2.0]}, axes).params[0].values == (1.0, 2.0)


def test_resolved_table_round_trips():
    table = {
        "optimizer.lr": {"log_range": [1e-4, 1.0], "trials": 4},
        "initializer.gain": [1.0, 2.0],
        "seeds": 3,
    }
    spec = parse(table)
    again = parse(resolved_table(spec))
    assert again == spec and trials(again) == trials(spec)


# --- errors: the key, the choices, a "did you mean" -------------------------------------


def test_unknown_parameter_suggests_and_lists_the_numeric_ones():
    exc = error({"optimizer.lrr": [0.1]})
    assert exc.key == "tune.optimizer.lrr"
    assert "optimizer 'sgd' has no parameter 'lrr'" in exc.message
    assert "Did you mean 'lr'?" in exc.message
    assert "Its numeric parameters: lr, momentum, weight_decay" in exc.message
    assert "nesterov" not in exc.message.split("numeric parameters:")[1]


def test_a_parameter_one_plugin_of_the_axis_lacks_names_that_plugin():
    exc = error({"optimizer.lr": [0.1]}, {**AXES, "optimizer": ["sgd", "no_lr"]})
    assert exc.key == "tune.optimizer.lr"
    assert "optimizer 'no_lr' has no parameter 'lr'" in exc.message
    assert "Every optimizer in the grid must have it" in exc.message


def test_a_non_numeric_parameter_is_refused_with_its_type():
    exc = error({"optimizer.nesterov": [0, 1]})
    assert "parameter 'nesterov' of optimizer 'sgd' is not numeric (true or false)" in exc.message
    exc = error({"initializer.mode": [1, 2]}, {**AXES, "initializer": ["kaiming_normal"]})
    assert "not numeric (one of 'fan_in', 'fan_out')" in exc.message


def test_unknown_axis_and_unknown_key():
    exc = error({"optimiser.lr": [0.1]})
    assert exc.key == "tune.optimiser.lr" and "Did you mean 'optimizer'?" in exc.message
    exc = error({"model.depth": [2, 4]})
    assert "only plugin parameters can be tuned" in exc.message and "[grid]" in exc.message
    exc = error({"optimizer.lr": [0.1], "sede": 2})
    assert exc.key == "tune.sede" and "Did you mean 'seeds'?" in exc.message
    assert "select, seeds" in exc.message


def test_a_grid_value_that_sets_the_tuned_parameter_is_refused():
    exc = error({"optimizer.lr": [0.1]}, {**AXES, "optimizer": ["sgd(lr=0.1)", "sgd"]})
    assert exc.key == "grid.optimizer"
    assert "'sgd(lr=0.1)' sets lr, which [tune] tunes" in exc.message
    exc = error({"optimizer.lr": [0.1]}, {**AXES, "optimizer": [{"name": "adam", "lr": 1e-3}]})
    assert "sets lr" in exc.message
    exc = error({"optimizer.lr": [0.1]}, {**AXES, "optimizer": ["sgd(0.1)"]})  # positional
    assert "sets lr" in exc.message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([], "is an empty list"),
        (["a", 0.1], "must list finite numbers, got 'a'"),
        ([True], "must list finite numbers"),
        ([0.1, math.nan], "must list finite numbers"),
        ([0.1, 0.1], "lists a value twice"),
        (0.1, "must be a list of values or a range"),
        ({"range": ["a", 1], "trials": 3}, "range must be two finite numbers"),
        ({"range": [1.0], "trials": 3}, "range must be two finite numbers"),
        ({"range": [1.0, 0.1], "trials": 3}, "must have lo < hi"),
        ({"range": [0.1, 0.1], "trials": 3}, "must have lo < hi"),
        ({"log_range": [0.0, 1.0], "trials": 3}, "log_range needs positive bounds"),
        ({"log_range": [-1.0, 1.0], "trials": 3}, "log_range needs positive bounds"),
        ({"log_range": [1e-3, 1.0]}, "a range needs trials"),
        ({"log_range": [1e-3, 1.0], "trials": 0}, "1 to 10,000 values, got 0"),
        ({"log_range": [1e-3, 1.0], "trials": 2.5}, "a range needs trials"),
        ({"range": [0, 1], "log_range": [1, 2], "trials": 2}, "exactly one of"),
        ({"logrange": [1e-3, 1.0], "trials": 2}, "Did you mean 'log_range'?"),
    ],
)
def test_bad_values_name_the_key(value, words):
    exc = error({"optimizer.lr": value})
    assert exc.key == "tune.optimizer.lr"
    assert words in exc.message
    assert "study.toml, key 'tune.optimizer.lr'" in str(exc)


def test_an_integer_parameter_refuses_a_fraction():
    exc = error({"optimizer.steps": [1, 2.5]}, {**AXES, "optimizer": ["plain_sgd"]})
    assert "must be an integer, got 2.5" in exc.message


def test_an_integer_range_that_rounds_outside_itself_is_refused():
    axes = {**AXES, "optimizer": ["plain_sgd"]}
    exc = error({"optimizer.steps": {"range": [0.1, 0.4], "trials": 3}}, axes)
    assert exc.key == "tune.optimizer.steps"
    assert "range = [0.1, 0.4] takes integers, and rounding puts 0 outside it" in exc.message
    assert "list the values to try" in exc.message
    exc = error({"optimizer.steps": {"range": [1.2, 4], "trials": 15}}, axes)
    assert "puts 1 outside it; give integer bounds such as range = [2, 4]" in exc.message


def test_a_range_whose_every_point_rounds_to_one_value_is_refused():
    axes = {**AXES, "optimizer": ["plain_sgd"]}
    exc = error({"optimizer.steps": {"range": [0.5, 1.4], "trials": 3}}, axes)
    assert exc.key == "tune.optimizer.steps"
    assert "range = [0.5, 1.4] with trials = 3 tries only 1" in exc.message
    assert "list the values to try" in exc.message
    exc = error({"optimizer.lr": {"range": [1.0, 1.00001], "trials": 3}}, axes)
    assert "tries only 1.0" in exc.message and "4 significant digits" in exc.message
    one = parse({"optimizer.steps": {"range": [0.5, 1.4], "trials": 1}}, axes)
    assert [t["optimizer.steps"] for t in trials(one)] == [1], "one trial asked, one tried"


@pytest.mark.parametrize(
    "value",
    [[0, 2], {"range": [-5, -1], "trials": 3}, {"range": [0, 4], "trials": 7}],
)
def test_values_invalid_for_the_parameter_are_refused(value):
    exc = error({"optimizer.step_size": value})  # sgd and adam: a step_size of at least 1
    assert exc.key == "tune.optimizer.step_size"
    assert "parameter 'step_size' of optimizer 'sgd' must be an integer, at least 1" in exc.message


def test_ranges_drawn_jointly_must_share_their_budget():
    exc = error(
        {
            "optimizer.lr": {"log_range": [1e-3, 1.0], "trials": 8},
            "optimizer.momentum": {"range": [0.0, 0.9], "trials": 4},
        },
        {**AXES, "optimizer": ["sgd"]},
    )
    assert "share one budget" in exc.message
    assert "optimizer.lr: 8, optimizer.momentum: 4" in exc.message


def test_select_must_be_a_validation_metric_of_the_task():
    exc = error({"optimizer.lr": [0.1], "select": "test_accuracy"})
    assert exc.key == "tune.select"
    assert "validation split only" in exc.message and "Use 'val_accuracy'" in exc.message
    exc = error({"optimizer.lr": [0.1], "select": "val_acuracy"})
    assert "Did you mean 'val_accuracy'?" in exc.message
    assert "Valid choices: val_accuracy, val_loss" in exc.message
    exc = error({"optimizer.lr": [0.1], "select": "val_accuracy"}, task="regression")
    assert "Valid choices: val_mse, val_loss" in exc.message
    assert "unknown" in error({"optimizer.lr": [0.1], "select": 3}).message


@pytest.mark.parametrize("seeds", [0, -1, 1.5, True, "2"])
def test_bad_tuning_seeds(seeds):
    exc = error({"optimizer.lr": [0.1], "seeds": seeds})
    assert exc.key == "tune.seeds" and "at least 1" in exc.message


def test_nothing_to_tune_and_signal_studies():
    assert "names no parameter to tune" in error({"seeds": 2}).message
    exc = error({"optimizer.lr": [0.1]}, kind="signal")
    assert exc.key == "tune" and "only a train study can tune" in exc.message


def test_a_later_key_wins_as_an_override_does():
    spec = parse({"optimizer": {"lr": [0.1]}, "optimizer.lr": [0.2, 0.3]})
    assert spec.params[0].values == (0.2, 0.3)
