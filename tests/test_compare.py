"""benchinit compare: verdicts, exit codes, compare.html, JSON, incompatible inputs."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from htmlcheck import Page, assert_no_live_markup
from markdowncheck import gfm_table
from synthetic import runs_frame, write_runs

from benchinit import BenchinitError, load_study, run
from benchinit.analysis import stats
from benchinit.cli import main
from benchinit.gate.compare import compare
from benchinit.gate.verdicts import decide, judge


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    """Tests never append to a real GitHub step summary (CI sets the variable)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


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
    [
        "missing",
        "a file",
        "different study",
        "nothing in common",
        "corrupt",
        "not results",
        "bad metric",
    ],
)
def test_incompatible_inputs_exit_2(case, base, tmp_path, capsys):
    new = tmp_path / "new"
    args = []
    if case == "missing":
        new = tmp_path / "nowhere"
    elif case == "a file":
        new = tmp_path / "passwd"
        new.write_text("root:x:0:0\n")
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
        "a file": "is a file, not a benchinit results folder",
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


# --- synthetic folders: exact truths, no training ---------------------------------------

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a|b"]


def test_one_seed_compared_with_itself_is_unchanged(tmp_path, capsys):
    one = make_run(tmp_path, "one", seeds="1")
    assert main(["compare", str(one), str(one), "--json", str(tmp_path / "c.json")]) == 0
    assert "2 unchanged" in capsys.readouterr().out
    comparisons = json.loads((tmp_path / "c.json").read_text())["comparisons"]
    assert {c["test"] for c in comparisons} == {"identical values in 1 paired seed"}
    assert all(c["detectable"] is None and c["underpowered"] for c in comparisons)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tolerance", "nan"], "tolerance (the smallest difference that counts) must be"),
        (["--tolerance", "inf"], "must be a finite number of at least 0, got inf"),
        (["--tolerance", "-0.1"], "must be a finite number of at least 0, got -0.1"),
        (["--alpha", "0"], "alpha (the significance level) must be between 0 and 1, got 0"),
        (["--alpha", "1.5"], "must be between 0 and 1, got 1.5"),
        (["--alpha", "nan"], "must be between 0 and 1, got nan"),
    ],
)
def test_settings_that_would_void_every_verdict_exit_2(args, message, tmp_path, capsys):
    a = write_runs(tmp_path / "a", runs_frame(np.full((2, 3), 0.9)))
    assert main(["compare", str(a), str(a), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (a / "compare.html").exists()


def test_an_unknown_correction_is_named_with_the_choices(tmp_path):
    a = write_runs(tmp_path / "a", runs_frame(np.full((2, 3), 0.9)))
    with pytest.raises(BenchinitError, match=r"Did you mean 'holm'\? Valid: holm, bh, none"):
        compare(a, a, correction="hlm")


def _statuses(frame, statuses):
    frame = frame.copy()
    frame["status"] = statuses
    frame.loc[frame["status"] != "ok", "test_accuracy"] = np.nan
    return frame


def test_failures_fixed_in_new_are_improvements(tmp_path, capsys):
    values = np.array([[0.9, 0.9, 0.9, 0.9], [0.8, 0.81, 0.79, 0.8], [0.7, 0.71, 0.69, 0.7]])
    base = _statuses(runs_frame(values), ["failed"] * 4 + ["ok", "failed", "ok", "diverged"] * 2)
    a = write_runs(tmp_path / "a", base)
    b = write_runs(tmp_path / "b", runs_frame(values))
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 0
    rows = {
        c["configuration"]: c for c in json.loads((tmp_path / "c.json").read_text())["comparisons"]
    }
    assert rows["init0"]["verdict"] == "improved"  # no seed finished in base, all now
    assert "no seed finished in base" in rows["init0"]["note"]
    assert rows["init1"]["verdict"] == "improved"  # fewer failures, metric not worse
    assert "failed in 0 of 4 seeds (base: 1)" in rows["init1"]["note"]
    # and the other way round: new failures are regressions
    assert main(["compare", str(b), str(a)]) == 1
    assert "3 regressed" in capsys.readouterr().out


def test_fewer_failures_do_not_hide_a_worse_metric(tmp_path):
    base = _statuses(runs_frame(np.array([[0.9, 0.91, 0.89, 0.9, 0.9]])), ["ok"] * 4 + ["failed"])
    new = runs_frame(np.array([[0.5, 0.51, 0.49, 0.5, 0.52]]))
    outcome = compare(write_runs(tmp_path / "a", base), write_runs(tmp_path / "b", new))
    assert outcome.table["verdict"].tolist() == ["regressed"]


def test_markdown_is_a_gfm_table_and_goes_to_the_step_summary(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    values = 0.8 + 0.01 * rng.normal(size=(3, 4))
    a = write_runs(tmp_path / "a", runs_frame(values, labels=HOSTILE))
    b = write_runs(tmp_path / "b", runs_frame(values - [[0.1], [0], [0]], labels=HOSTILE))
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["compare", str(a), str(b), "--markdown", str(tmp_path / "c.md")]) == 1
    text = (tmp_path / "c.md").read_text()
    header, *rows = gfm_table(text)
    assert header[:2] == ["configuration", "metric"] and "verdict" in header
    verdict = header.index("verdict")
    assert [row[verdict] for row in rows] == ["**regressed**", "unchanged", "unchanged"]
    assert rows[0][0] == "&lt;script&gt;alert(1)&lt;/script&gt;"  # shown as text on GitHub
    assert {row[0] for row in rows[1:]} == {"&lt;img src=x onerror=alert(1)&gt;", "a\\|b"}
    assert "**3 comparisons: 0 improved, 1 regressed, 2 unchanged, 0 inconclusive**" in text
    assert summary.read_text() == "# earlier step\n" + text
    main(["compare", str(a), str(b)])  # the summary is appended to, never replaced
    assert summary.read_text() == "# earlier step\n" + text + text
    capsys.readouterr()


def test_initial_weights_identical_changed_unknown(tmp_path):
    values = np.full((3, 3), 0.9)
    base = runs_frame(values).assign(init_hash=["a1", "a2", "a3", "b1", "b2", "b3", "", "", ""])
    new = base.assign(init_hash=["a1", "a2", "a3", "b1", "XX", "b3", "", "", ""])
    a = write_runs(tmp_path / "a", base)
    outcome = compare(a, write_runs(tmp_path / "b", new))
    assert outcome.table["initial_weights"].tolist() == ["identical", "changed", "unknown"]
    html = (tmp_path / "b" / "compare.html").read_text()
    assert 'class="weights-changed">changed</td>' in html
    old = compare(a, write_runs(tmp_path / "old", runs_frame(values)))  # no init_hash column
    assert set(old.table["initial_weights"]) == {"unknown"}


def test_a_changed_tuned_value_is_reported(tmp_path):
    values = np.full((2, 3), 0.9)
    base = runs_frame(values).assign(**{"tuned.optimizer.lr": [0.1] * 3 + [0.01] * 3})
    new = runs_frame(values).assign(**{"tuned.optimizer.lr": [0.1] * 3 + [0.001] * 3})
    outcome = compare(write_runs(tmp_path / "a", base), write_runs(tmp_path / "b", new))
    rows = outcome.table.set_index("configuration")
    assert rows.loc["init0", "tuned"] == "optimizer.lr=0.1" and rows.loc["init0", "note"] == ""
    assert rows.loc["init1", "tuned"] == "optimizer.lr: 0.01 → 0.001"
    assert "chosen optimizer.lr changed: 0.01 → 0.001" in rows.loc["init1", "note"]
    assert "<th>tuned</th>" in (tmp_path / "b" / "compare.html").read_text()


def test_correction_and_adjusted_p_in_html_and_json(tmp_path):
    rng = np.random.default_rng(1)
    values = 0.8 + 0.01 * rng.normal(size=(6, 5))
    shifted = values + 0.01 * rng.normal(size=(6, 5)) - [[0.03]] * 6 * np.eye(6)[:, :1]
    labels = [f"{h} {i}" for i, h in enumerate(HOSTILE * 2)]
    a = write_runs(tmp_path / "a", runs_frame(values, labels=labels))
    b = write_runs(tmp_path / "b", runs_frame(shifted, labels=labels))
    for correction, name in (("holm", "Holm"), ("bh", "Benjamini-Hochberg"), ("none", "none")):
        out = tmp_path / f"{correction}.json"
        compare(a, b, correction=correction, json_out=out)
        result = json.loads(out.read_text())
        assert result["correction"] == correction and result["alpha"] == 0.05
        p = np.array([c["p"] for c in result["comparisons"]], dtype=float)
        adjusted = np.array([c["p_adjusted"] for c in result["comparisons"]], dtype=float)
        assert adjusted == pytest.approx(stats.adjust_p(p, correction))
        page = Page((b / "compare.html").read_text())
        assert page.text("correction").startswith(name)
        assert_no_live_markup(page)
    assert '<th class="num">p adjusted</th>' in (b / "compare.html").read_text()


def test_power_warning_when_the_tolerance_is_below_the_detectable_change(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a = write_runs(tmp_path / "a", runs_frame(0.8 + 0.05 * rng.normal(size=(2, 3))))
    b = write_runs(tmp_path / "b", runs_frame(0.8 + 0.05 * rng.normal(size=(2, 3))))
    main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert "warning: in 2 of 2 comparisons the tolerance is below the smallest change" in out
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["warning"].startswith("warning: in 2 of 2")
    assert all(c["detectable"] > c["tolerance"] for c in result["comparisons"])
    assert "tolerance is below" in Page((b / "compare.html").read_text()).text("power-warning")
    main(["compare", str(a), str(b), "--tolerance", "10"])  # wide enough: no warning
    assert "tolerance is below" not in capsys.readouterr().out


def test_provenance_and_settings_differences_are_listed(tmp_path, capsys):
    values = np.full((1, 3), 0.9)
    git = {"git": {"commit": "abc123", "branch": "main", "dirty": False}, "host": "ci-1"}
    a = write_runs(tmp_path / "a", runs_frame(values), meta={"provenance": git})
    changed = {**git, "git": {**git["git"], "commit": "def456"}}
    settings = {"settings": {"model": {"precision": "bf16"}}}
    b = write_runs(
        tmp_path / "b", runs_frame(values), meta={"provenance": changed, "study": settings}
    )
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "git commit abc123 -> def456" in out and "model.precision float32 -> bf16" in out
    rows = {e["key"]: e for e in json.loads((tmp_path / "c.json").read_text())["environment"]}
    assert rows["git commit"]["differs"] and rows["git commit"]["group"] == "provenance"
    assert not rows["host"]["differs"] and not rows["git branch"]["differs"]
    assert rows["model.precision"]["group"] == "settings"


INITIALIZER = """
    import torch
    from benchinit import Initializer, hookimpl

    def team_init(weight, generator, activation):
        "The team's initializer; its next version draws differently."
        with torch.no_grad():
            std = weight.shape[1] ** -0.5
            if {uniform}:
                weight.uniform_(-std * 3**0.5, std * 3**0.5, generator=generator)
            else:
                weight.normal_(0.0, std, generator=generator)

    @hookimpl
    def benchinit_initializers():
        return [Initializer("team_init", team_init)]
"""
FINGERPRINT_STUDY = """
    [study]
    name = "fingerprints"
    kind = "signal"
    seeds = 3
    plugins = ["team_init.py"]
    [data]
    name = "gaussian"
    samples = 50
    features = 8
    [model]
    depth = 2
    width = 8
    [grid]
    initializer = ["team_init", "kaiming_normal"]
    activation = "tanh"
"""


def test_fingerprints_tell_whether_the_initial_weights_changed(tmp_path):
    def run_with(name, uniform):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "team_init.py").write_text(textwrap.dedent(INITIALIZER.format(uniform=uniform)))
        (folder / "study.toml").write_text(textwrap.dedent(FINGERPRINT_STUDY))
        run(load_study(folder / "study.toml"), folder / "out", report=False, progress=False)
        return folder / "out"

    first, again, changed = run_with("a", False), run_with("b", False), run_with("c", True)
    same = compare(first, again).table.set_index("initializer")["initial_weights"]
    assert (same == "identical").all()
    moved = compare(first, changed).table.set_index("initializer")["initial_weights"]
    assert moved["team_init"] == "changed", "the new plugin version draws other weights"
    assert moved["kaiming_normal"] == "identical", "and only its configurations changed"


# --- real runs: the digits case of issue 19 ---------------------------------------------

DIGITS = """
    [study]
    name = "digits-gate"
    kind = "train"
    seeds = 3
    [data]
    name = "digits"
    [model]
    depth = 1
    width = 64
    [train]
    epochs = 6
    batch_size = 64
    [grid]
    initializer = ["kaiming_normal", "xavier_normal", "orthogonal"]
    activation = ["relu", "tanh"]
    optimizer = "sgd(lr=0.02, momentum=0.9)"
"""


@pytest.mark.slow
def test_digits_cut_from_six_epochs_to_one_fails_the_gate_other_seeds_pass(tmp_path, capsys):
    """Issue 19: 6 configurations at 3 seeds (same initial weights on both sides), 6 epochs
    against 1: every configuration loses 20-35 points. The old gate called them all
    "inconclusive" at 3 seeds; now at least 5 of 6 and the study as a whole regress. The
    same study at seeds 0-2 against 3-5 passes with none regressed."""
    study = tmp_path / "digits.toml"
    study.write_text(textwrap.dedent(DIGITS))

    def run_with(name, *overrides):
        run(load_study(study, list(overrides)), tmp_path / name, report=False, progress=False)
        return str(tmp_path / name)

    six, one = run_with("six"), run_with("one", "train.epochs=1")
    other = run_with("other", "study.seeds=[3, 4, 5]")
    out = tmp_path / "c.json"
    assert main(["compare", six, one, "--json", str(out), "--out", str(tmp_path / "c.html")]) == 1
    result = json.loads(out.read_text())
    assert result["counts"]["regressed"] >= 5
    assert all(c["diff"] < -0.1 for c in result["comparisons"])
    assert [s["verdict"] for s in result["study_level"]] == ["regressed"]
    assert main(["compare", six, other, "--json", str(out), "--out", str(tmp_path / "d.html")]) == 0
    result = json.loads(out.read_text())
    assert result["counts"]["regressed"] == 0 and result["regressed"] is False
    assert [s["verdict"] for s in result["study_level"]] != ["regressed"]
    capsys.readouterr()


# --- the study as a whole ----------------------------------------------------------------


def _small_drop_everywhere(tmp_path, drop=0.007, configs=30, seeds=5):
    """Every configuration NEW lowered by 0.7 seed sd: too little for any configuration to
    be called alone among 30, plenty for the mean over them."""
    rng = np.random.default_rng(3)
    base = 0.8 + 0.01 * rng.normal(size=(configs, seeds))
    new = base + 0.01 * rng.normal(size=(configs, seeds)) - drop
    return write_runs(tmp_path / "a", runs_frame(base)), write_runs(tmp_path / "b", runs_frame(new))


def test_the_study_as_a_whole_regresses_where_no_configuration_does(tmp_path, capsys):
    a, b = _small_drop_everywhere(tmp_path)
    args = ["--json", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md")]
    assert main(["compare", str(a), str(b), *args]) == 1  # the study-level rule
    out = capsys.readouterr().out
    assert "0 regressed" in out
    head = out.splitlines()[1]
    assert head.startswith("study as a whole, test_accuracy: regressed: mean difference -0.0")
    assert "paired t over 5 seeds of the mean over the configurations" in head
    assert "mean over 30 of 30 configurations" in head
    assert "variances moderated: test_accuracy paired: prior df" in out
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["regressed"] is True and result["counts"]["regressed"] == 0
    (study,) = result["study_level"]
    assert study["verdict"] == "regressed" and study["configurations"] == 30
    assert study["p_adjusted"] < 0.05 and study["diff"] < -0.005 < study["ci_high"]
    assert study["diff"] == pytest.approx(np.mean([c["diff"] for c in result["comparisons"]]))
    assert {c["test"] for c in result["comparisons"]} == {"moderated paired t over 5 seeds"}
    assert all(c["df"] > 4 for c in result["comparisons"])  # the prior's df added
    markdown = (tmp_path / "c.md").read_text()
    assert "- Study as a whole, test\\_accuracy: **regressed**: mean difference" in markdown
    assert markdown.index("Study as a whole") < markdown.index("| configuration |")
    page = Page((b / "compare.html").read_text())
    assert "test_accuracy: regressed" in page.text("study-verdict")
    assert page.text("gate").startswith("fails (exit 1)")
    assert "prior df" in page.text("priors")


def test_a_drop_within_the_tolerance_leaves_the_study_unchanged(tmp_path, capsys):
    a, b = _small_drop_everywhere(tmp_path, drop=0.002)
    outcome = compare(a, b, tolerance=0.02)
    assert outcome.study["verdict"].tolist() == ["unchanged"] and not outcome.regressed
    assert outcome.study["tolerance"].tolist() == pytest.approx([0.02])


def test_one_configuration_is_the_study(tmp_path):
    rng = np.random.default_rng(4)
    values = 0.8 + 0.01 * rng.normal(size=(1, 4))
    outcome = compare(
        write_runs(tmp_path / "a", runs_frame(values)),
        write_runs(tmp_path / "b", runs_frame(values - 0.05)),
    )
    (row,), (study,) = outcome.table.to_dict("records"), outcome.study.to_dict("records")
    assert row["test"] == "paired t over 4 seeds"  # too few for a prior: the ordinary test
    assert study["test"] == "one configuration: its own test"
    assert (study["verdict"], study["p_adjusted"]) == (row["verdict"], row["p_adjusted"])
    assert study["verdict"] == "regressed" and outcome.regressed
    assert outcome.priors["fitted"].tolist() == [False]


def test_one_study_verdict_per_metric(tmp_path):
    a, b = _small_drop_everywhere(tmp_path)
    for folder, shift in ((a, 0.0), (b, 0.5)):
        for path in folder.glob("records/*/runs.parquet"):
            frame = pd.read_parquet(path)
            frame.assign(test_loss=1.0 + frame["seed"] * 0.01 + shift).to_parquet(path)
    outcome = compare(a, b, metrics=["test_accuracy", "test_loss"])
    study = outcome.study.set_index("metric")
    assert study.loc["test_accuracy", "verdict"] == "regressed"
    assert study.loc["test_loss", "verdict"] == "regressed"  # up by 0.5 in every seed
    assert set(outcome.priors["metric"]) == {"test_accuracy", "test_loss"}


def test_every_configuration_regressed_is_a_regressed_study():
    """A drop in every configuration is never "inconclusive" for the study, whatever its own
    test says (here one too wide to decide)."""
    rows = pd.DataFrame(
        {
            "metric": "m", "diff": [-0.3, -0.2], "ci_low": [-0.4, -0.3], "ci_high": [-0.2, -0.1],
            "p": [1e-4, 1e-4], "se": [0.03, 0.03], "df": [10.0, 10.0], "tolerance": 0.005,
            "identical": False, "status_change": "",
        }
    )  # fmt: skip
    study = pd.DataFrame(
        [{"metric": "m", "diff": -0.25, "ci_low": -0.9, "ci_high": 0.4, "p": 0.3, "se": 0.1,
          "df": 2.0, "tolerance": 0.005, "identical": False, "copy": -1}]
    )  # fmt: skip
    _, judged = judge(rows, alpha=0.05, correction="holm", study=study)
    assert judged["verdict"].tolist() == ["regressed"]
    rows.loc[1, ["diff", "ci_low", "ci_high", "p"]] = [0.0, -0.001, 0.001, 1.0]
    _, judged = judge(rows, alpha=0.05, correction="holm", study=study)
    assert judged["verdict"].tolist() == ["inconclusive"]
