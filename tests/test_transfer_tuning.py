"""``[tune] transfer``: tune small, train wide. Every configuration is tuned; the final
runs use the source configuration's choice, and the report sets it beside the direct one."""

from __future__ import annotations

import pandas as pd
import pytest

from benchinit import load_results, load_study, run
from benchinit.errors import StudyError
from benchinit.execution.stages import transferred
from benchinit.report.templating import environment
from benchinit.report.tuning import tuning_report
from benchinit.study.tuning import Tuned, TuneSpec

STUDY = """
    [study]
    name = "transfer"
    seeds = 2
    [data]
    name = "blobs"
    samples = 200
    [model]
    depth = 1
    [train]
    epochs = 2
    batch_size = 32
    [grid]
    initializer = "kaiming_normal"
    activation = "relu"
    optimizer = "adam"
    "model.width" = [8, 32]
    [tune]
    "optimizer.lr" = [0.001, 0.01, 0.1]
    seeds = 1
    transfer = TRANSFER
"""


def _study(write_study, transfer: str):
    return write_study(STUDY.replace("TRANSFER", transfer))


@pytest.mark.parametrize(
    ("transfer", "said"),
    [
        ('{"model.widht" = 8}', "Did you mean 'model.width'?"),
        ('{"model.width" = 16}', "16 is not one of grid.model.width's values (8, 32)"),
        ('{"activation" = "relu"}', "grid axis 'activation' has one value"),
        ("8", 'e.g. transfer = {"model.width" = 64}'),
    ],
)
def test_a_transfer_that_names_no_source_is_refused(write_study, transfer, said):
    with pytest.raises(StudyError) as error:
        load_study(_study(write_study, transfer))
    assert error.value.key == "tune.transfer" and said in str(error.value)


def test_a_nested_toml_table_names_the_same_axis(write_study):
    study = load_study(_study(write_study, "{model.width = 8}"))
    assert study.tune is not None and study.tune.transfer == ("model.width", 8)


def test_each_configuration_takes_its_sources_choice_and_keeps_its_own():
    lr = Tuned("optimizer", "lr", values=(0.01, 0.1))
    spec = TuneSpec((lr,), "val_loss", "min", (10,), ("w", "act"), transfer=("w", 8))
    chosen = pd.DataFrame(
        {
            "w": [8, 32, 8, 32],
            "act": ["relu", "relu", "tanh", "tanh"],
            "tuned.optimizer.lr": [0.1, 0.01, float("nan"), 0.1],
            "chosen": [True, True, False, True],
            "score": [0.2, 0.1, float("nan"), 0.3],
        }
    )
    out = transferred(chosen, spec, 8)
    assert out["tuned.optimizer.lr"].iloc[:2].tolist() == [0.1, 0.1]  # relu: width 8's
    assert out["direct.optimizer.lr"].iloc[:2].tolist() == [0.1, 0.01]  # kept apart
    assert out["chosen"].tolist() == [True, True, False, False], "tanh's source chose none"
    assert list(out["w"]) == [8, 32, 8, 32] and out["direct_score"].iloc[1] == 0.1


def test_final_runs_use_the_transferred_choice_and_the_report_sets_both(write_study, tmp_path):
    out = tmp_path / "out"
    run(load_study(_study(write_study, '{"model.width" = 8}')), out, report=False, progress=False)
    results = load_results(out)
    small = results.runs[results.runs["model.width"] == 8]["tuned.optimizer.lr"]
    wide = results.runs[results.runs["model.width"] == 32]["tuned.optimizer.lr"]
    assert small.nunique() == 1 and wide.tolist() == [small.iloc[0]] * len(wide)
    section, _ = tuning_report(results)
    assert section is not None and section["transfer"] == "model.width = 8"
    used = {tuple(row["config"]): row["used"] for row in section["rows"]}
    assert used[("8",)] == used[("32",)] == [f"{small.iloc[0]:g}"]
    direct = {tuple(row["config"]): row["values"] for row in section["rows"]}
    assert direct[("8",)] == used[("8",)], "at the source, direct and transferred agree"
    html = environment().get_template("_tuning.html").render(tuning=section, figures={})
    assert 'id="tuning-transfer"' in html and "<code>model.width = 8</code>" in html
    assert html.count("used optimizer.lr (transferred)") == 1
