"""The report's figure workers (benchinit.report.figure_workers): started during a run that
lasts, never for a short one, and drawing what this process would draw, in order."""

from __future__ import annotations

import signal
import time

from matplotlib.figure import Figure

from benchinit.report.figure_workers import COLD_MINIMUM, FigureWorkers
from benchinit.report.page import draw_all
from benchinit.report.section_figures import FigureJob


def _line(slope: float) -> Figure:
    fig = Figure(figsize=(1.5, 1.2), layout="constrained")
    fig.subplots().plot([0, 1], [0, slope])
    return fig


def _jobs(count: int) -> list[FigureJob]:
    return [FigureJob("results", f"slope {i}", f"f{i}", _line, (float(i),)) for i in range(count)]


def _ahead(workers: FigureWorkers, idle: int, until: str = "warm") -> None:
    """Start ``idle`` workers ahead and wait (30 s at most) until they are ``until``:
    "started" or "warm" (imported)."""
    workers.expect(idle=idle)
    deadline = time.monotonic() + 30
    while not getattr(workers, until) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_short_block_starts_no_workers_and_draws_in_process():
    jobs = _jobs(3)
    with FigureWorkers(2, ahead=60.0) as workers:
        images = draw_all(jobs, workers)
        assert not workers.started  # the timer was cancelled when the drawing began
    assert len(images) == 3 and len({i.src for i in images}) == 3


def test_workers_started_ahead_draw_the_same_figures_in_order():
    jobs = _jobs(3)  # fewer than would pay for starting workers cold
    assert len(jobs) < COLD_MINIMUM
    alone = draw_all(jobs, 1)
    with FigureWorkers(2, ahead=0.0) as workers:
        _ahead(workers, idle=2)
        assert workers.started and workers.warm
        drawn = draw_all(jobs, workers)
    assert [i.src for i in drawn] == [i.src for i in alone]
    assert not workers.started  # shut down with the block


def test_one_worker_is_this_process():
    with FigureWorkers(1, ahead=0.0) as workers:
        images = draw_all(_jobs(COLD_MINIMUM), workers)
        assert not workers.started
    assert len(images) == COLD_MINIMUM


def _dies_in_a_worker(i: int) -> int:
    """Every job kills the worker process that draws it (as the out-of-memory killer would)."""
    import multiprocessing
    import os

    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return 10 * i


def test_a_worker_that_dies_leaves_the_rest_to_this_process():
    with FigureWorkers(2, ahead=0.0) as workers:
        _ahead(workers, idle=2, until="started")
        assert workers.started
        assert list(workers.map(_dies_in_a_worker, list(range(6)))) == [0, 10, 20, 30, 40, 50]


def test_a_timer_that_fires_after_the_block_starts_nothing():
    workers = FigureWorkers(2, ahead=60.0)
    with workers:
        pass
    workers._start_quietly()  # as a timer that fired while the block was closing would
    assert not workers.started


def test_workers_still_importing_are_not_waited_for_a_few_figures():
    from concurrent.futures import Future

    class Importing:
        def submit(self, *args):
            raise AssertionError("a few figures waited for workers still importing")

    workers = FigureWorkers(2)
    workers._pool, workers._warm_ups = Importing(), [Future()]  # one worker not ready yet
    assert workers.started and not workers.warm
    assert len(draw_all(_jobs(2), workers)) == 2


def test_figure_workers_start_ahead_only_on_idle_cores():
    """Where the cells keep every core busy (one worker per core) none starts during the
    run; where they compute in the run's own process (one job, local, CUDA) the other
    cores take them."""
    from benchinit.execution.runner import _in_workers

    assert _in_workers("auto", 2, "cpu")
    assert not _in_workers("auto", 1, "cpu")
    assert not _in_workers("auto", 2, "cuda:0")
    assert not _in_workers("local", 2, "cpu")
    assert _in_workers("process", 1, "cpu")
    busy = FigureWorkers(4, ahead=60.0)
    with busy:
        busy.expect(idle=0)
        assert busy._timer is None, "no idle core: nothing starts ahead"
    idle = FigureWorkers(4, ahead=60.0)
    with idle:
        idle.expect(idle=15)
        assert idle._timer is not None and idle._timer.args == (3,), "this process is one"
    few = FigureWorkers(4, ahead=60.0)
    with few:
        few.expect(idle=1)
        assert few._timer is not None and few._timer.args == (1,)
    assert not (busy.started or idle.started or few.started)


def test_workers_started_ahead_are_some_of_the_pool():
    with FigureWorkers(4, ahead=0.0) as workers:
        _ahead(workers, idle=1)
        assert len(workers._warm_ups) == 1, "one idle core: one worker ahead"
        drawn = draw_all(_jobs(COLD_MINIMUM), workers)  # the others spawn as jobs queue
    assert len(drawn) == COLD_MINIMUM


def _drawn_where(i: int) -> tuple[int, int]:
    """(i, the drawing process), slowly enough that the work is shared."""
    import os

    time.sleep(0.15)
    return i, os.getpid()


def test_this_process_and_the_workers_share_the_jobs_in_order():
    """This process draws from the front while a warm worker takes jobs from the back, one
    at a time: both draw, and the results come in the jobs' order."""
    import os

    with FigureWorkers(2, ahead=0.0) as workers:
        _ahead(workers, idle=1)
        drawn = list(workers.map(_drawn_where, list(range(12))))
    assert [i for i, _ in drawn] == list(range(12))
    here = [i for i, pid in drawn if pid == os.getpid()]
    there = [i for i, pid in drawn if pid != os.getpid()]
    assert here and there, drawn
    assert here[0] == 0 and max(here) < min(there), "this process: the front; the worker: the back"


def test_a_command_starts_its_workers_while_it_imports():
    """``begin`` spawns workers at a command's start, before the process imports pandas (the
    ``benchinit`` command), and none in a process that has its imports behind it (this test)."""
    import subprocess
    import sys

    here = FigureWorkers(2)
    with here:
        here.begin()
        assert not here.started, "pandas is imported here: nothing to overlap"
    script = (
        "import sys\n"
        "import benchinit.cli  # the command's own imports leave pandas for later\n"
        "from benchinit.report.figure_workers import FigureWorkers\n"
        "if __name__ == '__main__':\n"
        "    with FigureWorkers(2) as workers:\n"
        "        workers.begin()\n"
        "        print(workers.started, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    cores = __import__("os").sched_getaffinity(0)
    assert out.stdout.split() == (["True", "False"] if len(cores) > 1 else ["False", "False"])


def test_an_error_does_not_wait_for_workers_still_importing():
    """Leaving the block on an error (a bad study, Ctrl-C) ends workers still importing at
    once instead of waiting for their imports."""
    workers = FigureWorkers(2)
    try:
        with workers:
            workers._start_quietly(1)
            processes = list(workers._pool._processes.values())
            assert processes and not workers.warm
            raise KeyError("a bad study")
    except KeyError:
        pass
    deadline = time.monotonic() + 5  # the pool's own thread may be the one that reaps them
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(p.exitcode == -signal.SIGTERM for p in processes), "terminated, not waited for"


def test_workers_a_map_spawned_live_on_for_the_next_one():
    """A worker spawned while jobs are handed out (from the feeder thread) outlives that
    thread: the next map still shares its jobs with the workers (the kernel's parent-death
    signal, bound to the spawning thread, would have killed it with the thread)."""
    import os

    with FigureWorkers(3, ahead=0.0) as workers:
        # one of two now; the other spawns when the map hands it a job
        _ahead(workers, idle=1)
        first = list(workers.map(_drawn_where, list(range(24))))
        time.sleep(0.5)  # the feeder thread has ended
        # whether the late one drew in the first map depends on how fast it imported (a
        # loaded CI machine: not at all); that it outlives the thread that spawned it does not
        processes = list(workers._pool._processes.values())
        assert len(processes) == 2 and all(p.is_alive() for p in processes), "both live on"
        second = list(workers.map(_drawn_where, list(range(12))))
    assert [i for i, _ in first] == list(range(24))
    assert [i for i, _ in second] == list(range(12))
    assert {pid for _, pid in second} - {os.getpid()}, "the workers still draw"


def test_a_job_the_pool_cancelled_is_drawn_here():
    """Workers shut down while a map hands out jobs (their futures cancelled): this process
    draws those jobs instead of waiting for them forever."""
    from concurrent.futures import Future

    from benchinit.report.figure_workers import _Shared

    class Cancelling:
        def submit(self, fn, *args):
            future: Future = Future()
            future.cancel()
            return future

    assert list(_Shared(Cancelling(), 2, lambda i: 10 * i, list(range(5))).results()) == [
        0,
        10,
        20,
        30,
        40,
    ]
