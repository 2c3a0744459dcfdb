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
from benchinit.results.store import Store

PLUGIN = '''
import os, signal, sys, time
from pathlib import Path
import torch
from benchinit import Activation, Data, Dataset, Initializer, hookimpl

MARK = Path(__file__).with_name("marks")


def _mark(what):
    MARK.mkdir(exist_ok=True)
    (MARK / f"{what}-{os.getpid()}").write_text(str(os.getpid()))


class Boom(BaseException):
    pass


def misbehave(weight, generator, activation, *, how: str = "none", fan_out: int = 0):
    """N(0, 1/fan_in), or misbehaves as asked (only on weights with fan_out rows, if set)."""
    if fan_out and weight.shape[0] != fan_out:
        how = "none"
    if how == "sys_exit":
        sys.exit(3)
    if how == "os_exit":
        os._exit(4)
    if how == "base_exception":
        raise Boom("a BaseException of the plugin's own")
    if how == "generator_exit":
        raise GeneratorExit
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


@pytest.mark.parametrize(
    ("how", "name"), [("base_exception", "Boom"), ("generator_exit", "GeneratorExit")]
)
def test_any_base_exception_in_a_plugin_fails_only_its_cells(how, name, rough, tmp_path):
    path = rough(f'["misbehave", "misbehave(how=\'{how}\')"]')
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False, jobs=1)
    found = statuses(outcome)
    assert found[("misbehave", "tanh")][0] == "ok"
    status, error = found[(f"misbehave(how='{how}')", "tanh")]
    assert status == "failed" and error.startswith(name)


@pytest.mark.parametrize(
    "body", ["import sys\nsys.exit(0)\n", "class Boom(BaseException):\n    pass\nraise Boom()\n"]
)
def test_a_plugin_file_that_exits_or_raises_anything_at_import_is_exit_2(body, tmp_path, capsys):
    (tmp_path / "bad.py").write_text(body)
    assert (
        main(["run", "seed", "--plugin", str(tmp_path / "bad.py"), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.py" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_report_section_that_exits_is_a_failed_section(tmp_path):
    from benchinit.plugins.registry import Registry
    from benchinit.report.plugin_sections import call_plugins

    (tmp_path / "sec.py").write_text(
        "import sys\nfrom benchinit import hookimpl\n\n"
        "@hookimpl\ndef benchinit_report_sections(results):\n    sys.exit(11)\n"
    )
    registry = Registry(files=[tmp_path / "sec.py"], autoload=False)
    sections = call_plugins(registry, None)
    assert len(sections) == 1 and "section failed" in sections[0]["title"]
    assert "SystemExit: 11" in sections[0]["text"]


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


def ctrl_c_as_at_a_terminal() -> None:
    """For a child that a Ctrl-C test signals: SIGINT at its default. A shell starts a
    background job (`.ci/run &`) with SIGINT ignored, and the child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        preexec_fn=ctrl_c_as_at_a_terminal,
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


FORKING = '''
import multiprocessing
import torch
from benchinit import Data, Dataset, hookimpl


def _square(v):
    return v * v


def forking(*, samples: int = 40):
    """Data made with a forked worker pool: its workers end with os._exit."""
    with multiprocessing.get_context("fork").Pool(2) as pool:
        values = pool.map(_square, range(samples))
    x = torch.tensor(values, dtype=torch.float32).unsqueeze(1).repeat(1, 4) / samples**2
    y = torch.arange(samples) % 2
    return Data(x[:30], y[:30], x[30:], y[30:], "classification", 2)


@hookimpl
def benchinit_datasets():
    return [Dataset("forking", forking)]
'''


def test_a_process_forked_by_plugin_code_exits_for_real(rough, tmp_path):
    (tmp_path / "forking.py").write_text(FORKING)
    path = rough('["misbehave"]', '["tanh", "relu"]', data='name = "forking"')
    text = path.read_text().replace(
        'plugins = ["rough.py"]', 'plugins = ["rough.py", "forking.py"]'
    )
    path.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchinit",
            "run",
            str(path),
            "--out",
            "out",
            "--quiet",
            "--no-report",
            "--jobs",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("results:") == 1, "one run, not a copy per pool worker"
    assert "Traceback" not in proc.stderr
    statuses = Store(tmp_path / "out").statuses()
    assert len(statuses) == 4 and set(statuses["status"]) == {"ok"}


def test_the_time_limit_guard_never_outlives_its_block():
    from benchinit.plugins.guard import TimeLimit, plugin_code

    real_exit, handler = os._exit, signal.getsignal(signal.SIGALRM)
    for _ in range(300):  # bodies that end right around the limit
        try:
            with plugin_code(0.0005):
                start = time.perf_counter()
                while time.perf_counter() - start < 0.0005:
                    pass
        except TimeLimit:
            pass
        assert os._exit is real_exit and signal.getsignal(signal.SIGALRM) is handler
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("limit", ["inf", "-1", "1e300"])
def test_a_time_limit_that_is_not_a_finite_number_of_seconds_is_bad_input(limit, tmp_path):
    status = main(["run", "seed", "--seeds", "1", "--timeout", limit, "--out", str(tmp_path / "o")])
    assert status == 2 and not (tmp_path / "o").exists()


def test_a_dataset_that_exits_while_the_run_plans_fails_its_cells(rough, tmp_path):
    (tmp_path / "exiting.py").write_text(
        "import sys\nfrom benchinit import Dataset, hookimpl\n"
        "def exiting(*, code: int = 3):\n    '''Exits.'''\n    sys.exit(code)\n"
        "@hookimpl\ndef benchinit_datasets():\n    return [Dataset('exiting', exiting)]\n"
    )
    path = rough('["misbehave"]', data='name = "exiting"')
    path.write_text(
        path.read_text().replace('plugins = ["rough.py"]', 'plugins = ["rough.py", "exiting.py"]')
    )
    outcome = run(load_study(path), tmp_path / "out", report=False, progress=False)
    for status, error in statuses(outcome).values():
        assert status == "failed" and "SystemExit: 3" in error


def test_a_spawned_worker_gets_its_time_limit_from_when_it_starts(rough, tmp_path):
    """Spawning a worker takes seconds of imports; the limit counts from the batch's start."""
    path = rough('["misbehave"]', '["tanh"]')
    outcome = run(
        load_study(path),
        tmp_path / "out",
        executor="process",
        jobs=1,
        timeout=0.5,
        report=False,
        progress=False,
    )
    assert {s for s, _ in statuses(outcome).values()} == {"ok"}


def test_a_worker_that_died_idle_is_replaced(rough, tmp_path):
    from benchinit.engine.execute import plan
    from benchinit.execution.executors import ProcessExecutor

    study = load_study(rough('["misbehave"]', '["tanh", "relu"]'))
    batches = plan(study.cells(), study.registry, device="cpu")
    pool = ProcessExecutor(1, 1, start="fork")
    try:
        assert len(list(pool.run(batches))) == 2
        (worker,) = pool.workers
        worker.process.kill()  # the out-of-memory killer picks an idle worker
        worker.process.join(5)
        done = list(pool.run(batches))
        assert len(done) == 2 and all(set(r["runs"]["status"]) == {"ok"} for _, r in done)
    finally:
        pool.close()


@pytest.mark.slow
def test_a_hang_with_one_job_is_still_stopped_at_the_time_limit(rough, tmp_path):
    path = rough("[\"misbehave(how='hang', fan_out=7)\"]", extra='"model.width" = [6, 7]\n')
    outcome = run(
        load_study(path), tmp_path / "out", jobs=1, timeout=0.5, report=False, progress=False
    )
    runs = outcome.results.runs.set_index("model.width")
    assert (runs.loc[6, "status"] == "ok").all()
    assert runs.loc[7, "error"].str.contains("worker was stopped").all()


def test_deterministic_algorithms_are_the_callers_again_after_a_run(rough, tmp_path):
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    run(
        load_study(rough('["misbehave"]')),
        tmp_path / "out",
        jobs=1,
        deterministic=True,
        report=False,
        progress=False,
    )
    assert torch.are_deterministic_algorithms_enabled() == before
