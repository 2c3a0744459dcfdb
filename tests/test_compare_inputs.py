"""compare and history on folders that are incomplete, damaged or odd: exit 2 naming the
file, or a verdict that says what it could not compare; never a traceback (exit 1 would
read as a regression) and never a configuration dropped silently."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import runs_frame, write_runs

from benchinit import load_results
from benchinit.cli import main
from benchinit.gate.compare import compare
from benchinit.gate.verdicts import judge


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def folder(root: Path, name: str, values: np.ndarray | None = None, **kw) -> Path:
    values = np.full((2, 3), 0.9) + np.arange(3) * 0.01 if values is None else values
    return write_runs(root / name, runs_frame(values), **kw)


def edit_runs(results: Path, change) -> None:
    for path in results.glob("records/*/runs.parquet"):
        change(pd.read_parquet(path)).to_parquet(path)


def edit_meta(results: Path, change) -> None:
    meta = json.loads((results / "meta.json").read_text())
    change(meta)
    (results / "meta.json").write_text(json.dumps(meta))


def exits_2_naming(args: list[str], expected: str, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("benchinit: error: ") and "Traceback" not in err
    assert expected in err, err
    return err


def test_a_folder_with_no_record_yet_is_exit_2_not_a_regression(tmp_path, capsys):
    base, new = folder(tmp_path, "base"), folder(tmp_path, "new")
    shutil.rmtree(new / "records")  # what a run interrupted before its first batch leaves
    (new / "records").mkdir()
    results = load_results(new)
    assert {"initializer", "seed", "status"} <= set(results.runs.columns)
    assert results.summary().empty and results.labelled("layers").empty
    for args in (["compare", str(base), str(new)], ["history", str(base), str(new)]):
        exits_2_naming(args, f"'{new}' has no finished or failed cell yet", capsys)
    exits_2_naming(["history", str(new)], "no finished or failed cell", capsys)
    assert main(["report", str(new), "--out", str(tmp_path / "r.html")]) == 0


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda f: f.drop(columns="seed"), "column 'seed' cannot be int64 (it is missing)"),
        (lambda f: f.assign(test_accuracy="abc"), "column 'test_accuracy' cannot be float64"),
        (lambda f: f.drop(columns="initializer"), "the records lack the grid columns"),
    ],
    ids=["no seed column", "text metric", "no grid column"],
)
def test_damaged_records_are_exit_2_in_every_command(damage, expected, tmp_path, capsys):
    base, new = folder(tmp_path, "base"), folder(tmp_path, "new")
    edit_runs(new, damage)
    for args in (
        ["compare", str(base), str(new)],
        ["history", str(base), str(new)],
        ["report", str(new)],
    ):
        exits_2_naming(args, expected, capsys)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["provenance"].update(git="abc"), "key 'provenance.git' must be dict"),
        (
            lambda m: m["provenance"].update(torch_config=[1, 2]),
            "key 'provenance.torch_config' must be dict",
        ),
        (
            lambda m: m["provenance"].update(git={"commit": 7}),
            "key 'provenance.git.commit' must be str",
        ),
        (lambda m: m["study"].update(axes=[]), "study.axes lists no grid axis"),
        (lambda m: m["study"].update(axes=["initializer", "nope"]), "lack the grid columns nope"),
        (lambda m: m["study"].update(axes=["seed"]), "study.axes names table columns: seed"),
    ],
    ids=["git", "torch_config", "commit", "no axes", "unknown axis", "reserved axis"],
)
def test_a_meta_json_of_the_wrong_shape_is_exit_2(change, expected, tmp_path, capsys):
    base, new = folder(tmp_path, "base"), folder(tmp_path, "new")
    edit_meta(new, change)
    for args in (["compare", str(base), str(new)], ["history", str(base), str(new)]):
        exits_2_naming(args, expected, capsys)


def test_json_nested_too_deeply_is_exit_2(tmp_path, capsys):
    base, new = folder(tmp_path, "base"), folder(tmp_path, "new")
    (new / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    exits_2_naming(["compare", str(base), str(new)], "nested too deeply", capsys)


def verdicts_of(tmp_path: Path, base: Path, new: Path) -> tuple[int, dict[str, dict]]:
    out = tmp_path / "verdicts.json"
    status = main(["compare", str(base), str(new), "--json", str(out), "--out", str(out) + ".html"])
    rows = json.loads(out.read_text())["comparisons"]
    return status, {r["configuration"]: r for r in rows}


def test_a_configuration_new_never_recorded_is_a_regression(tmp_path):
    base = folder(tmp_path, "base")
    grid = {"study": {"values": {"initializer": ["init0", "init1"]}}}
    new = folder(tmp_path, "new", np.full((1, 3), 0.9) + np.arange(3) * 0.01, meta=grid)
    status, rows = verdicts_of(tmp_path, base, new)
    assert status == 1, "an incomplete NEW never passes the gate"
    assert rows["init0"]["verdict"] == "unchanged"
    assert rows["init1"]["verdict"] == "regressed"
    assert rows["init1"]["note"] == "no record in NEW, though its grid has it"
    study = compare(base, new, out=tmp_path / "c.html").study.iloc[0]
    assert (study["configurations"], study["of"]) == (1, 2)  # init1 has no test
    assert (
        study["note"]
        == "mean over 1 of 2 configurations (1 left out: no test, another design or other seeds)"
    )
    status, rows = verdicts_of(tmp_path, new, base)  # BASE incomplete: shown, not a failure
    assert status == 0
    assert rows["init1"]["verdict"] == "inconclusive"
    assert rows["init1"]["note"] == "no record in BASE, though its grid has it"


def test_a_configuration_outside_the_other_grid_is_listed_not_compared(tmp_path, capsys):
    base = folder(tmp_path, "base")
    new = folder(tmp_path, "new", np.full((1, 3), 0.9) + np.arange(3) * 0.01)
    status, rows = verdicts_of(tmp_path, base, new)
    assert status == 0
    assert rows["init1"]["verdict"] == "inconclusive"
    assert rows["init1"]["note"] == "not in NEW's grid: not compared"
    status, rows = verdicts_of(tmp_path, new, base)
    assert status == 0 and rows["init1"]["note"] == "not in BASE's grid: not compared"
    assert main(["compare", str(base), str(new), "--out", str(tmp_path / "c.html")]) == 0
    assert "not in NEW's grid" in capsys.readouterr().out


def test_fewer_failures_improve_only_a_metric_that_is_not_worse():
    row = {
        "p": 0.2, "se": 0.6, "df": 2.0, "tolerance": 0.01, "identical": False,
        "diff": -1.17, "ci_low": -2.37, "ci_high": 0.17, "status_change": "better",
    }  # fmt: skip
    table = pd.DataFrame(
        [
            row,
            {**row, "diff": 0.0, "ci_low": -0.005, "ci_high": 0.005},
            {**row, "status_change": "fixed"},
            {**row, "status_change": "missing"},
        ]
    )
    verdicts = judge(table, alpha=0.05, correction="holm")[0]["verdict"].tolist()
    assert verdicts == ["inconclusive", "improved", "improved", "regressed"]


def test_a_metric_asked_twice_is_compared_once(tmp_path, capsys):
    base, new = folder(tmp_path, "base"), folder(tmp_path, "new")
    args = ["compare", str(base), str(new), "--metric", "test_accuracy", "--metric"]
    assert main([*args, "test_accuracy", "--out", str(tmp_path / "c.html")]) == 0
    assert "2 comparisons" in capsys.readouterr().out


def test_history_sorts_times_with_and_without_an_offset(tmp_path, capsys):
    first = folder(tmp_path, "first", meta={"started": "2026-01-01T00:00:00"})
    second = folder(tmp_path, "second", meta={"started": "2026-02-01T00:00:00+00:00"})
    out = tmp_path / "h.json"
    args = ["history", str(second), str(first), "--sort", "time", "--json", str(out)]
    assert main([*args, "--out", str(tmp_path / "h.html")]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [Path(r["path"]).name for r in runs] == ["first", "second"]


@pytest.mark.parametrize(
    "body",
    [
        "import sys\nsys.exit(3)\n",
        "import sys\nfrom benchinit import hookimpl\n\n"
        "@hookimpl\ndef benchinit_initializers():\n    sys.exit(0)\n",
    ],
    ids=["at import", "in a hook"],
)
def test_a_plugin_that_exits_while_loading_is_exit_2_naming_it(body, tmp_path, capsys):
    plugin = tmp_path / "exits.py"
    plugin.write_text(body)
    err = exits_2_naming(["list", "--plugin", str(plugin)], "SystemExit", capsys)
    assert "exits" in err


def test_every_summary_clips_intervals_to_the_metric_s_range(tmp_path):
    from benchinit.pipeline import RunOutcome

    values = np.array([[1.0, 0.6, 1.0], [0.5, 0.5, 0.5]])  # a wide interval near 1
    results = load_results(write_runs(tmp_path / "r", runs_frame(values)))
    summary = results.summary()
    assert summary["ci_high"].max() == 1.0 and bool(summary["clipped"].iloc[0])
    text = RunOutcome(tmp_path / "r", results, 6, 0, 1.0, None).summary()
    rows = [line.split() for line in text.splitlines()]
    highs = [float(r[3]) for r in rows if r and r[0] in ("init0", "init1")]
    assert highs and max(highs) <= 1.0


def test_the_run_summary_never_prints_minus_zero(tmp_path):
    from benchinit.pipeline import RunOutcome

    values = np.array([[-0.0, -0.0], [0.5, 0.5]])
    results = load_results(write_runs(tmp_path / "r", runs_frame(values)))
    text = RunOutcome(tmp_path / "r", results, 4, 0, 1.0, None).summary()
    # the numbers only: the last line names the folder, whose path may hold "pytest-0"
    numbers = [
        t for line in text.splitlines() if not line.startswith("results:") for t in line.split()
    ]
    assert "init0" in numbers and not any(re.fullmatch(r"-0(\.0*)?", t) for t in numbers)


# --- missing data never passes the gate (issue 20, item 3) --------------------------------


@pytest.mark.parametrize("absent", ["no column", "all missing"])
def test_a_metric_one_side_does_not_record_is_exit_2_naming_it(absent, tmp_path, capsys):
    """--metric val_accuracy where NEW ran with data.validation=0: exit 2 naming the metric
    and the folder, whichever side lacks it, in compare and in history."""
    values = np.full((2, 3), 0.9) + np.arange(3) * 0.01
    with_it = runs_frame(values).assign(val_accuracy=0.85)
    without = runs_frame(values)
    if absent == "all missing":
        without = without.assign(val_accuracy=np.nan)
    a, b = write_runs(tmp_path / "a", with_it), write_runs(tmp_path / "b", without)
    expected = f"'val_accuracy' has no value in any finished run of {b} but has values in {a}"
    for args in (
        ["compare", str(a), str(b)],
        ["compare", str(b), str(a)],
        ["history", str(a), str(b)],
    ):
        exits_2_naming([*args, "--metric", "val_accuracy"], expected, capsys)
    assert not (a / "compare.html").exists() and not (b / "compare.html").exists()


def test_finished_seeds_without_a_value_are_a_regression(tmp_path):
    """An accuracy target reached in every seed of BASE and in one of NEW's: the seeds
    with no value are not dropped silently."""
    values = np.array([[3.0, 4.0, 3.0], [5.0, 5.0, 4.0]])
    base = runs_frame(values, metric="epochs_to_target").assign(test_accuracy=0.9)
    new = base.copy()
    new.loc[new.index[:2], "epochs_to_target"] = np.nan  # init0: target never reached
    a, b = write_runs(tmp_path / "a", base), write_runs(tmp_path / "b", new)
    out = tmp_path / "v.json"
    args = ["compare", str(a), str(b), "--metric", "epochs_to_target", "--json", str(out)]
    assert main([*args, "--out", str(tmp_path / "c.html")]) == 1
    rows = {r["configuration"]: r for r in json.loads(out.read_text())["comparisons"]}
    assert rows["init0"]["verdict"] == "regressed"
    assert rows["init0"]["note"] == "no epochs_to_target value in 2 of 3 seeds (base: 0)"
    assert rows["init1"]["verdict"] == "unchanged"
    assert main([*args[:1], str(b), str(a), *args[3:], "--out", str(tmp_path / "d.html")]) == 0


def _troubled(tmp_path: Path) -> Path:
    """Three configurations: a fine one, one whose seeds all diverged, one with a failed
    seed; no accuracy target, so epochs_to_target has no value anywhere."""
    values = np.array([[0.9, 0.91, 0.92], [0.5, 0.5, 0.5], [0.8, 0.81, 0.82]])
    frame = runs_frame(values).assign(epochs_to_target=np.nan)
    frame["status"] = ["ok"] * 3 + ["diverged"] * 3 + ["ok", "failed", "ok"]
    frame.loc[frame["status"] != "ok", "test_accuracy"] = np.nan
    return write_runs(tmp_path / "r", frame)


@pytest.mark.parametrize(
    "metrics",
    [[], ["epochs_to_target"], ["test_accuracy", "epochs_to_target"]],
    ids=["main metric", "no value anywhere", "both"],
)
def test_a_folder_compared_with_itself_is_unchanged_everywhere(metrics, tmp_path, capsys):
    results = _troubled(tmp_path)
    flags = [f"--metric={m}" for m in metrics]
    out = tmp_path / "v.json"
    assert main(["compare", str(results), str(results), *flags, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {c["verdict"] for c in result["comparisons"]} == {"unchanged"}
    assert {s["verdict"] for s in result["study_level"]} == {"unchanged"}
    diverged = [c for c in result["comparisons"] if c["configuration"] == "init1"]
    assert {c["test"] for c in diverged} == {
        "identical records in 3 seeds (no value on either side)"
    }
    history = ["history", str(results), str(results), *flags, "--json", str(out)]
    assert main([*history, "--out", str(tmp_path / "h.html")]) == 0
    assert {c["verdict"] for c in json.loads(out.read_text())["comparisons"]} == {"unchanged"}
    capsys.readouterr()


def test_a_metric_neither_side_records_is_compared_as_it_is(tmp_path):
    """Not identical, and no value on either side: nothing to test, nothing missing on one
    side; inconclusive, as the test column says."""
    values = np.full((2, 3), 0.9)
    a = write_runs(tmp_path / "a", runs_frame(values).assign(epochs_to_target=np.nan))
    other = runs_frame(values, seeds=[3, 4, 5]).assign(epochs_to_target=np.nan)
    outcome = compare(a, write_runs(tmp_path / "b", other), metrics=["epochs_to_target"])
    assert set(outcome.table["verdict"]) == {"inconclusive"} and not outcome.regressed
    assert set(outcome.table["test"]) == {"too few seeds to test (0 vs 0)"}


def test_no_overrides_reads_none_never_python_s_none(tmp_path, capsys):
    a = folder(tmp_path, "a")
    b = folder(tmp_path, "b", meta={"overrides": ["train.epochs=1"]})
    md = tmp_path / "c.md"
    assert main(["compare", str(a), str(b), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "overrides none -> train.epochs=1" in out and "overrides None" not in out
    assert "- overrides: none → train.epochs=1" in md.read_text()
    assert "overrides: None" not in md.read_text()
    assert "<td>none</td>" in (b / "compare.html").read_text()
    assert main(["history", str(a), str(b), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "changed: overrides none → train.epochs=1" in out and "overrides None" not in out
    assert "overrides: none → train.epochs=1" in md.read_text()
