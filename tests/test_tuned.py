"""Tuned studies end to end: selection never reads the test split, tuning beats a poor
default, an interrupted tuned run resumes to the same choices, compare reports a change of
chosen value, bad [tune] input is exit 2."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchinit import compare, load_results, load_study, run
from benchinit.cli import main
from benchinit.results.store import Store

STUDY = """
[study]
name = "tuned"
kind = "train"
seeds = 2
{plugins}
[data]
name = "{data}"
[model]
depth = 1
width = 24
[train]
epochs = 2
batch_size = 64
[grid]
initializer = ["kaiming_normal", "xavier_normal"]
activation = "relu"
optimizer = "sgd"
[tune]
"optimizer.lr" = {lrs}
seeds = 2
"""

DIGITS = '''
import torch
from benchinit import Dataset, hookimpl
from benchinit.builtin.datasets import digits


def my_digits(*, test_fraction: float = 0.2, seed: int = 0):
    """The digits, with the test split's labels {how}."""
    data = digits(test_fraction=test_fraction, seed=seed)
    if {shuffle}:
        order = torch.randperm(len(data.y_test), generator=torch.Generator().manual_seed(1))
        data = type(data)(data.x_train, data.y_train, data.x_test, data.y_test[order],
                          data.task, data.outputs)
    return data


@hookimpl
def benchinit_datasets():
    return [Dataset("my_digits", my_digits)]
'''


def study_file(folder: Path, lrs: str = "[0.003, 0.03, 0.3]", data: str = "digits") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plugins = 'plugins = ["data.py"]' if data == "my_digits" else ""
    path = folder / "study.toml"
    path.write_text(STUDY.format(plugins=plugins, data=data, lrs=lrs))
    return path


def chosen(results) -> dict:
    runs = results.runs
    return runs.groupby("initializer")["tuned.optimizer.lr"].first().to_dict()


def test_selection_never_reads_the_test_split(tmp_path):
    picks = []
    for shuffle in (False, True):
        folder = tmp_path / f"shuffle-{shuffle}"
        folder.mkdir()
        plugin = DIGITS.format(how="shuffled" if shuffle else "as given", shuffle=shuffle)
        (folder / "data.py").write_text(textwrap.dedent(plugin))
        path = study_file(folder, data="my_digits")
        outcome = run(load_study(path), folder / "out", report=False, progress=False)
        picks.append((chosen(outcome.results), outcome.results.runs["test_accuracy"].mean()))
    (clean, clean_test), (shuffled, shuffled_test) = picks
    assert clean == shuffled, "the same validation split chooses the same values"
    assert clean_test > 0.5 and shuffled_test < 0.3, "while the test split did change"


def test_tuning_beats_a_poor_default_learning_rate(tmp_path):
    tuned_path = study_file(tmp_path / "tuned", lrs="[0.001, 0.1, 0.5]")
    tuned = run(load_study(tuned_path), tmp_path / "tuned" / "out", report=False, progress=False)
    plain = tuned_path.read_text().split("[tune]")[0]
    plain_path = tmp_path / "plain.toml"
    plain_path.write_text(plain.replace('optimizer = "sgd"', 'optimizer = "sgd(lr=0.001)"'))
    default = run(load_study(plain_path), tmp_path / "plain", report=False, progress=False)
    assert set(chosen(tuned.results).values()) <= {0.1, 0.5}
    gain = tuned.results.runs["test_accuracy"].mean() - default.results.runs["test_accuracy"].mean()
    assert gain > 0.2, f"tuning gained only {gain:.3f}"


def test_a_configuration_no_trial_finished_fails_and_the_run_goes_on(tmp_path, capsys):
    path = study_file(tmp_path, lrs="[1e30, 1e35]")  # every trial diverges
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--set", "train.epochs=1"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    results = load_results(out)
    assert len(results.runs) == 4 and (results.runs["status"] == "failed").all()
    assert results.runs["error"].str.contains("no value was chosen").all()
    assert (results.tuning["status"] == "diverged").all()
    assert (out / "index.html").is_file()


def _start(path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchinit",
            "run",
            str(path),
            "--out",
            str(out),
            "--quiet",
            "--no-report",
            "--jobs",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("chunks", [1, 3, 6], ids=["early", "tuning", "final"])
def test_a_killed_tuned_run_resumes_to_the_same_choices(tmp_path, chunks):
    path = study_file(tmp_path, lrs="[0.01, 0.1, 0.3]")
    reference = run(load_study(path), tmp_path / "reference", report=False, progress=False)
    out = tmp_path / "out"
    proc = _start(path, out)
    deadline = time.monotonic() + 120
    while (
        not (out / "records").is_dir()
        or len([p for p in (out / "records").iterdir() if not p.name.startswith(".")]) < chunks
    ):
        if proc.poll() is not None:
            break  # it finished before the kill: the rerun then computes nothing
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert main(["run", str(path), "--out", str(out), "--quiet", "--no-report"]) == 0
    statuses = Store(out).statuses()
    assert statuses["cell"].is_unique, "a cell was computed twice"
    results = load_results(out)
    expected = len(reference.results.runs) + len(reference.results.tuning)
    assert len(results.runs) + len(results.tuning) == expected == len(statuses)
    assert chosen(results) == chosen(reference.results)


def test_compare_reports_a_change_of_chosen_value(tmp_path):
    a = run(
        load_study(study_file(tmp_path / "a", lrs="[0.001, 0.3]")),
        tmp_path / "a" / "out",
        report=False,
        progress=False,
    )
    b = run(
        load_study(study_file(tmp_path / "b", lrs="[0.001, 0.01]")),
        tmp_path / "b" / "out",
        report=False,
        progress=False,
    )
    assert chosen(a.results) != chosen(b.results)
    outcome = compare(a.out, b.out, out=tmp_path / "c.html")
    assert len(outcome.table) == 2, "configurations pair by their grid values"
    notes = " ".join(outcome.table["note"])
    assert "optimizer.lr changed" in notes and "0.3" in notes and "0.01" in notes


BAD_TUNE = {
    "unknown parameter": ('"optimizer.lrate" = [0.1]', "tune.optimizer.lrate", "lr"),
    "parameter the plugin lacks": ('"activation.slope" = [0.1]', "tune.activation.slope", "relu"),
    "non-numeric range": (
        '"optimizer.lr" = {log_range = ["a", 1], trials = 3}',
        "tune.optimizer.lr",
        "number",
    ),
    "empty list": ('"optimizer.lr" = []', "tune.optimizer.lr", "empty"),
    "unknown select": ('"optimizer.lr" = [0.1]\nselect = "val_acc"', "tune.select", "val_accuracy"),
    "test metric": (
        '"optimizer.lr" = [0.1]\nselect = "test_accuracy"',
        "tune.select",
        "val_accuracy",
    ),
    "a billion trials, refused before drawing one": (
        '"optimizer.lr" = {log_range = [1e-4, 1], trials = 1000000000}',
        "tune.optimizer.lr",
        "trials = 1 to 10,000 values",
    ),
    "trials times lists past the cell limit, refused before drawing": (
        '"optimizer.lr" = {log_range = [1e-4, 1], trials = 10000}\n'
        '"optimizer.momentum" = [0.0, 0.5, 0.9, 0.95, 0.99]',
        "grid",
        "more than the limit of 100,000",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TUNE))
def test_bad_tune_input_exits_2_naming_file_and_key(case, tmp_path, capsys):
    table, key, hint = BAD_TUNE[case]
    path = study_file(tmp_path)
    path.write_text(path.read_text().split("[tune]")[0] + "[tune]\n" + table + "\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and key in err and hint in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_tuned_study_refuses_seeds_where_tuning_seeds_live(tmp_path, capsys):
    path = study_file(tmp_path)
    args = ["run", str(path), "--set", "study.seeds=[1000000]", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "must be below 1,000,000" in capsys.readouterr().err


PICKY = '''
import torch
from benchinit import Optimizer, hookimpl


def picky(params, *, lr: float = 0.01):
    """SGD that refuses a learning rate above 0.1 (raises: a failed cell, not a divergence)."""
    if lr > 0.1:
        raise ValueError(f"lr {lr} is too large for picky")
    return torch.optim.SGD(params, lr=lr)


@hookimpl
def benchinit_optimizers():
    return [Optimizer("picky", picky)]
'''


def test_failed_trials_are_counted_failed_and_a_rerun_retries_them(tmp_path, capsys):
    """A failed tuning cell follows the rule of every failed cell: the summary counts it
    failed (not among the ok ones), the run exits 1, and a rerun retries it."""
    (tmp_path / "picky.py").write_text(PICKY)
    path = tmp_path / "study.toml"
    text = STUDY.format(plugins='plugins = ["picky.py"]', data="blobs", lrs="[0.01, 0.5]")
    path.write_text(text.replace('optimizer = "sgd"', 'optimizer = "picky"'))
    args = ["run", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-report", "--jobs", "1"]
    args += ["--set", "train.epochs=1", "--set", "tune.seeds=1", "--set", "study.seeds=1"]
    assert main(args) == 1
    first = capsys.readouterr().out
    assert "2 cells (2 ok, 0 diverged, 0 failed)" in first
    assert "and 4 tuning cells (2 ok, 0 diverged, 2 failed)" in first
    assert "6 computed" in first
    assert main(args) == 1
    again = capsys.readouterr().out
    assert "2 computed" in again and "4 already stored" in again, "the failed trials, again"
    assert load_results(tmp_path / "o").runs["tuned.optimizer.lr"].eq(0.01).all()


def test_the_report_reads_the_tune_spec_the_run_stored(tmp_path):
    """meta.json keeps the resolved [tune] table: the report's spec needs no study.toml to
    parse again (a folder copied without it keeps its tuning seeds and selection)."""
    from benchinit.report.tuning import tune_spec

    path = study_file(tmp_path, lrs="{log_range = [0.01, 0.3], trials = 2}")
    out = tmp_path / "out"
    study = load_study(path, ["train.epochs=1"])
    run(study, out, report=False, progress=False)
    stored = load_results(out).study["tune"]
    assert stored["seeds"] == 2 and stored["optimizer.lr"]["log_range"] == [0.01, 0.3]
    (out / "study.toml").unlink()
    spec = tune_spec(load_results(out))
    assert spec is not None and len(spec.seeds) == 2
    assert spec.select == study.tune.select
