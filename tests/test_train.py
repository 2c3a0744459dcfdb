"""Training many models as one: exactness, divergence as a result, failures, executors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.cli_options import FLAGS
from benchinit.engine.execute import plan, run_batch
from benchinit.engine.train import steps_end, train_stack
from benchinit.study.cells import group_key

BASE = """
    [study]
    name = "exact"
    kind = "train"
    seeds = [0, 1]
    [data]
    name = "blobs"
    samples = 150
    features = 5
    classes = 3
    [model]
    depth = 2
    width = 12
    dtype = "{dtype}"
    [train]
    epochs = {epochs}
    batch_size = 32
    [grid]
    initializer = ["kaiming_normal", "xavier_uniform", "orthogonal"]
    activation = "tanh"
    optimizer = [{optimizers}]
"""
OPTIMIZERS = [
    '"sgd(lr=0.1, momentum=0.9)"',
    '"adam(lr=0.01)"',
    "\"sgd(lr=0.3, schedule='step', step_size=1, gamma=0.5)\"",
]


def study_of(write_study, dtype="float64", epochs=3, optimizers=OPTIMIZERS):
    return load_study(
        write_study(BASE.format(dtype=dtype, epochs=epochs, optimizers=", ".join(optimizers)))
    )


def weights_by_cell(cells, registry, groups):
    """Train ``cells`` split into ``groups`` (lists of indexes); each cell's weights."""
    out = {}
    for group in groups:
        members = [cells[i] for i in group]
        trained = train_stack(members, registry, torch.device("cpu"))
        for g, cell in enumerate(trained.members):
            out[cell.id] = [w.detach()[g].clone() for w in trained.model.weights]
    return out


@pytest.mark.parametrize("optimizer", range(3), ids=["sgd-momentum", "adam", "sgd-step"])
def test_stacked_training_is_exactly_training_alone(write_study, optimizer):
    study = study_of(write_study, optimizers=[OPTIMIZERS[optimizer]])
    cells = study.cells()
    assert len({group_key(c) for c in cells}) == 1  # one stack of 6
    stacked = weights_by_cell(cells, study.registry, [range(6)])
    alone = weights_by_cell(cells, study.registry, [[i] for i in range(6)])
    pairs = weights_by_cell(cells, study.registry, [[0, 3], [5, 1, 4], [2]])
    for cell in cells:
        for a, b, c in zip(stacked[cell.id], alone[cell.id], pairs[cell.id], strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)
            assert torch.allclose(a, c, rtol=0, atol=1e-12)
    moved = weights_by_cell(cells[:1], study.registry, [[0]])
    assert not torch.equal(moved[cells[0].id][0], torch.zeros_like(moved[cells[0].id][0]))


def tables(study, max_members):
    batches = plan(study.cells(), study.registry, device="cpu", threads=1, max_members=max_members)
    parts = [run_batch(b) for b in batches]
    frames = {}
    for table, keys in (
        ("curves", ["cell", "epoch", "split", "metric"]),
        ("runs", ["cell"]),
        ("layers", ["cell", "phase", "layer", "metric"]),
    ):
        frames[table] = (
            pd.concat([p[table] for p in parts]).sort_values(keys).reset_index(drop=True)
        )
    return frames


def test_curves_and_results_do_not_depend_on_grouping(write_study):
    study = study_of(write_study, epochs=2)
    grouped, alone = tables(study, 64), tables(study, 1)
    pd.testing.assert_frame_equal(grouped["curves"], alone["curves"], rtol=1e-10)
    pd.testing.assert_frame_equal(grouped["layers"], alone["layers"], rtol=1e-9)
    cols = ["cell", "status", "train_loss", "test_loss", "test_accuracy"]
    pd.testing.assert_frame_equal(grouped["runs"][cols], alone["runs"][cols], rtol=1e-10)


def test_float32_agrees_over_a_few_dozen_steps(write_study):
    study = study_of(write_study, dtype="float32", epochs=5, optimizers=[OPTIMIZERS[0]])
    cells = study.cells()
    stacked = weights_by_cell(cells, study.registry, [range(6)])
    alone = weights_by_cell(cells, study.registry, [[i] for i in range(6)])
    for cell in cells:  # 25 steps: batched matmuls round differently, but not by much
        for a, b in zip(stacked[cell.id], alone[cell.id], strict=True):
            assert torch.allclose(a, b, atol=1e-4)


BATCH_NORM = """
    [study]
    kind = "train"
    seeds = 2
    [data]
    name = "blobs"
    samples = {samples}
    test_samples = 8
    validation = 0
    [model]
    depth = 2
    width = 6
    norm = "batch"
    dtype = "float64"
    [train]
    epochs = 2
    batch_size = 3
    [grid]
    initializer = ["kaiming_normal", "xavier_normal"]
    activation = "tanh"
    optimizer = "sgd(lr=0.1, momentum=0.9)"
"""


def test_batch_norm_drops_a_last_batch_of_one_sample_and_stacks_exactly(write_study):
    # 31 training samples in batches of 3: ten batches and one sample over, which batch
    # norm cannot normalize; it is dropped (each member's permutation picks which)
    assert (steps_end(31, 3, "batch"), steps_end(31, 3, "layer"), steps_end(30, 3, "batch")) == (
        30,
        31,
        30,
    )
    study = load_study(write_study(BATCH_NORM.format(samples=31)))
    cells = study.cells()
    stacked = weights_by_cell(cells, study.registry, [range(4)])
    alone = weights_by_cell(cells, study.registry, [[i] for i in range(4)])
    for cell in cells:
        for a, b in zip(stacked[cell.id], alone[cell.id], strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-12)
    runs = run_batch(plan(cells, study.registry, device="cpu", threads=1)[0])["runs"]
    assert (runs["status"] == "ok").all(), runs["error"].tolist()
    assert runs["train_loss"].notna().all()


def test_batch_norm_on_one_training_sample_says_so(write_study):
    study = load_study(write_study(BATCH_NORM.format(samples=1)))
    runs = run_batch(plan(study.cells(), study.registry, device="cpu", threads=1)[0])["runs"]
    assert (runs["status"] == "failed").all()
    assert runs["error"].str.contains("needs 2 or more training samples").all()
    assert runs["error"].str.contains("dataset 'blobs' has 1 in its training split").all()


DIVERGE = """
    [study]
    name = "diverge"
    kind = "train"
    seeds = 1
    [data]
    name = "blobs"
    samples = 200
    [model]
    depth = 3
    width = 32
    dtype = "float64"
    [train]
    epochs = 4
    batch_size = 50
    [grid]
    initializer = ["xavier_normal", "normal(std=10)"]
    activation = "relu"
    optimizer = "sgd(lr=0.5)"
"""


def test_a_diverging_member_is_a_result_and_harms_no_one(write_study):
    study = load_study(write_study(DIVERGE))
    cells = study.cells()
    stacked = train_stack(cells, study.registry, torch.device("cpu"))
    alone = train_stack(cells[:1], study.registry, torch.device("cpu"))
    for a, b in zip(stacked.model.weights, alone.model.weights, strict=True):
        assert torch.allclose(a[0], b[0], rtol=0, atol=1e-12), "the healthy one trains as if alone"
    for w in stacked.model.weights:
        assert torch.isfinite(w[1]).all(), "the diverged member is frozen where it stopped"
    records = run_batch(plan(cells, study.registry, device="cpu", threads=1)[0])
    runs = records["runs"].set_index("initializer")
    assert runs.loc["xavier_normal", "status"] == "ok"
    assert runs.loc["normal(std=10)", "status"] == "diverged"
    epoch = int(runs.loc["normal(std=10)", "diverged_epoch"])
    assert 1 <= epoch <= 4 and "non-finite" in runs.loc["normal(std=10)", "error"]  # mid-way
    curves = records["curves"]
    bad = curves[curves["cell"] == runs.loc["normal(std=10)", "cell"]]
    assert bad.empty or bad["epoch"].max() < epoch, "its curves end before it diverged"
    good = curves[curves["cell"] == runs.loc["xavier_normal", "cell"]]
    assert good["epoch"].max() == 4


FAILING = """
    import torch
    from benchinit import Initializer, Loss, Optimizer, hookimpl

    def exploding_optimizer(params, *, lr: float = 0.1):
        "Raises when built."
        raise RuntimeError("optimizer plugin is broken")

    def wrong_shape(pred, target):
        "Returns one number instead of one per sample."
        return pred.mean()

    def picky(weight, generator, activation):
        "Fails on wide layers."
        if weight.shape[0] > 10:
            raise ValueError("too wide for me")
        weight.normal_(0, 0.1, generator=generator)

    @hookimpl
    def benchinit_optimizers():
        return [Optimizer("exploding", exploding_optimizer)]

    @hookimpl
    def benchinit_losses():
        return [Loss("wrong_shape", wrong_shape)]

    @hookimpl
    def benchinit_initializers():
        return [Initializer("picky", picky)]
"""


def test_failing_plugins_fail_their_cells_and_the_grid_goes_on(
    write_study, write_plugin, tmp_path, capsys
):
    write_plugin(FAILING, name="failing.py")
    path = write_study("""
        [study]
        name = "failing"
        kind = "train"
        seeds = 1
        plugins = ["failing.py"]
        [data]
        name = "blobs"
        samples = 100
        [model]
        depth = 1
        width = 16
        [train]
        epochs = 1
        [grid]
        initializer = ["xavier_normal", "picky"]
        activation = "relu"
        optimizer = ["adam", "exploding"]
        loss = ["cross_entropy", "wrong_shape"]
    """)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet", "--no-report"]) == 1
    runs = load_results(tmp_path / "out").runs.set_index(["initializer", "optimizer", "loss"])
    assert runs.loc[("xavier_normal", "adam", "cross_entropy"), "status"] == "ok"
    assert (
        "RuntimeError: optimizer plugin is broken"
        in runs.loc[("xavier_normal", "exploding", "cross_entropy"), "error"]
    )
    assert "returned shape ()" in runs.loc[("xavier_normal", "adam", "wrong_shape"), "error"]
    picky = runs.loc[("picky", "adam", "cross_entropy")]
    assert picky["status"] == "failed" and "too wide for me" in picky["error"]
    assert "failed.py" not in picky["error"] and "failing.py" in picky["error"]  # where it raised
    assert "1 ok" in capsys.readouterr().out


FLAKY = """
    import os
    from benchinit import Initializer, hookimpl

    def flaky(weight, generator, activation):
        "Fails while the file named by FLAKY_FLAG exists (a transient failure)."
        if os.path.exists(os.environ["FLAKY_FLAG"]):
            raise OSError("resource busy")
        weight.normal_(0, 0.1, generator=generator)

    @hookimpl
    def benchinit_initializers():
        return [Initializer("flaky", flaky)]
"""


def test_failed_cells_are_retried_on_rerun(write_study, write_plugin, tmp_path, monkeypatch):
    write_plugin(FLAKY, name="flaky.py")
    flag = tmp_path / "busy"
    flag.touch()
    monkeypatch.setenv("FLAKY_FLAG", str(flag))
    path = write_study(
        DIVERGE.replace('["xavier_normal", "normal(std=10)"]', '["flaky", "zeros"]').replace(
            "seeds = 1", 'seeds = 1\nplugins = ["flaky.py"]'
        )
    )
    first = run(load_study(path), tmp_path / "o", report=False, progress=False)
    assert first.results.counts() == {"ok": 1, "diverged": 0, "failed": 1}
    flag.unlink()
    second = run(load_study(path), tmp_path / "o", report=False, progress=False)
    assert (second.computed, second.reused) == (1, 1), "only the failed cell runs again"
    assert second.results.counts() == {"ok": 2, "diverged": 0, "failed": 0}


def executor_tables(study, out, **kwargs):
    run(study, out, report=False, progress=False, **kwargs)
    results = load_results(out)
    return {
        t: getattr(results, t)
        .drop(columns=["seconds"], errors="ignore")
        .sort_values(
            [
                c
                for c in ("cell", "epoch", "split", "metric", "phase", "layer", "bin")
                if c in getattr(results, t)
            ]
        )
        .reset_index(drop=True)
        for t in ("runs", "curves", "layers", "histograms")
    }


@pytest.mark.slow
def test_process_and_dask_executors_give_identical_results(write_study, tmp_path):
    from distributed import LocalCluster

    study = study_of(write_study, dtype="float32", epochs=2, optimizers=OPTIMIZERS[:2])
    local = executor_tables(study, tmp_path / "local")
    process = executor_tables(study, tmp_path / "process", executor="process", jobs=2)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        dask = executor_tables(
            study, tmp_path / "dask", executor="dask", scheduler=cluster.scheduler_address
        )
    for table in local:
        pd.testing.assert_frame_equal(local[table], process[table], check_exact=True)
        pd.testing.assert_frame_equal(local[table], dask[table], check_exact=True)
    assert len(local["runs"]) == 12


def test_in_memory_plugins_need_the_local_executor(write_study, tmp_path):
    from benchinit.errors import BenchinitError
    from benchinit.plugins.registry import Registry

    registry = Registry(autoload=False, objects=[(object(), "in_memory")])
    study = load_study(
        write_study(BASE.format(dtype="float32", epochs=1, optimizers='"adam"')), registry=registry
    )
    with pytest.raises(BenchinitError, match=r"in-memory plugin 'in_memory'.*local executor") as e:
        run(study, tmp_path / "o", executor="process", jobs=2, report=False, progress=False)
    assert "executor='local'" in str(e.value)  # the library names its own option...
    assert "--executor local" in e.value.render(FLAGS)  # ...and the command line its flag
