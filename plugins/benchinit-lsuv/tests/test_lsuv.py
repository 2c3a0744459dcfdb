"""benchinit-lsuv, end to end: conformance, unit variance per layer, listing, report."""

from __future__ import annotations

import textwrap

import benchinit_lsuv
import pytest

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.plugins.registry import Registry
from benchinit.testing import check_plugin

SIGNAL = """
    [study]
    name = "lsuv"
    kind = "signal"
    seeds = 3
    [data]
    samples = 500
    features = 50
    [model]
    depth = 10
    width = 64
    [grid]
    initializer = ["lsuv(tol=0.02)", "orthogonal"]
    activation = ["tanh", "relu"]
"""


def test_module_and_distribution_conform():
    assert check_plugin(benchinit_lsuv) == ["initializer lsuv"]
    assert check_plugin("benchinit-lsuv") == ["initializer lsuv"]


def test_every_layer_has_unit_variance_on_the_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "")
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SIGNAL))
    run(load_study(path), tmp_path / "out", report=False, progress=False)
    layers = load_results(tmp_path / "out").labelled("layers")
    std = (
        layers[layers["metric"] == "preact_std"]
        .groupby(["initializer", "activation", "layer"])["value"]
        .mean()
    )
    for activation in ("tanh", "relu"):
        lsuv = std.loc[("lsuv(tol=0.02)", activation)]
        assert lsuv.between(0.98, 1.02).all(), lsuv  # pre-activation variance 1 within tol
    plain = std.loc[("orthogonal", "relu")]
    assert plain.loc[10] < 0.1 * plain.loc[1]  # without LSUV, ReLU halves it per layer


def test_listed_with_its_distribution_and_shown_in_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "")
    assert main(["list", "initializers"]) == 0
    row = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.split()[:2] == ["initializer", "lsuv(tol=0.1,"]
    )
    assert "benchinit-lsuv==0.1.0" in row and "Mishkin & Matas 2016" in row
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SIGNAL).replace("seeds = 3", "seeds = 1"))
    outcome = run(load_study(path), tmp_path / "out", progress=False)
    html = outcome.report.read_text()
    assert "benchinit-lsuv==0.1.0" in html and "lsuv(tol=0.02)" in html


def test_registry_sees_the_entry_point(monkeypatch):
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    entry = Registry(blocked=()).get("initializer", "lsuv")
    assert entry.plugin.origin == "distribution"
    assert entry.plugin.source == "benchinit-lsuv==0.1.0"
    assert entry.descriptor.calibrate is not None


def test_parameters_are_checked(monkeypatch):
    monkeypatch.delenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    with pytest.raises(ValueError, match="must be an integer"):
        Registry(blocked=()).bind("initializer", "lsuv(max_iters=2.5)")
