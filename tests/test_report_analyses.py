"""The report's analyses: the tuning section, what matters most, the Jacobian spectrum, the
phase diagram, and learning curves with a validation split. On real stored runs of tiny
studies (a tuned one with diverging and failing configurations, a shrunken ``phase``, a
small signal study) and on synthetic folders whose truth is known; each section appears
exactly when its data exists."""

from __future__ import annotations

import base64
import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from htmlcheck import Page, assert_no_live_markup
from reportdata import HOSTILE, drawn_as, statistic_rows, statistics, write_results

from benchinit import load_results
from benchinit.analysis import meanfield
from benchinit.cli import main
from benchinit.execution.stages import choose, sensitivity
from benchinit.plugins.registry import Registry
from benchinit.report.page import figure_jobs, render_report
from benchinit.report.sections import ranked
from benchinit.report.tuning import tune_spec
from benchinit.study.tuning import TUNE_SEED_BASE

SECTIONS = ("tuning", "effects", "phase", "spectrum")

EXTRAS = """
    from benchinit import Initializer, hookimpl

    def broken(weight, generator, activation):
        "An initializer that always fails."
        raise ValueError("<img src=x onerror=alert('err')> cannot initialize")

    @hookimpl
    def benchinit_initializers():
        return [Initializer("broken", broken)]
"""

TUNED = """
    [study]
    name = "tuned-small"
    title = "Tuned <b>small</b>"
    kind = "train"
    seeds = 2
    plugins = ["extras.py"]
    [data]
    name = "blobs"
    samples = 200
    [model]
    depth = 1
    width = 8
    [train]
    epochs = 2
    batch_size = 32
    [grid]
    initializer = ["kaiming_normal", "normal(std=1e30)", "broken"]
    activation = ["relu", "tanh"]
    optimizer = "sgd"
    [tune]
    "optimizer.lr" = [1e-4, 1e-3, 1e-2]
    seeds = 2
"""

SIGNAL = """
    [study]
    name = "signal-small"
    kind = "signal"
    seeds = 2
    [data]
    samples = 100
    features = 16
    [model]
    depth = 4
    width = 16
    [grid]
    initializer = ["xavier_normal", "kaiming_normal"]
    activation = ["tanh", "relu"]
"""


def _run(folder: Path, study: str, *sets: str, seeds: int | None = None) -> int:
    argv = ["run", study, "--out", str(folder), "--quiet"]
    argv += ["--seeds", str(seeds)] if seeds else []
    for item in sets:
        argv += ["--set", item]
    return main(argv)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tuned")
    (folder / "extras.py").write_text(textwrap.dedent(EXTRAS))
    (folder / "study.toml").write_text(textwrap.dedent(TUNED))
    assert _run(folder / "out", str(folder / "study.toml")) == 1, "failed cells: exit 1"
    return folder / "out"


@pytest.fixture(scope="module")
def phase(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("phase") / "out"
    gains = '["lecun_normal(gain=0.5)","lecun_normal(gain=1.32)","lecun_normal(gain=4.0)"]'
    sets = [f"grid.initializer={gains}", 'grid."model.depth"=[4,16]', "train.epochs=1"]
    assert _run(folder, "phase", *sets, seeds=1) == 0
    return folder


@pytest.fixture(scope="module")
def signal(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("signal")
    (folder / "study.toml").write_text(textwrap.dedent(SIGNAL))
    assert _run(folder / "out", str(folder / "study.toml")) == 0
    return folder / "out"


def _page(folder: Path) -> Page:
    return Page((folder / "index.html").read_text())


def _jobs(folder: Path):
    results = load_results(folder)
    return figure_jobs(results, ranked(results))


def _sections(page: Page) -> set[str]:
    return {s for s in SECTIONS if s in page.ids()}


def _csv(page: Page, name: str) -> pd.DataFrame:
    link = next(a for t, a in page.elements if t == "a" and a.get("download") == f"{name}.csv")
    text = base64.b64decode((link["href"] or "").split(",", 1)[1]).decode()
    return pd.read_csv(io.StringIO(text))


# --- which sections a page has ------------------------------------------------------------


def test_each_section_appears_exactly_when_its_data_exists(tuned, phase, signal, tmp_path):
    assert _sections(_page(tuned)) == {"tuning", "effects", "spectrum"}
    assert _sections(_page(phase)) == {"effects", "phase", "spectrum"}
    assert _sections(_page(signal)) == {"effects", "spectrum"}, "no depth axis: no phase"
    one_axis = write_results(tmp_path / "one", {"initializer": ["a", "b"]})
    render_report(one_axis)
    assert _sections(_page(one_axis)) == set(), "one axis, no spectrum, untuned"
    nav = _page(tuned).text("summary")
    assert "Tuning" in nav and "What matters" in nav and "Phase" not in nav


# --- tuning ---------------------------------------------------------------------------------


def test_the_tune_spec_is_recovered_from_the_folder(tuned):
    results = load_results(tuned)
    spec = tune_spec(results)
    assert spec is not None and spec.select == "val_accuracy" and spec.direction == "max"
    assert spec.seeds == (TUNE_SEED_BASE, TUNE_SEED_BASE + 1)
    assert [p.key for p in spec.params] == ["optimizer.lr"]
    assert spec.params[0].values == (1e-4, 1e-3, 1e-2) and spec.params[0].log_scale
    chosen = choose(results.tuning, spec)
    ran = results.runs.dropna(subset=["tuned.optimizer.lr"])
    used = ran.groupby(["initializer", "activation"])["tuned.optimizer.lr"].unique()
    picked = chosen[chosen["chosen"]].set_index(["initializer", "activation"])
    assert len(picked) == len(used) == 3
    for key, values in used.items():
        assert list(values) == [picked.loc[key, "tuned.optimizer.lr"]], "what the run chose"


def test_a_folder_without_its_study_file_falls_back_to_the_validation_twin(tuned, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tuned, copy)
    (copy / "study.toml").unlink()
    spec = tune_spec(load_results(copy))
    assert spec is not None and spec.select == "val_accuracy"
    assert spec.seeds == (TUNE_SEED_BASE, TUNE_SEED_BASE + 1), "the seeds found"


def test_edge_warning_names_a_choice_at_the_highest_value_tried(tuned):
    results = load_results(tuned)
    chosen = choose(results.tuning, tune_spec(results))
    highest = chosen[chosen["chosen"] & (chosen["tuned.optimizer.lr"] == 1e-2)]
    assert len(highest), "with lr up to 1e-2, plain SGD for 2 epochs wants the highest"
    warning = _page(tuned).text("tuning-edges")
    assert "the optimum may lie beyond it" in warning
    for row in highest.to_dict("records"):
        name = f"{row['initializer']}, {row['activation']}"
        assert f"{name}: optimizer.lr at the highest value tried (0.01)" in warning
    inside = chosen[chosen["chosen"] & ~chosen["edge"]]
    for row in inside.to_dict("records"):
        assert f"{row['initializer']}, {row['activation']}:" not in warning


def test_configurations_without_a_chosen_value_are_shown_as_such(tuned):
    page = _page(tuned)
    unchosen = page.text("tuning-unchosen")
    assert "No value was chosen for 3 configurations" in unchosen
    for name in ("normal(std=1e+30), relu", "broken, relu", "broken, tanh"):
        assert name in unchosen
    table = page.text("tuning-table")
    assert table.count("no value chosen") == 3 and "none" in table


def test_sensitivity_figure_data_are_the_stages_numbers(tuned):
    results = load_results(tuned)
    spec = tune_spec(results)
    job = next(j for j in _jobs(tuned) if j.section == "tuning")
    expected = sensitivity(results.tuning, spec)
    keys = [*spec.axes, *spec.columns]
    both = job.data.merge(expected, on=keys, suffixes=("", "_stages"), validate="1:1")
    assert len(both) == len(expected) == len(job.data) == 18
    pd.testing.assert_series_equal(both["mean"], both["mean_stages"], check_names=False)
    assert (both["count"] == both["count_stages"]).all()
    assert (both["complete"] == both["complete_stages"]).all()
    for side in ("low", "high"):  # drawn clipped to the metric's range
        clipped = both[f"{side}_stages"].clip(0, 1)
        pd.testing.assert_series_equal(both[side], clipped, check_names=False)
    csv = _csv(_page(tuned), job.name)
    assert list(csv.columns) == [str(c) for c in job.data.columns]
    np.testing.assert_allclose(csv["mean"], job.data["mean"], rtol=1e-5)
    chosen = choose(results.tuning, spec)
    starred = job.data[job.data["chosen"]].set_index(list(spec.axes))["tuned.optimizer.lr"]
    picked = chosen[chosen["chosen"]].set_index(list(spec.axes))["tuned.optimizer.lr"]
    assert starred.sort_index().equals(picked.sort_index())


def test_diverged_and_failed_trials_are_drawn_and_counted(tuned):
    results = load_results(tuned)
    chosen = choose(results.tuning, tune_spec(results))
    job = next(j for j in _jobs(tuned) if j.section == "tuning")
    diverged, failed = int(chosen["diverged"].sum()), int(chosen["failed"].sum())
    assert diverged == 3 and failed == 6
    assert f"{diverged} of 18 trials had a diverged seed, {failed} a failed one" in job.caption
    incomplete = job.data[~job.data["complete"]]
    assert len(incomplete) == 9 and (incomplete["count"] == 0).all(), "drawn as crosses"
    assert "Log x axis" in job.caption and job.kwargs == {"log_x": True}


def test_curves_are_validation_per_epoch_and_test_is_in_the_leaderboard(tuned, tmp_path):
    curves = [j for j in _jobs(tuned) if j.section == "curves"]
    names = {j.name for j in curves}
    assert {"curves-train_loss", "curves-val_loss", "curves-val_accuracy"} <= names
    assert not [n for n in names if n.startswith("curves-test")], "test is measured once"
    accuracy = next(j for j in curves if j.name == "curves-val_accuracy")
    assert accuracy.caption.startswith("Validation accuracy per epoch, on the validation split")
    assert "Test metrics are measured once, after the last epoch" in accuracy.caption
    assert accuracy.data["epoch"].nunique() == 3
    every_epoch = write_results(tmp_path / "no-val", {"initializer": ["a", "b"]}, epochs=3)
    test = [j for j in _jobs(every_epoch) if j.name == "curves-test_accuracy"]
    assert test and test[0].caption.startswith("Test accuracy per epoch, on the test split")


# --- what matters most ------------------------------------------------------------------


def _one_large_one_null(config: dict, seed: int) -> float:
    """initializer shifts the metric by 0.3 per level; activation does nothing at all (the
    same value for both activations), plus seed noise."""
    level = ["a", "b", "c"].index(config["initializer"])
    noise = np.random.default_rng([seed, level]).normal(0, 0.02)
    return 0.3 + 0.3 * level + float(noise)


def test_effects_name_the_large_factor_first_and_the_null_one_covers_zero(tmp_path):
    axes = {"initializer": ["a", "b", "c"], "activation": ["x", "y"]}
    folder = write_results(tmp_path / "fx", axes, seeds=6, value=_one_large_one_null)
    page = Page(render_report(folder).read_text())
    lead = page.text("effects-lead")
    assert lead.startswith("What mattered most for test_accuracy: initializer (omega² = 0.9")
    assert "No evidence that activation, initializer × activation matter" in lead
    rows = page.text("effects-table")
    assert rows.index("1 initializer") < rows.index("2 ")
    job = next(j for j in _jobs(folder) if j.section == "effects")
    table = job.data.set_index("term")
    assert table.loc["initializer", "omega_sq_low"] > 0.5
    assert table.loc["activation", "omega_sq_low"] <= 0 <= table.loc["activation", "omega_sq_high"]


def test_effects_with_one_seed_say_why_there_are_no_intervals(phase):
    page = _page(phase)
    text = page.text("effects")
    assert "no intervals are given" in text and "main effects only" in text
    assert "initializer" in page.text("effects-lead")


# --- Jacobian spectrum ------------------------------------------------------------------


def test_spectrum_lines_and_densities_with_theory(signal):
    """The mean and the spread share a figure, a row each (their panels fit a row); the
    density has its own."""
    jobs = [j for j in _jobs(signal) if j.section == "spectrum"]
    assert [j.name for j in jobs] == ["spectrum-jacobian", "spectrum-density"]
    lines, density = jobs
    assert lines.args[1] == "layer" and drawn_as(lines) == "lines", "4 layers: lines"
    assert "free-probability theory" in lines.caption and lines.data["theory"].notna().all()
    assert "mean squared singular value" in lines.caption and "relative spread" in lines.caption
    assert [row.metric.name for row in lines.args[0]] == ["jac_sv2_mean", "jac_spread"]
    spread = statistic_rows(lines, "jac_spread")
    layers = load_results(signal).labelled("layers")
    wide = layers.pivot_table(
        index=["cell", "initializer", "activation", "layer"], columns="metric", values="value"
    ).reset_index()
    wide["spread"] = wide["jac_sv2_var"] / wide["jac_sv2_mean"] ** 2
    expected = wide.groupby(["initializer", "activation", "layer"])["spread"].mean()
    drawn = spread.set_index(["initializer", "activation", "layer"])["mean"]
    pd.testing.assert_series_equal(
        drawn.sort_index(), expected.sort_index(), check_names=False, rtol=1e-9
    )
    frame, rows, cols, hue = density.args[:4]
    assert (rows, cols, hue) == ("initializer", "activation", None)
    assert frame["count"].sum() == load_results(signal).spectra["count"].sum()


def test_spectrum_against_depth_uses_each_networks_last_layer(phase):
    jobs = {j.name: j for j in _jobs(phase) if j.section == "spectrum"}
    job = statistics(list(jobs.values()))["jac_sv2_mean"]
    assert job.args[1] == "model.depth" and "at the last hidden layer, per depth" in job.caption
    results = load_results(phase)
    layers = results.labelled("layers")
    last = layers[(layers["metric"] == "jac_sv2_mean") & (layers["layer"] == layers["model.depth"])]
    expected = last.groupby(["initializer", "phase", "model.depth"])["value"].mean()
    drawn = statistic_rows(job, "jac_sv2_mean").set_index(["initializer", "phase", "model.depth"])
    drawn = drawn["mean"]
    pd.testing.assert_series_equal(
        drawn.sort_index(), expected.sort_index(), check_names=False, rtol=1e-9
    )
    densities = [j for j in jobs.values() if j.name.startswith("spectrum-density")]
    # training studies keep the spectrum's histogram at init only (its moments at both)
    assert len(densities) == 1 and all(j.args[3] == "model.depth" for j in densities)


def test_an_isometric_spread_is_drawn_at_the_floor(tmp_path):
    def edit(tables: dict[str, pd.DataFrame]) -> None:
        rows = [
            (cell, "init", layer, metric, value)
            for cell in tables["runs"]["cell"]
            for layer in (1, 2)
            for metric, value in (("jac_sv2_mean", 1.0), ("jac_sv2_var", 1e-13 * layer))
        ]
        jac = pd.DataFrame(rows, columns=["cell", "phase", "layer", "metric", "value"])
        tables["layers"] = pd.concat([tables["layers"], jac], ignore_index=True)

    folder = write_results(tmp_path / "iso", {"initializer": ["a", "b"]}, kind="signal", edit=edit)
    job = statistics(_jobs(folder))["jac_spread"]
    assert (statistic_rows(job, "jac_spread")["mean"] == 1e-6).all()
    assert (statistic_rows(job, "jac_sv2_mean")["mean"] == 1.0).all()
    assert job.caption.count("drawn at") == 1 and "Spreads and interval ends below" in job.caption


# --- phase diagram ----------------------------------------------------------------------


def test_phase_diagram_overlays_the_theory_for_tanh(phase):
    job = next(j for j in _jobs(phase) if j.section == "phase")
    data = job.data
    measured, theory = data[data["source"] == "measured"], data[data["source"] == "theory"]
    scales = sorted(measured["sigma_w"].unique())
    assert [round(s, 1) for s in scales] == [0.5, 1.3, 4.0], "measured, one per initializer"
    assert len(measured) == 6 and measured["mean"].notna().all()
    sigma_b = float(data["sigma_b"].iloc[0])
    assert sigma_b == pytest.approx(load_results(phase).runs["sigma_b"].mean())
    tanh = Registry(autoload=False).bind("activation", "tanh")
    critical = meanfield.critical_sigma_w(tanh, sigma_b)
    assert data["critical_sigma_w"].unique().tolist() == [critical]
    assert 1.25 < critical < 1.4
    assert f"critical scale sigma_w = {critical:.3g} (chi_1 = 1)" in job.caption
    expected = meanfield.phase_diagram(tanh, theory["sigma_w"].tolist(), sigma_b)
    np.testing.assert_allclose(theory["theory_6_xi_c"], expected["trainable_depth"], rtol=1e-9)
    at_measured = measured.groupby("sigma_w")["theory_6_xi_c"].first()
    for scale, depth in at_measured.items():
        assert f"{depth:.3g} at {scale:.3g}" in job.caption
    assert "6 xi_c (Schoenholz et al. 2017)" in job.caption


def _with_scales(gains: dict[str, float]):
    def edit(tables: dict[str, pd.DataFrame]) -> None:
        runs = tables["runs"]
        runs["sigma_w"] = runs["initializer"].map(gains) * (1 + 0.001 * runs["seed"])
        runs["sigma_b"] = 0.1

    return edit


def test_a_plugin_activation_gets_the_diagram_without_a_theory_curve(tmp_path):
    axes = {"initializer": ["a", "b"], "activation": ["mish_plugin"], "model.depth": [2, 4]}
    folder = write_results(tmp_path / "p", axes, edit=_with_scales({"a": 0.5, "b": 2.0}))
    job = next(j for j in _jobs(folder) if j.section == "phase")
    assert "No theory curve: activation mish_plugin is not built in" in job.caption
    assert set(job.data["source"]) == {"measured"} and job.data["critical_sigma_w"].isna().all()
    no_depth = write_results(
        tmp_path / "q", {"initializer": ["a", "b"]}, edit=_with_scales({"a": 0.5, "b": 2.0})
    )
    assert not [j for j in _jobs(no_depth) if j.section == "phase"]
    same = write_results(tmp_path / "r", axes, edit=_with_scales({"a": 1.0, "b": 1.01}))
    assert not [j for j in _jobs(same) if j.section == "phase"], "one measured scale"


# --- escaping ---------------------------------------------------------------------------


def _tune_id(i: int) -> str:
    return f"tune{i:012x}"


def _everything(tables: dict[str, pd.DataFrame]) -> None:
    """Add what the new sections read: scales, Jacobian rows, spectra, tuning runs."""
    _with_scales({HOSTILE: 0.5, "b": 2.0})(tables)
    runs = tables["runs"]
    rows = []
    for cell in runs["cell"]:
        for layer in (1, 2):
            for metric, value in (("jac_sv2_mean", 1.0 + layer), ("jac_sv2_var", 2.0 * layer)):
                rows.append((cell, "init", layer, metric, value))
                rows.append((cell, "init", layer, f"theory_{metric}", value))
    jac = pd.DataFrame(rows, columns=["cell", "phase", "layer", "metric", "value"])
    tables["layers"] = pd.concat([tables["layers"], jac], ignore_index=True)
    tables["spectra"] = pd.DataFrame(
        [
            (c, "init", 2, b, -4 + 0.2 * b, -3.8 + 0.2 * b, b)
            for c in runs["cell"]
            for b in range(30)
        ],
        columns=["cell", "phase", "layer", "bin", "left", "right", "count"],
    )
    tuning = pd.concat([runs.assign(**{"tuned.optimizer.lr": lr}) for lr in (0.01, 0.1)])
    tuning = tuning.assign(
        stage="tune",
        cell=[_tune_id(i) for i in range(len(tuning))],
        seed=TUNE_SEED_BASE + tuning["seed"],
        val_accuracy=0.5 + tuning["tuned.optimizer.lr"],
    )
    final = runs.assign(stage="final", **{"tuned.optimizer.lr": 0.1})
    tables["runs"] = pd.concat([final, tuning], ignore_index=True)


def test_every_new_section_escapes_study_strings(tmp_path):
    axes = {"initializer": [HOSTILE, "b"], "activation": ["tanh"], "model.depth": [2, 4]}
    probe = write_results(tmp_path / "probe", axes, records=False)
    finals = json.loads((probe / "meta.json").read_text())["cells"]
    cells = finals + [_tune_id(i) for i in range(2 * len(finals))]
    folder = write_results(tmp_path / "x", axes, edit=_everything, meta={"cells": cells})
    html = render_report(folder).read_text()
    page = Page(html)
    assert_no_live_markup(page)
    assert _sections(page) == set(SECTIONS)
    assert HOSTILE in page.text("tuning-table"), "shown as text, never run"
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "val_accuracy" in page.text("tuning"), "no study.toml [tune]: the twin selects"
