"""The results store: whole records, resumable runs, concurrent runs, no pickle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from benchinit import load_results, load_study, run
from benchinit.cli import main
from benchinit.errors import BenchinitError
from benchinit.results.store import Store

# A slow initializer makes every stacked batch take ~0.3 s, so a run can be killed mid-way.
SLOW_PLUGIN = """
    import time
    import torch
    from benchinit import Initializer, hookimpl

    def slow_normal(weight, generator, activation, *, pause: float = 0.05):
        "N(0, 1/fan_in), slowly."
        time.sleep(pause)
        with torch.no_grad():
            weight.normal_(0.0, weight.shape[1] ** -0.5, generator=generator)

    @hookimpl
    def benchinit_initializers():
        return [Initializer("slow_normal", slow_normal)]
"""

SLOW_STUDY = """
    [study]
    name = "slow"
    kind = "signal"
    seeds = 2
    plugins = ["slow.py"]
    [data]
    name = "gaussian"
    samples = 100
    features = 10
    [model]
    depth = 2
    width = 8
    [grid]
    initializer = "slow_normal(pause=0.08)"
    activation = ["tanh", "relu", "sigmoid", "identity", "softsign", "elu"]
    "model.width" = [4, 8, 12]
"""
CELLS = 6 * 3 * 2


@pytest.fixture
def slow_study(write_study, write_plugin) -> Path:
    write_plugin(SLOW_PLUGIN, name="slow.py")
    return write_study(SLOW_STUDY)


def ctrl_c_as_at_a_terminal() -> None:
    """For a child that a Ctrl-C test signals: SIGINT at its default. A shell starts a
    background job (`.ci/run &`) with SIGINT ignored, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(study: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchinit",
            "run",
            str(study),
            "--out",
            str(out),
            "--quiet",
            "--no-report",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_at_a_terminal,
    )


def chunk_count(out: Path) -> int:
    records = out / "records"
    return (
        len([p for p in records.iterdir() if not p.name.startswith(".")]) if records.is_dir() else 0
    )


def wait_for_chunks(out: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while chunk_count(out) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run stored nothing in time"
        time.sleep(0.02)


def assert_each_cell_once(out: Path, cells: int) -> None:
    statuses = Store(out).statuses()
    assert statuses["cell"].is_unique, "a cell was recorded (computed) twice"
    assert len(statuses) == cells and set(statuses["status"]) == {"ok"}
    results = load_results(out)
    assert len(results.runs) == cells and results.runs["cell"].is_unique
    assert len(results.layers) == cells * 2 * 13  # 9 statistics, 2 Jacobian moments, 2 theory


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_finishes_only_the_rest(slow_study, tmp_path):
    out = tmp_path / "out"
    stored_before = []
    for target in (2, 5):  # kill twice, at different points
        proc = start(slow_study, out)
        wait_for_chunks(out, target, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stored_before.append(Store(out).statuses())
    finished = set(stored_before[-1]["cell"])
    assert 0 < len(finished) < CELLS
    assert main(["run", str(slow_study), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert_each_cell_once(out, CELLS)
    # nothing finished before the last kill was recomputed: its records are untouched
    after = Store(out).statuses().set_index("cell")
    assert (
        after.loc[sorted(finished), "chunk"].values
        == stored_before[-1].set_index("cell").loc[sorted(finished), "chunk"].values
    ).all()


def test_rerun_computes_nothing(slow_study, tmp_path, capsys):
    out = tmp_path / "out"
    first = run(
        load_study(slow_study, ["grid.activation=['tanh']"]), out, report=False, progress=False
    )
    assert first.computed == 6
    again = run(
        load_study(slow_study, ["grid.activation=['tanh']"]), out, report=False, progress=False
    )
    assert (again.computed, again.reused) == (0, 6)


@pytest.mark.slow
def test_two_runs_at_once_share_the_work(slow_study, tmp_path):
    out = tmp_path / "out"
    procs = [start(slow_study, out, "--jobs", "1") for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert_each_cell_once(out, CELLS)
    computed = [int(o[0].split(" computed")[0].rsplit(";", 1)[1].split()[0]) for o in outputs]
    assert sum(computed) == CELLS, outputs  # claims: no cell computed by both
    assert min(computed) > 0, outputs  # claimed a round of stacks at a time: both worked
    assert any("computed meanwhile by another run" in o[0] for o in outputs), outputs


def test_a_grid_with_values_added_adds_cells_beside_the_old(slow_study, tmp_path):
    out = tmp_path / "out"
    base = ['grid."model.width"=[4]']
    quiet = {"report": False, "progress": False}
    run(load_study(slow_study, [*base, "grid.activation=['tanh']"]), out, **quiet)
    more = run(load_study(slow_study, [*base, "grid.activation=['tanh', 'relu']"]), out, **quiet)
    assert (more.computed, more.reused) == (2, 2)
    assert set(load_results(out).runs["activation"]) == {"tanh", "relu"}


def test_a_study_that_would_hide_the_folder_s_results_is_refused(slow_study, tmp_path, capsys):
    """A rerun with another setting, or without some grid values or seeds, would leave the
    stored configurations out of every page: exit 2 naming --out, the folder untouched."""
    out = tmp_path / "out"
    base = ["grid.activation=['tanh', 'relu']", 'grid."model.width"=[4]']
    run(load_study(slow_study, base), out, report=False, progress=False)
    meta = (out / "meta.json").read_text()
    for change in (["model.depth=3"], ["grid.activation=['tanh']"]):
        with pytest.raises(BenchinitError) as info:
            run(load_study(slow_study, [*base, *change]), out, report=False, progress=False)
        assert "would no longer be shown" in str(info.value) and "out=" in str(info.value)
    sets = [arg for b in base for arg in ("--set", b)]
    command = ["run", str(slow_study), *sets, "--seeds", "1", "--out", str(out), "--no-report"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "without seed 1" in err and "--out" in err and "Traceback" not in err
    assert (out / "meta.json").read_text() == meta
    assert len(load_results(out).runs) == 4


def test_folder_holds_no_pickle_and_records_its_provenance(slow_study, tmp_path):
    out = tmp_path / "out"
    run(
        load_study(slow_study, ["grid.activation=['relu']"]),
        out,
        report=False,
        progress=False,
        command=["benchinit", "run", "x"],
    )
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert suffixes <= {".parquet", ".json", ".toml", ".lock"}, suffixes
    for path in out.rglob("*.parquet"):
        pd.read_parquet(path)  # plain Parquet, readable by any tool
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"] == ["benchinit", "run", "x"]
    assert {"benchinit", "torch", "python", "device", "numpy", "pandas"} <= set(meta["environment"])
    plugin = next(p for p in meta["plugins"] if p["origin"] == "file")
    assert plugin["source"].endswith("slow.py") and len(plugin["version"]) == 12
    study = tomllib.loads((out / "study.toml").read_text())
    assert study["study"]["name"] == "slow" and study["data"]["features"] == 10
    assert len(meta["cells"]) == 6


def test_half_written_chunk_is_ignored(slow_study, tmp_path):
    out = tmp_path / "out"
    run(load_study(slow_study, ["grid.activation=['relu']"]), out, report=False, progress=False)
    junk = out / "records" / ".tmp-deadbeef"
    junk.mkdir()
    (junk / "runs.parquet").write_bytes(b"PAR1 half a file")
    assert len(load_results(out).runs) == 6


def test_corrupt_record_is_a_clear_error(slow_study, tmp_path, capsys):
    out = tmp_path / "out"
    run(load_study(slow_study, ["grid.activation=['relu']"]), out, report=False, progress=False)
    victim = next((out / "records").glob("*/layers.parquet"))
    victim.write_bytes(b"garbage")
    assert main(["report", str(out)]) == 2
    assert "corrupt or unreadable" in capsys.readouterr().err


def test_cuda_on_a_cpu_machine_is_bad_input(slow_study, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", str(slow_study), "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_whole_lines_elsewhere():
    import io

    from benchinit.execution.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(10, "seed", stream=stream)
        bar.advance(10)
        bar.close()
    assert (
        "10/10 cells" in tty.getvalue() and "cells/s" in tty.getvalue() and "ETA" in tty.getvalue()
    )
    assert "\r" in tty.getvalue()
    assert "\r" not in pipe.getvalue()  # a log gets whole lines, never a redrawn bar
    assert pipe.getvalue().startswith("seed: 10/10 cells (100%), ")


def test_environment_has_no_secrets():
    from benchinit.execution.run_meta import environment

    env = environment("cpu")
    assert not any(k.lower() in {"user", "home", "path"} for k in env)
    assert os.environ.get("HOME", "/nonexistent-home") not in json.dumps(env)


@pytest.mark.slow
def test_ctrl_c_exits_130_and_keeps_finished_cells(slow_study, tmp_path):
    out = tmp_path / "out"
    proc = start(slow_study, out)
    wait_for_chunks(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; finished cells are saved" in err and "Traceback" not in err
    kept = Store(out).statuses()
    assert len(kept) >= 2 and kept["cell"].is_unique
    assert main(["run", str(slow_study), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert_each_cell_once(out, CELLS)


def test_a_cell_finished_while_a_run_waited_for_its_claim_is_not_computed_again(tmp_path):
    """Run B reads the finished cells, then run A stores cell X and lets go of it, then B
    claims X: B must look again after claiming, and not compute X a second time."""
    from benchinit.engine.execute import plan
    from benchinit.engine.recorder import Recorder
    from benchinit.execution.compute import Tally, compute
    from benchinit.execution.progress import Progress

    study = load_study("seed", ["grid.initializer=['zeros']", "grid.activation=['relu']"], seeds=1)
    (cell,) = study.cells()
    out = tmp_path / "out"
    a = Store(out, create=True)

    def a_finishes_x() -> None:
        with a.running():
            assert a.claim_all([cell.id]) == ([cell.id], [])
            recorder = Recorder("cpu")
            recorder.run(cell, "ok")
            a.write(recorder.frames(0.0))

    class LateStore(Store):
        def claim_all(self, cell_ids):
            ids = list(cell_ids)
            if not a.finished():
                a_finishes_x()  # between B's first look and its claim
            return super().claim_all(ids)

    class Pool:
        capacity = 1

        def __init__(self) -> None:
            self.batches: list = []

        def run(self, batches):
            self.batches.extend(batches)
            return iter(())

    b, pool = LateStore(out), Pool()

    def planner(cells):
        return plan(cells, study.registry, device="cpu")

    with b.running():
        tally = Tally()
        compute(b, pool, [cell], planner, Progress(1, "x", enabled=False), tally)
    assert cell.id in b.finished(), "A stored it"
    assert tally.computed == 0 and pool.batches == [], "B looked again after claiming"
    assert tally.others == 1, "and counts it as computed by another run"
