"""Plugins and processes off the happy path: a plugin that exits, kills its worker or hangs;
SIGINT, SIGTERM and SIGKILL to a run with worker processes; data that is not data.

Each test states the guarantee it backs (README, "Guarantees").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchinit import load_study, run
from benchinit.cli import main

PLUGIN = '''
import os, signal, sys, time
from pathlib import Path
import torch
from benchinit import Activation, Data, Dataset, Initializer, hookimpl

MARK = Path(__file__).with_name("marks")


def _mark(what):
    MARK.mkdir(exist_ok=True)
    (MARK / f"{what}-{os.getpid()}").write_text(str(os.getpid()))


def misbehave(weight, generator, activation, *, how: str = "none", fan_out: int = 0):
    """N(0, 1/fan_in), or misbehaves as asked (only on weights with fan_out rows, if set)."""
    if fan_out and weight.shape[0] != fan_out:
        how = "none"
    if how == "sys_exit":
        sys.exit(3)
    if how == "os_exit":
        os._exit(4)
    if how == "sleep":
        _mark("sleep")
        time.sleep(600)
    if how == "hang":  # no Python signal handler can run: like a hang in C code
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGINT})
        _mark("hang")
        time.sleep(600)
    with torch.no_grad():
        weight.normal_(0.0, weight.shape[1] ** -0.5, generator=generator)


def killer(x):
    """Kills its own process (a segfault, the out-of-memory killer...)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def bad_data(*, problem: str = "nan"):
    """Data that is not data."""
    x = torch.randn(40, 4)
    y = torch.randint(0, 2, (40,))
    if problem == "nan":
        x[3, 1] = float("nan")
        return Data(x[:30], y[:30], x[30:], y[30:], "classification", 2)
    return Data(x, y, x[:0], y[:0], "classification", 2)


@hookimpl
def benchinit_initializers():
    return [Initializer("misbehave", misbehave)]


@hookimpl
def benchinit_activations():
    return [Activation("killer", killer)]


@hookimpl
def benchinit_datasets():
    return [Dataset("bad_data", bad_data)]
'''

STUDY = """
[study]
name = "rough"
kind = "signal"
seeds = 2
plugins = ["rough.py"]
[data]
{data}
[model]
depth = 2
width = 6
[grid]
initializer = {initializers}
activation = {activations}
"""


@pytest.fixture
def rough(tmp_path):
    """Write the misbehaving plugin and return a function making a study file."""
    (tmp_path / "rough.py").write_text(textwrap.dedent(PLUGIN))

    def study(
        initializers: str,
        activations: str = '["tanh"]',
        *,
        data: str = 'name = "gaussian"\nsamples = 40\nfeatures = 6',
        extra: str = "",
    ) -> Path:
        path = tmp_path / "study.toml"
        text = STUDY.format(initializers=initializers, activations=activations, data=data)
        path.write_text(text + extra)
        return path

    return study


def statuses(outcome):
    runs = outcome.results.runs
    return {
        (row["initializer"], row["activation"]): (row["status"], row["error"])
        for _, row in runs.iterrows()
    }


def test_sys_exit_in_a_plugin_fails_only_its_cells(rough, tmp_path):
    path = rough('["misbehave", "misbehave(how=\'sys_exit\')"]')
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False)
    found = statuses(outcome)
    assert found[("misbehave", "tanh")][0] == "ok", "its stack-mate is not lost"
    status, error = found[("misbehave(how='sys_exit')", "tanh")]
    assert status == "failed" and "SystemExit: 3" in error


def test_os_exit_in_a_plugin_is_refused_in_process(rough, tmp_path):
    path = rough('["misbehave", "misbehave(how=\'os_exit\')"]')
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False)
    found = statuses(outcome)
    assert found[("misbehave", "tanh")][0] == "ok"
    status, error = found[("misbehave(how='os_exit')", "tanh")]
    assert status == "failed" and "os._exit(4)" in error
    assert os._exit.__module__ == "posix", "the guard is lifted after the batch"


@pytest.mark.slow
def test_a_dead_worker_fails_its_batch_and_is_replaced(rough, tmp_path):
    path = rough('["misbehave"]', '["tanh", "killer", "relu"]')
    outcome = run(
        load_study(path),
        tmp_path / "out",
        executor="process",
        jobs=1,
        report=False,
        progress=False,
    )
    found = statuses(outcome)
    assert found[("misbehave", "tanh")][0] == "ok"
    assert found[("misbehave", "relu")][0] == "ok", "the grid went on in a fresh worker"
    status, error = found[("misbehave", "killer")]
    assert status == "failed" and "WorkerDied" in error and "signal 9" in error


def test_a_cell_past_its_time_limit_fails_and_the_grid_goes_on(rough, tmp_path):
    path = rough("[\"misbehave(how='sleep', fan_out=7)\"]", extra='"model.width" = [6, 7]\n')
    outcome = run(load_study(path), tmp_path / "out", timeout=1.0, report=False, progress=False)
    runs = outcome.results.runs.set_index("model.width")
    assert (runs.loc[6, "status"] == "ok").all(), "the other batch is unaffected"
    assert (runs.loc[7, "status"] == "failed").all()
    assert runs.loc[7, "error"].str.contains("time limit of 1 s").all()


@pytest.mark.slow
def test_a_worker_hung_past_its_limit_is_stopped_and_the_grid_goes_on(rough, tmp_path):
    path = rough("[\"misbehave(how='hang', fan_out=7)\"]", extra='"model.width" = [6, 7]\n')
    outcome = run(
        load_study(path),
        tmp_path / "out",
        executor="process",
        jobs=1,
        timeout=0.5,
        report=False,
        progress=False,
    )
    runs = outcome.results.runs.set_index("model.width")
    assert (runs.loc[6, "status"] == "ok").all(), "a fresh worker ran the rest"
    assert (runs.loc[7, "status"] == "failed").all()
    assert runs.loc[7, "error"].str.contains("worker was stopped").all()


def _start(args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "benchinit", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_for_marks(folder: Path, count: int, proc, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marks = list((folder / "marks").glob("*")) if (folder / "marks").is_dir() else []
        if len(marks) >= count:
            return [int(m.read_text()) for m in marks]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the workers never started")


def _gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_a_run_stops_hung_workers_and_exits_130(rough, tmp_path, sig):
    path = rough("[\"misbehave(how='sleep')\"]", '["tanh", "relu"]')
    proc = _start(["run", str(path), "--jobs", "2", "--out", "out", "--quiet"], tmp_path)
    workers = _wait_for_marks(tmp_path, 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert "finished cells are saved" in err
    assert all(_gone(pid) for pid in workers), "no worker is left behind"


@pytest.mark.slow
def test_workers_exit_when_their_parent_is_killed(rough, tmp_path):
    path = rough("[\"misbehave(how='sleep')\"]", '["tanh", "relu"]')
    proc = _start(["run", str(path), "--jobs", "2", "--out", "out", "--quiet"], tmp_path)
    workers = _wait_for_marks(tmp_path, 2, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert all(_gone(pid) for pid in workers), "orphaned workers"


@pytest.mark.parametrize("problem", ["nan", "empty"])
def test_a_dataset_that_is_not_data_fails_its_cells_as_a_data_error(rough, tmp_path, problem):
    path = rough('["misbehave"]', data=f'name = "bad_data"\nproblem = "{problem}"')
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False)
    for status, error in statuses(outcome).values():
        assert status == "failed", "a data error, not a diverged network"
        assert ("NaN" in error) if problem == "nan" else ("empty" in error)


def test_cli_exit_status_is_1_when_cells_failed(rough, tmp_path, capsys):
    path = rough("[\"misbehave(how='sys_exit')\"]")
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 1
