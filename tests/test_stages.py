"""A tuned study's stages: tuning cells, the choice on validation only, the final cells."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchinit import load_study
from benchinit.analysis.stats import mean_ci
from benchinit.engine.recorder import Recorder
from benchinit.errors import StudyError
from benchinit.execution.stages import (
    NOT_TUNED,
    apply,
    choose,
    configurations,
    final_cells,
    sensitivity,
    tune_cells,
)
from benchinit.study.cells import group_key
from benchinit.study.trials import trials
from benchinit.study.tuning import TUNE_SEED_BASE, TuneSpec, parse_tune

STUDY = """
    [study]
    name = "tuned"
    kind = "train"
    seeds = 3
    [data]
    name = "blobs"
    samples = 60
    [model]
    depth = 1
    width = 8
    [train]
    epochs = 1
    [grid]
    initializer = ["xavier_normal", "kaiming_normal"]
    activation = "relu"
    optimizer = ["sgd(momentum=0.9)", "adam"]
"""
LRS = [1e-3, 1e-2, 1e-1, 1.0]
S0, S1 = TUNE_SEED_BASE, TUNE_SEED_BASE + 1


@pytest.fixture
def study(write_study):
    return load_study(write_study(STUDY))


def make_spec(study, table=None) -> TuneSpec:
    def fail(key: str, message: str) -> StudyError:
        return StudyError(study.source, key, message)

    return parse_tune(
        table or {"optimizer.lr": LRS},
        study.axes,
        study.registry,
        kind=study.kind,
        task=study.task,
        metric=study.metric,
        fail=fail,
    )


# --- cells -------------------------------------------------------------------------------


def test_apply_sets_the_parameter_on_a_copy(study):
    config = study.cells()[0].config
    before = repr(config)
    tuned = apply(config, {"optimizer.lr": 0.5})
    assert tuned["optimizer"]["params"]["lr"] == 0.5
    assert repr(config) == before  # the original is untouched
    assert {k: v for k, v in tuned.items() if k != "optimizer"} == {
        k: v for k, v in config.items() if k != "optimizer"
    }


def test_tuning_cells_cover_configuration_x_trial_x_seed(study):
    spec = make_spec(study)
    grid = study.cells()
    cells = tune_cells(grid, spec)
    assert len(configurations(grid)) == 4
    assert len(cells) == 4 * len(LRS) * 2
    assert len({c.id for c in cells}) == len(cells)
    assert not {c.id for c in cells} & {c.id for c in grid}
    assert {c.seed for c in cells} == {S0, S1}
    assert all(c.config["stage"] == "tune" and "stage" not in g.config for c in cells for g in grid)
    sgd = [c for c in cells if c.labels["optimizer"] == "sgd(momentum=0.9)"]
    assert {c.config["optimizer"]["params"]["lr"] for c in sgd} == set(LRS)
    assert all(c.config["optimizer"]["params"]["momentum"] == 0.9 for c in sgd)
    first = cells[0]
    assert list(first.labels) == [*spec.axes, "stage", "tuned.optimizer.lr"]
    assert first.labels["stage"] == "tune" and first.labels["optimizer"] == "sgd(momentum=0.9)"
    assert first.labels["tuned.optimizer.lr"] == first.config["optimizer"]["params"]["lr"]


def test_tuning_cells_still_stack_across_initializers_and_seeds(study):
    cells = tune_cells(study.cells(), make_spec(study))
    groups: dict[str, set] = {}
    for cell in cells:
        groups.setdefault(group_key(cell), set()).add(
            (cell.labels["initializer"], cell.seed, cell.labels["optimizer"])
        )
    assert len(groups) == 2 * len(LRS)  # per optimizer and lr
    assert all(len(members) == 2 * 2 for members in groups.values())


def test_tuning_cells_are_the_same_every_time(study, write_study):
    again = load_study(write_study(STUDY))
    assert [c.id for c in tune_cells(study.cells(), make_spec(study))] == [
        c.id for c in tune_cells(again.cells(), make_spec(again))
    ]


# --- a synthetic tuning result -------------------------------------------------------------


def runs(spec: TuneSpec, score, grid_cells) -> pd.DataFrame:
    """The runs table the engine would record: ``score(labels, seed) -> (status, value)``."""
    recorder = Recorder("cpu")
    for cell in tune_cells(grid_cells, spec):
        status, value = score(cell.labels, cell.seed)
        rng = np.random.default_rng(int(cell.id, 16))
        recorder.run(
            cell,
            status,
            val_accuracy=value if status == "ok" else math.nan,
            test_accuracy=rng.uniform(),  # noise: selection must not read it
        )
    return recorder.frames(1.0)["runs"]


def peaked(labels, seed):
    """sgd peaks at lr 0.1; adam at the edge, lr 1. A seed moves every trial alike."""
    lr = labels["tuned.optimizer.lr"]
    best = 0.1 if labels["optimizer"].startswith("sgd") else 1.0
    bonus = 0.01 if labels["initializer"] == "kaiming_normal" else 0.0
    return "ok", 0.9 - 0.1 * abs(math.log10(lr / best)) + bonus + 0.002 * (seed - S0)


def test_choose_takes_the_best_mean_and_flags_edges(study):
    spec = make_spec(study)
    chosen = choose(runs(spec, peaked, study.cells()), spec)
    assert len(chosen) == 4
    by = chosen.set_index(["initializer", "optimizer"])
    sgd = by.loc[("xavier_normal", "sgd(momentum=0.9)")]
    assert sgd["tuned.optimizer.lr"] == 0.1 and sgd["chosen"] and not sgd["edge"]
    assert sgd["score"] == pytest.approx(0.901)
    assert (sgd["trials"], sgd["counted"], sgd["diverged"], sgd["failed"]) == (4, 4, 0, 0)
    adam = by.loc[("kaiming_normal", "adam")]
    assert adam["tuned.optimizer.lr"] == 1.0 and adam["edge"]
    assert adam["edge_note"] == "optimizer.lr at the highest value tried (1)"
    assert sgd["tunability"] == 0.25  # neighbours are 0.1 below: only the best is near it


def test_selection_never_reads_a_test_metric(study):
    spec = make_spec(study)
    frame = runs(spec, peaked, study.cells())
    rng = np.random.default_rng(1)
    corrupted = frame.copy()
    corrupted["test_accuracy"] = rng.permutation(frame["test_accuracy"].to_numpy())
    corrupted["test_loss"] = rng.normal(size=len(frame))
    corrupted["test_mse"] = math.nan
    pd.testing.assert_frame_equal(choose(frame, spec), choose(corrupted, spec))
    pd.testing.assert_frame_equal(sensitivity(frame, spec), sensitivity(corrupted, spec))
    # even a test metric that would pick differently on its own changes nothing
    corrupted["test_accuracy"] = -corrupted["tuned.optimizer.lr"]
    pd.testing.assert_frame_equal(choose(frame, spec), choose(corrupted, spec))


def test_the_choice_does_not_depend_on_row_order_or_final_rows(study):
    spec = make_spec(study)
    frame = runs(spec, peaked, study.cells())
    shuffled = frame.sample(frac=1.0, random_state=3)
    final = frame.assign(stage="final", val_accuracy=0.0).head(5)
    mixed = pd.concat([shuffled, final])
    base = choose(frame, spec).set_index(list(spec.axes)).sort_index()
    other = choose(mixed, spec).set_index(list(spec.axes)).sort_index()
    pd.testing.assert_frame_equal(base, other)


def test_a_trial_with_a_diverged_seed_is_never_chosen(study):
    spec = make_spec(study)

    def diverges(labels, seed):
        if labels["tuned.optimizer.lr"] == 0.1 and seed == S1:
            return "diverged", math.nan
        return peaked(labels, seed)

    by = choose(runs(spec, diverges, study.cells()), spec).set_index(["initializer", "optimizer"])
    sgd = by.loc[("xavier_normal", "sgd(momentum=0.9)")]
    assert sgd["tuned.optimizer.lr"] in (0.01, 1.0) and sgd["chosen"]
    assert (sgd["counted"], sgd["diverged"], sgd["failed"]) == (3, 1, 0)


def test_failed_and_missing_seeds_do_not_count(study):
    spec = make_spec(study)

    def fails(labels, seed):
        if labels["tuned.optimizer.lr"] == 0.1:
            return "failed", math.nan
        return peaked(labels, seed)

    frame = runs(spec, peaked, study.cells())
    missing = frame[~((frame["tuned.optimizer.lr"] == 0.1) & (frame["seed"] == S1))]
    for table in (runs(spec, fails, study.cells()), missing):
        sgd = choose(table, spec).set_index(["initializer", "optimizer"])
        row = sgd.loc[("xavier_normal", "sgd(momentum=0.9)")]
        assert row["tuned.optimizer.lr"] != 0.1 and row["failed"] == 1


def test_a_configuration_whose_every_trial_failed_has_no_value_and_no_final_runs(study):
    spec = make_spec(study)

    def adam_fails(labels, seed):
        return ("failed", math.nan) if labels["optimizer"] == "adam" else peaked(labels, seed)

    chosen = choose(runs(spec, adam_fails, study.cells()), spec)
    adam = chosen[chosen["optimizer"] == "adam"]
    assert not adam["chosen"].any() and adam["tuned.optimizer.lr"].isna().all()
    assert (adam["failed"] == 4).all() and (adam["tunability"] == 0).all()
    run, skip = final_cells(study.cells(), chosen, spec)
    assert len(run) == len(skip) == 2 * 3
    assert all(c.labels["optimizer"] == "adam" for c in skip)
    assert all(math.isnan(c.labels["tuned.optimizer.lr"]) for c in skip)
    assert all(c.labels["stage"] == "final" and c.config["stage"] == "final" for c in skip)
    assert "no value was chosen" in NOT_TUNED


def test_final_cells_rerun_the_chosen_value_over_the_studys_seeds(study):
    spec = make_spec(study)
    grid = study.cells()
    chosen = choose(runs(spec, peaked, grid), spec)
    run, skip = final_cells(grid, chosen, spec)
    assert not skip and len(run) == len(grid)
    assert [c.seed for c in run] == [c.seed for c in grid]
    for cell, base in zip(run, grid, strict=True):
        lr = 0.1 if base.labels["optimizer"].startswith("sgd") else 1.0
        assert cell.config == {**apply(base.config, {"optimizer.lr": lr}), "stage": "final"}
        assert cell.labels == {**base.labels, "stage": "final", "tuned.optimizer.lr": lr}
        assert type(cell.config["optimizer"]["params"]["lr"]) is float
    tuned_ids = {c.id for c in tune_cells(grid, spec)}
    assert not {c.id for c in run} & (tuned_ids | {c.id for c in grid})


def test_ties_go_to_the_smaller_value(study):
    spec = make_spec(study)
    chosen = choose(runs(spec, lambda labels, seed: ("ok", 0.5), study.cells()), spec)
    assert (chosen["tuned.optimizer.lr"] == 1e-3).all()
    assert (chosen["tunability"] == 1.0).all()


def test_tunability_for_a_loss_is_relative(study):
    spec = make_spec(study, {"optimizer.lr": LRS, "select": "val_loss"})
    losses = {1e-3: 1.0, 1e-2: 0.52, 1e-1: 0.5, 1.0: 0.53}
    recorder = Recorder("cpu")
    for cell in tune_cells(study.cells(), spec):
        recorder.run(cell, "ok", val_loss=losses[cell.labels["tuned.optimizer.lr"]])
    chosen = choose(recorder.frames(1.0)["runs"], spec)
    assert (chosen["tuned.optimizer.lr"] == 0.1).all() and (chosen["score"] == 0.5).all()
    assert (chosen["tunability"] == 0.5).all()  # 0.5 and 0.52 are within 5% of 0.5


def test_several_parameters_choose_jointly_and_flag_each_edge(study):
    table = {"optimizer.lr": [0.01, 0.1], "optimizer.weight_decay": [0.0, 1e-4, 1e-3]}
    spec = make_spec(study, table)

    def score(labels, seed):
        wd = labels["tuned.optimizer.weight_decay"]
        return "ok", (0.8 if labels["tuned.optimizer.lr"] == 0.1 else 0.7) - abs(wd - 1e-4)

    chosen = choose(runs(spec, score, study.cells()), spec)
    assert (chosen["tuned.optimizer.lr"] == 0.1).all()
    assert (chosen["tuned.optimizer.weight_decay"] == 1e-4).all()
    assert (chosen["edge_note"] == "optimizer.lr at the highest value tried (0.1)").all()
    assert (chosen["trials"] == len(trials(spec))).all()


def test_sensitivity_gives_a_mean_and_interval_per_trial(study):
    spec = make_spec(study)

    def noisy(labels, seed):
        status, value = peaked(labels, seed)
        if labels["tuned.optimizer.lr"] == 1e-3 and seed == S1:
            return "diverged", math.nan
        return status, value + (0.05 if seed == S1 else 0.0)

    frame = runs(spec, noisy, study.cells())
    table = sensitivity(frame, spec)
    assert len(table) == 4 * len(LRS)
    assert {"mean", "low", "high", "count", "complete", "tuned.optimizer.lr"} <= set(table)
    row = table[
        (table["optimizer"] == "adam")
        & (table["initializer"] == "xavier_normal")
        & (table["tuned.optimizer.lr"] == 0.1)
    ].iloc[0]
    values = frame[
        (frame["optimizer"] == "adam")
        & (frame["initializer"] == "xavier_normal")
        & (frame["tuned.optimizer.lr"] == 0.1)
    ]["val_accuracy"]
    mean, low, high = mean_ci(values.tolist())
    assert (row["mean"], row["low"], row["high"]) == pytest.approx((mean, low, high))
    assert row["complete"] and row["count"] == 2
    partial = table[table["tuned.optimizer.lr"] == 1e-3]
    assert (partial["count"] == 1).all() and not partial["complete"].any()


def test_the_engine_trains_tuning_cells_as_it_trains_any_cell(study):
    import torch

    from benchinit.engine.train import run_train

    spec = make_spec(study, {"optimizer.lr": [0.05]})
    cells = [c for c in tune_cells(study.cells(), spec) if c.labels["optimizer"] == "adam"]
    recorder = Recorder("cpu")
    run_train(cells, study.registry, torch.device("cpu"), recorder)
    table = recorder.frames(1.0)["runs"]
    assert (table["status"] == "ok").all() and len(table) == 2 * 2
    assert (table["stage"] == "tune").all() and (table["tuned.optimizer.lr"] == 0.05).all()
    assert set(table["seed"]) == set(spec.seeds)
