"""benchinit-modern, end to end: conformance, the math of each component, a study, a report."""

from __future__ import annotations

import textwrap

import benchinit_modern
import pytest
import torch
import torch.nn.functional as F

from benchinit import load_study, run
from benchinit.cli import main
from benchinit.testing import check_plugin


def test_module_and_distribution_conform():
    expected = ["activation mish", "loss focal", "optimizer lion"]
    assert check_plugin(benchinit_modern) == expected
    assert check_plugin("benchinit-modern") == expected


def test_focal_with_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    pred, labels = torch.randn(3, 7, 5, generator=g), torch.randint(5, (3, 7), generator=g)
    ce = F.cross_entropy(pred.reshape(-1, 5), labels.reshape(-1), reduction="none").reshape(3, 7)
    assert torch.allclose(benchinit_modern.focal(pred, labels, gamma=0.0), ce, atol=1e-6)
    assert (benchinit_modern.focal(pred, labels) <= ce + 1e-7).all()  # down-weights easy ones


def test_lion_steps_have_the_same_size_per_entry():
    param = torch.nn.Parameter(torch.zeros(4))
    optimizer = benchinit_modern.lion([param], lr=0.1)
    param.grad = torch.tensor([1e-6, -3.0, 50.0, -1e-3])
    optimizer.step()
    assert torch.allclose(param.detach(), torch.tensor([-0.1, 0.1, -0.1, 0.1]))


def test_mish_gain_keeps_unit_second_moment():
    from benchinit.analysis.meanfield import second_moment

    gain = benchinit_modern.benchinit_activations()[0].gain_of({})
    assert gain**2 * second_moment(benchinit_modern.mish, 1.0) == pytest.approx(1.0, rel=1e-6)


def test_usable_in_a_study_and_present_in_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCHINIT_DISABLE_PLUGIN_AUTOLOAD", "")
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent("""
        [study]
        name = "modern"
        kind = "train"
        seeds = 2
        [data]
        name = "digits"
        [model]
        depth = 2
        width = 32
        [train]
        epochs = 3
        batch_size = 32
        [grid]
        initializer = "kaiming_normal"
        activation = ["relu", "mish"]
        optimizer = ["adam(lr=0.003)", "lion(lr=0.0005)"]
        loss = ["cross_entropy", "focal"]
    """)
    )
    outcome = run(load_study(path), tmp_path / "out", progress=False)
    runs = outcome.results.runs
    assert set(runs["status"]) == {"ok"} and len(runs) == 16
    lion = runs[(runs["optimizer"] == "lion(lr=0.0005)") & (runs["activation"] == "mish")]
    assert (lion["test_accuracy"] > 0.5).all(), "Lion with Mish learns the digits (chance: 0.1)"
    html = outcome.report.read_text()
    assert "benchinit-modern==0.1.0" in html and "Misra 2019" in html
    assert main(["list", "optimizers"]) == 0
    row = next(
        line for line in capsys.readouterr().out.splitlines() if line.split()[1].startswith("lion(")
    )
    assert "benchinit-modern==0.1.0" in row
