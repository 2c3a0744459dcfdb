"""Precision as a study setting, and every core by default: checked keys, distinct cells,
bf16 that keeps its conclusions, and jobs=auto that changes nothing but the speed."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from benchinit import compare, load_results, load_study, run
from benchinit.cli import main
from benchinit.errors import BenchinitWarning
from benchinit.results.store import Store

SIGNAL = ["grid.activation=['tanh', 'relu']", "data.samples=200"]


@pytest.mark.parametrize(
    ("value", "words"),
    [('"bf32"', ["model.precision", "'float32', 'float64', 'bf16', 'tf32'"]), ("16", ["must be"])],
)
def test_a_bad_precision_is_exit_2_naming_the_key_and_choices(value, words, tmp_path, capsys):
    args = ["run", "seed", "--set", f"model.precision={value}", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_tf32_needs_cuda(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["run", "seed", "--set", 'model.precision="tf32"', "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_precision_is_part_of_the_cell_id_and_float32_keeps_old_ids():
    default = {c.id for c in load_study("seed").cells()}
    float32 = {c.id for c in load_study("seed", ['model.precision="float32"']).cells()}
    bf16 = {c.id for c in load_study("seed", ['model.precision="bf16"']).cells()}
    assert float32 == default, "spelling out the default changes no cell"
    assert not bf16 & default
    both = load_study("seed", ['grid."model.precision"=["float32", "bf16"]'])
    assert len(both.cells()) == 2 * len(default) and set(both.axes) >= {"model.precision"}


def test_precision_and_dtype_must_agree():
    study = load_study("seed", ['model.precision="float64"'])
    assert study.cells()[0].config["model"]["dtype"] == "float64"
    with pytest.raises(Exception, match="contradicts"):
        load_study("seed", ['model.precision="bf16"', 'model.dtype="float64"'])


def test_bf16_signal_statistics_stay_float32_and_close(tmp_path):
    tables = {}
    for precision in ("float32", "bf16"):
        study = load_study("seed", [*SIGNAL, f'model.precision="{precision}"'], seeds=2)
        run(study, tmp_path / precision, report=False, progress=False)
        layers = load_results(tmp_path / precision).labelled("layers")
        std = layers[layers["metric"] == "act_std"]
        tables[precision] = std.groupby(["initializer", "activation", "layer"])["value"].mean()
    assert tables["bf16"].notna().all()
    ratio = (tables["bf16"] / tables["float32"]).dropna()
    assert ((ratio > 0.95) & (ratio < 1.05)).all(), ratio[(ratio <= 0.95) | (ratio >= 1.05)]


def test_a_device_without_fast_bfloat16_is_named_in_one_warning(tmp_path, monkeypatch):
    import benchinit.engine.stack

    monkeypatch.setattr(benchinit.engine.stack, "fast_bf16", lambda device: False)
    study = load_study("seed", [*SIGNAL, 'model.precision="bf16"'], seeds=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run(study, tmp_path / "o", report=False, progress=False)
    mine = [w for w in caught if issubclass(w.category, BenchinitWarning)]
    assert len(mine) == 1 and "cpu" in str(mine[0].message)
    assert set(outcome.results.runs["status"]) == {"ok"}, "and the run goes on"


@pytest.mark.slow
def test_bf16_keeps_the_conclusions_of_a_shrunken_mnist_mlp(tmp_path):
    """kaiming_normal + Adam on mnist_5k, 3 seeds, 3 epochs, in float32 and in bf16."""
    shrunk = [
        'grid.initializer=["kaiming_normal"]',
        'grid.activation=["relu"]',
        'grid.optimizer=["adam"]',
        "train.epochs=3",
    ]
    folders = {}
    for precision in ("float32", "bf16"):
        study = load_study("mnist-mlp", [*shrunk, f'model.precision="{precision}"'], seeds=3)
        folders[precision] = run(study, tmp_path / precision, report=False, progress=False).out
    accuracy = {p: load_results(f).runs["test_accuracy"].mean() for p, f in folders.items()}
    assert abs(accuracy["bf16"] - accuracy["float32"]) < 0.02, accuracy
    outcome = compare(folders["float32"], folders["bf16"], out=tmp_path / "c.html")
    assert set(outcome.table["verdict"]) <= {"unchanged", "inconclusive", "improved"}


def _tables(folder):
    tables = Store(folder).read()
    keys = {
        "runs": ["cell"],
        "curves": ["cell", "epoch", "split", "metric"],
        "layers": ["cell", "phase", "layer", "metric"],
        "histograms": ["cell", "phase", "layer", "bin"],
        "spectra": ["cell", "phase", "layer", "bin"],
    }
    return {
        t: tables[t]
        .drop(columns=["seconds"], errors="ignore")
        .sort_values(k)
        .reset_index(drop=True)
        for t, k in keys.items()
    }


@pytest.mark.parametrize("study_name", ["seed", "losses"])
def test_jobs_auto_gives_bit_identical_tables_to_jobs_1(study_name, tmp_path):
    overrides = SIGNAL if study_name == "seed" else ["train.epochs=1"]
    study = load_study(study_name, overrides, seeds=2)
    run(study, tmp_path / "one", jobs=1, report=False, progress=False)
    run(study, tmp_path / "auto", report=False, progress=False)
    one, auto = _tables(tmp_path / "one"), _tables(tmp_path / "auto")
    for table in one:
        pd.testing.assert_frame_equal(one[table], auto[table], check_exact=True, obj=table)


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        (['model.dtype="float64"'], "float64"),  # the older spelling
        (['model.precision="bf16"'], "bf16"),
        ([], "float32"),
    ],
)
def test_the_resolved_study_writes_one_precision_and_reads_back_the_same_cells(
    overrides, shown, tmp_path
):
    """study.toml and meta.json say `precision` as the README does, never `dtype`; the saved
    file, run again, gives the very cells (ids) the study had."""
    import json
    import tomllib

    from benchinit.study.resolved import resolved_toml

    study = load_study("seed", [*SIGNAL, *overrides], seeds=1)
    saved = tmp_path / "study.toml"
    saved.write_text(resolved_toml(study), encoding="utf-8")
    model = tomllib.loads(saved.read_text(encoding="utf-8"))["model"]
    assert model["precision"] == shown and "dtype" not in model
    assert [c.id for c in load_study(saved).cells()] == [c.id for c in study.cells()]
    run(study, out=tmp_path / "r", progress=False, report=False)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text(encoding="utf-8"))
    assert meta["study"]["settings"]["model"]["precision"] == shown
    assert "dtype" not in meta["study"]["settings"]["model"]


def test_compare_sees_no_difference_between_the_two_spellings_of_one_precision():
    """A folder from before one precision (model.dtype and precision None) against a new one
    (precision float32): the same settings, not a difference to mark."""
    from benchinit.gate.differences import _only_differences

    def meta(model):
        return {"study": {"settings": {"model": model}}, "plugins": [], "overrides": []}

    old = _only_differences(meta({"dtype": "float32", "precision": None, "width": 8}))
    new = _only_differences(meta({"precision": "float32", "width": 8}))
    assert old == new
