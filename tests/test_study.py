"""Study files: loading, overrides, grid expansion, cell ids, and errors before anything runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib

import pytest

from benchinit import load_study
from benchinit.cli import main
from benchinit.study.cells import group_key
from benchinit.study.resolved import resolved_toml
from benchinit.study.sources import builtin_studies

SMALL = """
    [study]
    name = "small"
    kind = "train"
    seeds = 2
    [data]
    name = "blobs"
    samples = 60
    [model]
    depth = 1
    width = 8
    [train]
    epochs = 1
    [grid]
    initializer = ["xavier_normal", "kaiming_normal"]
    activation = "relu"
    optimizer = ["sgd(lr=0.1)", {name = "adam", lr = 0.01}]
    "model.depth" = [1, 2]
"""


def test_grid_expands_into_cells_with_stable_ids(write_study):
    study = load_study(write_study(SMALL))
    cells = study.cells()
    assert (
        len(cells) == 2 * 1 * 2 * 2 * 2
    )  # initializers x activation x optimizers x depths x seeds
    assert study.axes["loss"] == ["cross_entropy"]  # the task's default loss
    assert len({c.id for c in cells}) == len(cells)
    assert [c.id for c in load_study(write_study(SMALL)).cells()] == [c.id for c in cells]
    labels = {tuple(c.labels.values()) for c in cells}
    assert ("kaiming_normal", "relu", "adam(lr=0.01)", 2, "cross_entropy") in labels
    depth2 = [c for c in cells if c.labels["model.depth"] == 2]
    assert all(c.config["model"]["depth"] == 2 for c in depth2)


def test_changing_anything_changes_the_ids(write_study):
    base = {c.id for c in load_study(write_study(SMALL)).cells()}
    for override in ("model.width=9", "train.epochs=2", "data.samples=61", "model.bias=false"):
        changed = {c.id for c in load_study(write_study(SMALL), [override]).cells()}
        assert not changed & base, override


def test_stacking_groups_differ_only_in_initializer_and_seed(write_study):
    cells = load_study(write_study(SMALL)).cells()
    groups = {group_key(c) for c in cells}
    assert len(groups) == 2 * 2  # optimizers x depths
    for key in groups:
        members = [c for c in cells if group_key(c) == key]
        assert {(c.labels["initializer"], c.seed) for c in members} == {
            (i, s) for i in ("xavier_normal", "kaiming_normal") for s in (0, 1)
        }


def test_overrides_and_seeds(write_study):
    study = load_study(
        write_study(SMALL),
        ['grid.activation=["tanh", "relu"]', "data.name=spirals", "study.title=Hello"],
        seeds=3,
    )
    assert study.axes["activation"] == ["tanh", "relu"]
    assert study.data["name"] == "spirals" and study.title == "Hello"
    assert study.seeds == (0, 1, 2)


def test_a_setting_that_is_a_grid_axis_cannot_be_set_alone(write_study):
    from benchinit.errors import StudyError

    with pytest.raises(StudyError, match=r"model.depth \(set on the command line\).*grid axis"):
        load_study(write_study(SMALL), ["model.depth=3"])
    study = load_study(write_study(SMALL), ["grid.model.depth=[3]", "model.width=4"])
    assert study.axes["model.depth"] == [3]


def test_one_axis_written_twice_is_refused(write_study):
    from benchinit.errors import StudyError

    text = SMALL.replace('"model.depth" = [1, 2]', '"model.depth" = [1, 2]\n    model.depth = [3]')
    with pytest.raises(StudyError, match=r"grid.model.depth.*is given twice"):
        load_study(write_study(text))


def test_builtin_study_by_name_and_the_seed_study():
    assert "seed" in builtin_studies()
    study = load_study("seed")
    assert study.kind == "signal" and study.seeds == tuple(range(10))
    assert study.axes["activation"] == ["sigmoid", "relu", "tanh"]
    assert len(study.cells()) == 4 * 3 * 10
    model = study.cells()[0].config["model"]
    assert (model["depth"], model["width"], model["bias"]) == (5, 100, False)


def test_resolved_study_round_trips(write_study):
    study = load_study(write_study(SMALL))
    text = resolved_toml(study)
    again = write_study(text, name="resolved.toml")
    assert tomllib.loads(text)["model"]["bias_init"] == "zeros"
    assert [c.id for c in load_study(again).cells()] == [c.id for c in study.cells()]


def test_bias_init_grid_values_are_bound_and_labelled_like_initializers(write_study):
    values = '["zeros", {name = "normal", std = 0.5}, "normal(std=2)", "normal(0, 1)"]'
    study = load_study(write_study(SMALL), [f"grid.model.bias_init={values}"])
    cells = study.cells()
    labels = {c.labels["model.bias_init"] for c in cells}
    assert labels == {"zeros", "normal(std=0.5)", "normal(std=2)", "normal"}
    assert len({c.id for c in cells}) == len(cells)
    params = {c.labels["model.bias_init"]: c.config["model"]["bias_init"]["params"] for c in cells}
    assert params["normal"] == {"mean": 0.0, "std": 1.0}  # "normal(0, 1)": the defaults
    assert params["normal(std=0.5)"] == {"mean": 0.0, "std": 0.5}


@pytest.mark.parametrize("code", [0x7F, 0x00, 0x1B, 0x08, 0x2028, 0xFEFF])
def test_control_characters_round_trip_through_the_resolved_study(write_study, code):
    escaped = f"\\u{code:04x}"  # TOML's own escape: the study file itself is plain ASCII
    study = load_study(write_study(SMALL.replace('name = "small"', f'title = "a{escaped}b"')))
    assert study.title == f"a{chr(code)}b"
    resolved = resolved_toml(study)
    assert tomllib.loads(resolved)["study"]["title"] == study.title
    again = load_study(write_study(resolved, name="resolved.toml"))
    assert again.title == study.title
    assert [c.id for c in again.cells()] == [c.id for c in study.cells()]


def test_the_validation_share_is_a_grid_axis_like_any_data_setting(write_study):
    path = write_study(SMALL)
    study = load_study(path, ["grid.data.validation=[0.1, 0.3]", "grid.model.depth=[1]"])
    cells = study.cells()
    assert len(cells) == 2 * 2 * 2 * 2  # initializers x optimizers x shares x seeds
    shares = {c.labels["data.validation"]: c.config["data"]["validation"] for c in cells}
    assert shares == {0.1: 0.1, 0.3: 0.3}
    assert "validation" not in cells[0].config["data"]["params"], "never the plugin's"
    plain = {c.id for c in load_study(path, ["grid.model.depth=[1]"]).cells()}
    assert {c.id for c in cells if c.labels["data.validation"] == 0.1} == plain
    again = load_study(write_study(resolved_toml(study), name="resolved.toml"))
    assert [c.id for c in again.cells()] == [c.id for c in cells]


# Each malformed study: (TOML text or None for a missing file, extra CLI args, key in message)
MALFORMED = {
    "syntax error": ("[study\nname = 1", [], "is not valid TOML"),
    "unknown section": (
        "[modle]\ndepth = 2\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'modle'",
    ),
    "unknown key": (
        "[model]\ndepht = 2\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'model.depht'",
    ),
    "wrong type": (
        "[model]\ndepth = 'five'\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'model.depth'",
    ),
    "unknown initializer": (
        "[grid]\ninitializer='xavier_norml'\nactivation='relu'",
        [],
        "key 'grid.initializer'",
    ),
    "unknown activation": (
        "[grid]\ninitializer='zeros'\nactivation=['relu', 'tahn']",
        [],
        "key 'grid.activation'",
    ),
    "bad plugin parameter": (
        "[grid]\ninitializer='normal(sdt=1)'\nactivation='relu'",
        [],
        "key 'grid.initializer'",
    ),
    "bad parameter value": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\noptimizer='sgd(lr=\"fast\")'",
        [],
        "key 'grid.optimizer'",
    ),
    "parameter given twice": (
        "[grid]\ninitializer='normal(std=1, std=2)'\nactivation='relu'",
        [],
        "'std' given twice",
    ),
    "schedule step_size below 1": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\n"
        "optimizer=\"sgd(schedule='step', step_size=0)\"",
        [],
        "key 'grid.optimizer'",
    ),
    "integer tune range rounds outside": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\noptimizer=\"sgd(schedule='step')\"\n"
        "[tune]\n'optimizer.step_size'={range=[0.1, 0.4], trials=3}",
        [],
        "key 'tune.optimizer.step_size'",
    ),
    "batch norm with batches of one sample": (
        "[model]\nnorm='batch'\n[train]\nbatch_size=1\n[grid]\ninitializer='zeros'\n"
        "activation='relu'",
        [],
        "key 'train.batch_size'",
    ),
    "batch norm with a grid of batch sizes that has 1": (
        "[model]\nnorm='batch'\n[grid]\ninitializer='zeros'\nactivation='relu'\n"
        "'train.batch_size'=[1, 8]",
        [],
        "key 'grid.train.batch_size'",
    ),
    "batch norm on the grid with batches of one sample": (
        "[train]\nbatch_size=1\n[grid]\ninitializer='zeros'\nactivation='relu'\n"
        "'model.norm'=['none', 'batch']",
        [],
        "key 'grid.model.norm'",
    ),
    "batch norm with a probe batch of one sample": (
        "[grid]\ninitializer='zeros'\nactivation='relu'",
        ["--set", "model.norm='batch'", "--set", "train.probe_samples=1"],
        "key 'train.probe_samples (set on the command line)'",
    ),
    "integer tune range of one value": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\noptimizer=\"sgd(schedule='step')\"\n"
        "[tune]\n'optimizer.step_size'={range=[0.5, 1.4], trials=3}",
        [],
        "key 'tune.optimizer.step_size': range = [0.5, 1.4] with trials = 3 tries only 1",
    ),
    "validation axis in a signal study": (
        "[study]\nkind='signal'\n[grid]\ninitializer='zeros'\nactivation='relu'\n"
        "'data.validation'=[0.1, 0.2]",
        [],
        "key 'grid.data.validation': a signal study does not train",
    ),
    "validation axis past 1": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\n'data.validation'=[0.1, 1.5]",
        [],
        "key 'grid.data.validation': must be a share of the training samples in [0, 1)",
    ),
    "validation axis of 0 in a tuned study": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\n'data.validation'=[0, 0.2]\n"
        "[tune]\n'optimizer.lr' = [0.1]",
        [],
        "key 'grid.data.validation': is 0, but [tune] selects on the validation split",
    ),
    "bias_init twice in the grid": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\n"
        "'model.bias_init'=['zeros', 'normal(std=1)', 'normal']",
        [],
        "key 'grid.model.bias_init': lists the same configuration twice: 'normal'",
    ),
    "unknown bias_init in the grid": (
        "[grid]\ninitializer='zeros'\nactivation='relu'",
        ["--set", 'grid.model.bias_init=["zeros", "nromal"]'],
        "key 'grid.model.bias_init (set on the command line)': unknown initializer 'nromal'",
    ),
    "empty axis": ("[grid]\ninitializer=[]\nactivation='relu'", [], "key 'grid.initializer'"),
    "missing axis": ("[grid]\nactivation='relu'", [], "key 'grid.initializer'"),
    "unknown dataset": (
        "[data]\nname='mnsit'\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'data.name'",
    ),
    "bad dataset parameter": (
        "[data]\nname='digits'\nsampels=3\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'data'",
    ),
    "loss does not fit data": (
        "[data]\nname='linear'\n[grid]\ninitializer='zeros'\n"
        "activation='relu'\nloss='cross_entropy'",
        [],
        "key 'grid.loss'",
    ),
    "train key in signal": (
        "[study]\nkind='signal'\n[grid]\ninitializer='zeros'\nactivation='relu'\noptimizer='sgd'",
        [],
        "key 'grid.optimizer'",
    ),
    "bad kind": (
        "[study]\nkind='sgnal'\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'study.kind'",
    ),
    "unknown grid axis": (
        "[grid]\ninitializer='zeros'\nactivation='relu'\noptimiser='sgd'",
        [],
        "key 'grid.optimiser'",
    ),
    "duplicate configuration": (
        "[grid]\ninitializer=['normal', 'normal(std=1)']\nactivation='relu'",
        [],
        "key 'grid.initializer'",
    ),
    "bad seeds": (
        "[study]\nseeds=0\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'study.seeds'",
    ),
    "bad metric": (
        "[study]\nmetric='accuracy'\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'study.metric'",
    ),
    "missing plugin file": (
        "[study]\nplugins=['nope.py']\n[grid]\ninitializer='zeros'\nactivation='relu'",
        [],
        "key 'study.plugins'",
    ),
    "bad override": (
        "[grid]\ninitializer='zeros'\nactivation='relu'",
        ["--set", "model.width=-3"],
        "key 'model.width (set on the command line)'",
    ),
    "missing file": (None, [], "no such file"),
    "a signal study tuned": (
        "[study]\nkind='signal'\n[grid]\ninitializer='zeros'\nactivation='relu'\n"
        "[tune]\n'optimizer.lr' = [0.1]",
        [],
        "key 'tune': a signal study does not train",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_study_exits_2_naming_file_and_key(case, tmp_path, capsys):
    text, extra, key_text = MALFORMED[case]
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    status = main(
        ["run", str(path), "--no-report", "--quiet", "--out", str(tmp_path / "o"), *extra]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("benchinit: error: study ")
    assert str(path) in err and key_text in err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, "one paragraph"
    assert not (tmp_path / "o").exists(), "nothing runs before validation passes"


def test_did_you_mean_and_valid_choices_in_messages(write_study, capsys):
    path = write_study("[grid]\ninitializer='xavier_norml'\nactivation='relu'")
    assert main(["run", str(path), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'xavier_normal'?" in err and "Valid choices:" in err and "zeros" in err


def test_a_folder_a_builtin_s_name_and_a_byte_order_mark(tmp_path, capsys):
    folder = tmp_path / "study.toml"
    folder.mkdir()
    assert main(["run", str(folder), "--no-report"]) == 2
    assert "is a folder; name a study's .toml file" in capsys.readouterr().err
    assert main(["run", "seed.toml", "--no-report"]) == 2
    assert "the built-in study is named 'seed', without .toml" in capsys.readouterr().err
    marked = tmp_path / "marked.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + textwrap.dedent(SMALL).encode())
    assert load_study(marked).name == "small"


def test_unknown_builtin_study_name(capsys):
    assert main(["run", "sed", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "study sed: no study file or built-in study" in err and "Did you mean 'seed'?" in err


def test_no_traceback_in_a_real_process(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[grid]\ninitializer = 'xavier_norml'\nactivation = 'relu'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "benchinit", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "grid.initializer" in proc.stderr
