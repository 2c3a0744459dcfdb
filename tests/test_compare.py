"""benchinit compare: verdicts, exit codes, compare.html, JSON, incompatible inputs."""

from __future__ import annotations

import json
import textwrap

import pytest
from htmlcheck import Page, assert_no_live_markup

from benchinit import load_study, run
from benchinit.cli import main
from benchinit.verdicts import decide

OPTIMIZER = """
    import torch
    from benchinit import Optimizer, hookimpl

    def team_sgd(params, *, lr: float = {lr}):
        "The team's SGD, whose default learning rate a change may break."
        return torch.optim.SGD(params, lr=lr)

    @hookimpl
    def benchinit_optimizers():
        return [Optimizer("team_sgd", team_sgd)]
"""

STUDY = """
    [study]
    name = "ci"
    title = "CI <b>study</b>"
    kind = "train"
    seeds = {seeds}
    plugins = ["team.py"]
    [data]
    name = "digits"
    [model]
    depth = 1
    width = 32
    [train]
    epochs = 3
    batch_size = 32
    [grid]
    initializer = ["kaiming_normal", "xavier_normal"]
    activation = "relu"
    optimizer = "team_sgd"
"""


def make_run(root, name, *, lr=0.1, seeds="4", study=STUDY):
    folder = root / name
    folder.mkdir()
    (folder / "team.py").write_text(textwrap.dedent(OPTIMIZER.format(lr=lr)))
    (folder / "study.toml").write_text(textwrap.dedent(study.format(seeds=seeds)))
    run(load_study(folder / "study.toml"), folder / "out", report=False, progress=False)
    return folder / "out"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("cmp"), "base")


def test_two_runs_of_one_study_are_unchanged(base, tmp_path, capsys):
    again = make_run(tmp_path, "again")
    status = main(["compare", str(base), str(again), "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert status == 0
    assert "2 comparisons: 0 improved, 0 regressed, 2 unchanged, 0 inconclusive" in out
    verdicts = json.loads((tmp_path / "c.json").read_text())
    assert verdicts["regressed"] is False and verdicts["counts"]["unchanged"] == 2
    assert {c["test"] for c in verdicts["comparisons"]} == {"identical values in 4 paired seeds"}
    page = Page((again / "compare.html").read_text())
    assert_no_live_markup(page)
    assert "CI &lt;b&gt;study&lt;/b&gt;" in (again / "compare.html").read_text()
    assert len(page.tags("img")) == 1


def test_planted_regression_is_caught(base, tmp_path, capsys):
    slow = make_run(tmp_path, "slow", lr=0.01)  # the plugin's default lr cut 10x
    status = main(["compare", str(base), str(slow), "--out", str(tmp_path / "c.html")])
    out = capsys.readouterr().out
    assert status == 1
    assert "regressed" in out
    html = (tmp_path / "c.html").read_text()
    text = Page(html).text("verdicts")
    assert "kaiming_normal, relu, team_sgd, cross_entropy test_accuracy" in text
    assert html.count('class="verdict-regressed">regressed') == 2


def test_improvement_and_a_stricter_tolerance(base, tmp_path, capsys):
    slow = make_run(tmp_path, "slow", lr=0.01)
    assert main(["compare", str(slow), str(base)]) == 0  # the other way round: improved
    assert "2 improved" in capsys.readouterr().out
    assert main(["compare", str(slow), str(base), "--tolerance", "0.9"]) == 0
    assert "2 unchanged" in capsys.readouterr().out  # +0.55 is less than what matters
    assert main(["compare", str(slow), str(base), "--tolerance", "0.6"]) == 0
    assert "2 inconclusive" in capsys.readouterr().out  # the interval straddles 0.6


def test_more_metrics_and_unpaired_seeds_use_welch(base, tmp_path, capsys):
    other = make_run(tmp_path, "other", seeds="[10, 11, 12, 13]")
    status = main(
        [
            "compare",
            str(base),
            str(other),
            "--metric",
            "test_accuracy",
            "--metric",
            "test_loss",
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    assert status in (0, 1)
    comparisons = json.loads((tmp_path / "c.json").read_text())["comparisons"]
    assert {c["metric"] for c in comparisons} == {"test_accuracy", "test_loss"}
    assert all(c["test"] == "Welch t, 4 vs 4 seeds" for c in comparisons)


def test_more_divergence_is_a_regression(base, tmp_path, capsys):
    wild = make_run(tmp_path, "wild", lr=1e12)
    assert main(["compare", str(base), str(wild)]) == 1
    assert "diverged in" in capsys.readouterr().out


def test_environment_differences_are_shown(base, tmp_path, capsys):
    again = make_run(tmp_path, "again")
    meta = json.loads((again / "meta.json").read_text())
    meta["environment"]["torch"] = "9.9.9"
    (again / "meta.json").write_text(json.dumps(meta))
    assert main(["compare", str(base), str(again)]) == 0
    assert "environments differ: torch" in capsys.readouterr().out
    assert "<strong>9.9.9</strong>" in (again / "compare.html").read_text()


@pytest.mark.parametrize(
    "case",
    ["missing", "different study", "nothing in common", "corrupt", "not results", "bad metric"],
)
def test_incompatible_inputs_exit_2(case, base, tmp_path, capsys):
    new = tmp_path / "new"
    args = []
    if case == "missing":
        new = tmp_path / "nowhere"
    elif case == "different study":
        new = make_run(tmp_path, "other", study=STUDY.replace('name = "ci"', 'name = "other"'))
    elif case == "nothing in common":
        new = make_run(
            tmp_path, "other", study=STUDY.replace('activation = "relu"', 'activation = "tanh"')
        )
    elif case == "corrupt":
        new = make_run(tmp_path, "corrupt")
        next(new.glob("records/*/runs.parquet")).write_bytes(b"not parquet")
    elif case == "not results":
        new.mkdir()
    elif case == "bad metric":
        new, args = base, ["--metric", "test_acuracy"]
    assert main(["compare", str(base), str(new), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchinit: error: ") and "Traceback" not in err
    expected = {
        "missing": "does not exist",
        "different study": "different studies",
        "nothing in common": "no configuration in common",
        "corrupt": "corrupt",
        "not results": "not a benchinit results folder",
        "bad metric": "Did you mean 'test_accuracy'?",
    }[case]
    assert expected in err


@pytest.mark.parametrize(
    "d, low, high, p, tol, verdict",
    [
        (0.0, 0.0, 0.0, 1.0, 0.0, "unchanged"),
        (0.05, 0.03, 0.07, 0.001, 0.01, "improved"),
        (-0.05, -0.07, -0.03, 0.001, 0.01, "regressed"),
        (-0.05, -0.07, -0.03, 0.2, 0.01, "inconclusive"),  # significant alone, not corrected
        (-0.005, -0.008, -0.002, 0.001, 0.01, "unchanged"),  # significant but within tolerance
        (-0.05, -0.2, 0.1, 0.4, 0.01, "inconclusive"),
        (float("nan"), float("nan"), float("nan"), float("nan"), 0.01, "inconclusive"),
    ],
)
def test_decision_rule(d, low, high, p, tol, verdict):
    assert decide(d, low, high, p, tol, 0.05) == verdict
