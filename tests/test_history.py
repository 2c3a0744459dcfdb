"""benchinit history: a series of synthetic runs of one study -> trend page and exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from htmlcheck import Page, assert_no_live_markup
from markdowncheck import gfm_table
from synthetic import runs_frame, write_runs

from benchinit.analysis import stats
from benchinit.cli import main
from benchinit.gate.compare import compare
from benchinit.gate.history import history

HOSTILE_TITLE = "Nightly <script>alert(1)</script>"
LABELS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", "plain", "a|b"]


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def write_series(root, *, drop_last=0.0, torch=("2.12", "2.12", "2.13"), title=HOSTILE_TITLE):
    """Three nightly runs of one study, 4 configurations x 6 seeds with a shared seed effect;
    the third run's first configuration lowered by ``drop_last``; each with a report file."""
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.7, 0.9, (4, 1))
    u = rng.normal(0, 0.02, (1, 6))
    folders = []
    for night in range(3):
        values = mu + u + rng.normal(0, 0.004, (4, 6))
        if night == 2:
            values[0] -= drop_last
        meta = {
            "study": {"title": title},
            "environment": {"torch": torch[night]},
            "provenance": {
                "git": {"commit": str(night + 1) * 40, "branch": "main", "dirty": False}
            },
            "started": f"2026-03-0{night + 1}T02:00:00+00:00",
        }
        folder = write_runs(
            root / f"night{night + 1}", runs_frame(values, labels=LABELS), meta=meta
        )
        (folder / "index.html").write_text("<!DOCTYPE html><title>report</title>")
        folders.append(folder)
    return folders


def test_a_regression_in_the_last_step_exits_1_and_is_marked(tmp_path, capsys):
    runs = write_series(tmp_path, drop_last=0.05)
    out = tmp_path / "history.html"
    status = main(
        ["history", *map(str, runs), "--out", str(out), "--json", str(tmp_path / "h.json")]
    )
    assert status == 1
    text = capsys.readouterr().out
    assert "step 2 → 3: 0 improved, 1 regressed" in text
    assert "last step regressed: <img src=x onerror=alert(1)> test_accuracy" in text
    assert "changed: torch 2.12 → 2.13" in text
    page = Page(out.read_text())
    assert "2 → 3" in page.text("moves-table") and "regressed" in page.text("moves-table")
    assert "1 regressed" in page.text("last-step") and "the gate fails" in page.text("last-step")
    assert "torch: 2.12 → 2.13" in page.text("runs-table")
    result = json.loads((tmp_path / "h.json").read_text())
    assert result["regressed"] is True
    assert [s["counts"]["regressed"] for s in result["steps"]] == [0, 1]
    assert [r["run"] for r in result["runs"]] == [1, 2, 3]


def test_three_equivalent_runs_exit_0(tmp_path, capsys):
    runs = write_series(tmp_path)
    assert main(["history", *map(str, runs)]) == 0
    assert "0 regressed" in capsys.readouterr().out
    page = Page((runs[-1] / "history.html").read_text())  # the default: the last folder
    assert "No configuration regressed or improved" in page.text("moves")
    assert len(page.tags("img")) == 1


def test_an_old_regression_does_not_fail_the_last_step(tmp_path):
    runs = write_series(tmp_path, drop_last=0.05)
    outcome = history([runs[0], runs[2], runs[1]])  # the drop is now step 1 -> 2, then back
    assert not outcome.regressed
    counts = outcome.table.groupby("step")["verdict"].agg(lambda v: (v == "regressed").sum())
    assert counts.tolist() == [1, 0]
    assert (outcome.step_table(2)["verdict"] == "improved").sum() == 1


def test_verdicts_are_corrected_over_the_whole_page(tmp_path):
    runs = write_series(tmp_path, drop_last=0.05)
    outcome = history(runs, correction="holm")
    assert len(outcome.table) == 8  # 2 steps x 4 configurations
    assert outcome.table["p_adjusted"].to_numpy() == pytest.approx(
        stats.adjust_p(outcome.table["p"].to_numpy(), "holm")
    )
    assert "over every step on this page" in Page(outcome.html.read_text()).text("correction")


def test_sort_by_time_and_links_to_each_report(tmp_path):
    runs = write_series(tmp_path)
    outcome = history([runs[2], runs[0], runs[1]], sort="time", out=tmp_path / "h.html")
    assert [r.path for r in outcome.runs] == runs
    page = Page((tmp_path / "h.html").read_text())
    links = [a["href"] for a in page.tags("a")]
    assert links == [f"./night{i}/index.html" for i in (1, 2, 3)]
    default = history(runs)  # from the last folder, the others are siblings
    links = [a["href"] for a in Page(default.html.read_text()).tags("a")]
    assert links == ["../night1/index.html", "../night2/index.html", "./index.html"]


def test_every_study_supplied_string_is_escaped(tmp_path):
    runs = write_series(tmp_path, drop_last=0.05)
    html = history(runs).html.read_text()
    page = Page(html)
    assert_no_live_markup(page)
    assert "Nightly &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html


def test_markdown_of_the_last_step(tmp_path, monkeypatch):
    runs = write_series(tmp_path, drop_last=0.05)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["history", *map(str, runs), "--markdown", str(tmp_path / "h.md")]) == 1
    text = (tmp_path / "h.md").read_text()
    header, *rows = gfm_table(text)
    assert header[-2:] == ["verdict", "note"] and len(rows) == 4 and "**regressed**" in rows[0]
    assert summary.read_text() == text


def test_one_run_is_a_series_without_steps(tmp_path, capsys):
    runs = write_series(tmp_path)
    assert main(["history", str(runs[0])]) == 0
    assert "1 run, 0 steps" in capsys.readouterr().out
    assert "none: one run" in Page((runs[0] / "history.html").read_text()).text("last-step")


@pytest.mark.parametrize("case", ["different study", "missing", "corrupt", "a file", "no time"])
def test_bad_series_exit_2_naming_the_folder(case, tmp_path, capsys):
    runs = write_series(tmp_path)
    args = ["history", *map(str, runs)]
    culprit = runs[1]
    if case == "different study":
        culprit = write_runs(tmp_path / "other", runs_frame(np.ones((1, 2))), name="other")
        args[3] = str(culprit)
        expected = "different studies"
    elif case == "missing":
        culprit = tmp_path / "night9"
        args[3] = str(culprit)
        expected = "does not exist"
    elif case == "corrupt":
        next(culprit.glob("records/*/runs.parquet")).write_bytes(b"garbage")
        expected = "corrupt"
    elif case == "a file":
        culprit = tmp_path / "notes.txt"
        culprit.write_text("hello")
        args[3] = str(culprit)
        expected = "is a file, not a benchinit results folder"
    else:
        meta = json.loads((culprit / "meta.json").read_text())
        meta["started"] = "yesterday"
        (culprit / "meta.json").write_text(json.dumps(meta))
        args.append("--sort=time")
        expected = "no valid start time"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchinit: error: ") and "Traceback" not in err
    assert expected in err and str(culprit) in err


def write_nights(root, *, drop_last=0.007, configs=30, seeds=5):
    """Three nights of 30 configurations at the same 5 seeds; the last night lowered by
    0.7 seed sd in every configuration (too little for any one configuration)."""
    rng = np.random.default_rng(5)
    mu = rng.uniform(0.7, 0.9, (configs, 1))
    folders = []
    for night in range(3):
        values = mu + 0.01 * rng.normal(size=(configs, seeds)) - drop_last * (night == 2)
        meta = {"started": f"2026-03-0{night + 1}T02:00:00+00:00"}
        folders.append(write_runs(root / f"night{night + 1}", runs_frame(values), meta=meta))
    return folders


def test_the_study_as_a_whole_fails_the_last_step(tmp_path, capsys):
    runs = write_nights(tmp_path)
    out = tmp_path / "h.json"
    assert (
        main(["history", *map(str, runs), "--json", str(out), "--markdown", str(tmp_path / "h.md")])
        == 1
    )
    text = capsys.readouterr().out
    assert "step 2 → 3: 0 improved, 0 regressed" in text
    assert "study as a whole: test_accuracy regressed" in text
    assert "last step regressed: the study as a whole (test_accuracy)" in text
    assert "study as a whole, test_accuracy: regressed: mean difference" in text
    result = json.loads(out.read_text())
    assert result["regressed"] is True
    assert [s["study_level"][0]["verdict"] for s in result["steps"]] == [
        "unchanged",
        "regressed",
    ]
    assert {p["step"] for p in result["priors"]} == {1, 2}  # a prior per step
    page = Page((runs[-1] / "history.html").read_text())
    assert "test_accuracy: regressed" in page.text("study-verdict")
    assert "the gate fails" in page.text("last-step")
    assert "test_accuracy: regressed" in page.text("runs-table")
    assert "Study as a whole, test\\_accuracy: **regressed**" in (tmp_path / "h.md").read_text()


def test_a_step_s_tests_are_compare_s(tmp_path):
    """Steps do not share a prior: a step's raw p-values are those compare gives for its two
    folders (only the correction, over the whole page, differs)."""
    runs = write_nights(tmp_path)
    outcome = history(runs, out=tmp_path / "h.html")
    for step in (1, 2):
        alone = compare(runs[step - 1], runs[step], out=tmp_path / f"c{step}.html")
        ours = outcome.step_table(step)
        assert ours["p"].to_numpy() == pytest.approx(alone.table["p"].to_numpy(), rel=1e-12)
        assert outcome.step_study(step)["p"].tolist() == pytest.approx(alone.study["p"].tolist())
