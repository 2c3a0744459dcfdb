"""Worker processes that draw a report's figures beside the process that asks for them,
some started before there is anything to draw.

The asking process draws from the front of the figure list while each worker takes one
figure at a time from the back (:class:`_Shared`): it has everything imported already,
where a spawned worker costs about 1.3 s before it draws anything (Python, pandas,
matplotlib and seaborn imports; more on a busy machine). Workers are therefore started
where their imports cost nothing:

- at a command's start (:meth:`FigureWorkers.begin`: ``benchinit run`` and ``benchinit
  report``), on the cores the command leaves idle while it imports torch, pandas and
  matplotlib on one (measured on the seed study: the drawing starts 0.4 s after the last
  cell, where it waited 1.4 s for workers spawned then; its cells were not slowed);
- from Python (:func:`benchinit.run`, its imports done), during a run, on the cores its cells
  leave idle (:meth:`FigureWorkers.expect`, told once the cells are planned): a GPU run
  computes in its main process and leaves the other cores idle. Where the cells keep every
  core busy (the CPU default: one worker per core) none is started ahead: measured on the
  seed study on 2 cores, workers importing during the run slowed its cells by as much as they
  saved the report (7.5 s against 7.3 s end to end). They start only once the run has lasted
  ``WARM_AFTER`` seconds, so a shorter run (a test's, a small study's) pays nothing for them.

A report of fewer than ``COLD_MINIMUM`` figures is never made to wait for workers still
importing, and leaving the block on an error (or with workers that never got warm) ends them
instead of waiting for their imports.

Workers ignore Ctrl-C (the parent handles it and shuts them down, as the run's cell workers
do), end with their parent, and are spawned, never forked: a process that has started
torch's thread pool can hang in a forked child. They are spawned only where that is safe
(:mod:`benchinit.report.spawning`).
"""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from benchinit.execution.processes import die_with_parent, usable_cores
from benchinit.report import spawning

# Fewer figures than this are drawn in the calling process when the workers would have to be
# started for them (starting costs more than drawing them); warm workers draw any number.
COLD_MINIMUM = 8
MAX_FIGURE_WORKERS = 4  # drawing processes, this one included: more would only import
WARM_AFTER = 1.0  # seconds of a run after which its figure workers start (module docstring)


def drawing_processes(jobs: int | str) -> int:
    """How many processes draw a report's figures for ``--jobs`` (auto: one per core), this
    one included: at most ``MAX_FIGURE_WORKERS``."""
    count = usable_cores() if jobs == "auto" else jobs if isinstance(jobs, int) else 1
    return max(1, min(count, MAX_FIGURE_WORKERS))


def _warm(parent: int) -> None:
    """A worker's start: ignore Ctrl-C, end with ``parent`` (killed, it never sends the
    word), import everything a figure needs, and freeze what the imports made, which the
    garbage collector then never walks again, while drawing or at the worker's exit (0.6 s
    there; benchinit.cli.command)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent, at_once=False)  # started by any of our threads
    importlib.import_module("benchinit.report.page")
    gc.freeze()


class FigureWorkers:
    """Up to ``count`` spawned figure workers for the length of a ``with`` block (none when
    ``count`` is 1 or spawning is unsafe: then :meth:`map` draws in this process).

    ``ahead``: seconds after which :meth:`expect` starts the workers idle cores can take, so
    that they import while the caller does something else (0: at once); the others start on
    the first :meth:`map` that pays for them.
    """

    def __init__(self, count: int, *, ahead: float | None = None) -> None:
        self.count = max(1, count)
        self.ahead = ahead
        self._pool: ProcessPoolExecutor | None = None
        self._warm_ups: list[Future[Any]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> FigureWorkers:
        return self

    def expect(self, idle: int) -> None:
        """Start, ``ahead`` seconds from now, as many workers (of ``count``) as there are
        ``idle`` cores while the caller computes; none when there are none."""
        ahead = min(max(0, idle), self.count - 1)
        if self.ahead is None or self.count < 2 or ahead < 1 or self._timer is not None:
            return
        self._timer = threading.Timer(self.ahead, self._start_quietly, (ahead,))
        self._timer.daemon = True
        self._timer.start()

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True  # a timer that fired meanwhile starts nothing
            pool, self._pool = self._pool, None
        if pool is None:
            return
        if exc[0] is None and self.warm:
            pool.shutdown(wait=True)
            return
        # an error, Ctrl-C, or workers still importing that drew nothing: not waited for
        # (the pool forgets its processes on shutdown: they are taken first)
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)

    def begin(self) -> None:
        """Start workers now, on the cores this process leaves idle while it imports, when
        it has its imports ahead of it: a command's start. ``benchinit run`` and ``benchinit
        report`` spend their first 1-2 s importing torch, pandas and matplotlib on one core;
        a worker spawned then imports on another and is ready before the first figure
        (measured on the seed study: the drawing began 1.4 s later when the worker was
        spawned at the end of the run). A process that has imported pandas already (a test,
        a notebook calling :func:`benchinit.run`) starts none here."""
        idle = min(self.count - 1, usable_cores() - 1)
        if idle > 0 and "pandas" not in sys.modules:
            self._start_quietly(idle)

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _start_quietly(self, ahead: int | None = None) -> Executor | None:
        """:meth:`_start`, where a failure to spawn (no processes left, no semaphores)
        leaves the drawing to this process, without a traceback (the timer's thread)."""
        try:
            return self._start(ahead)
        except Exception:
            with self._lock:
                self.count = 1
            return None

    @property
    def warm(self) -> bool:
        """Whether every worker started so far has finished importing."""
        return bool(self._warm_ups) and all(f.done() for f in self._warm_ups)

    def _start(self, ahead: int | None = None) -> Executor | None:
        """The pool of ``count`` workers, ``ahead`` of them (all: None) spawned now; the
        others are spawned when jobs queue for them."""
        with self._lock:
            ready = self._pool is None and not self._closed and self.count > 1
            if ready and spawning.spawn_safe():
                context = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(
                    self.count - 1, mp_context=context, initializer=_warm, initargs=(os.getpid(),)
                )
                # a worker is spawned per submit with none idle; each imports first
                now = self.count - 1 if ahead is None else ahead
                self._warm_ups = [pool.submit(int) for _ in range(now)]
                self._pool = pool
            return self._pool

    def map(self, draw: Callable[[Any], Any], jobs: list[Any]) -> Iterator[Any]:
        """``draw(job)`` for each job, results in order: this process draws from the front of
        ``jobs`` while each worker draws one job at a time from the back (:class:`_Shared`),
        when the workers are warm or there are enough jobs to wait for them; else this
        process draws them all. A worker that dies (killed, out of memory) leaves the rest,
        its own job included, to this process."""
        if self._timer is not None:
            self._timer.cancel()  # not started by now: decided below
        with self._lock:  # a start under way is waited for
            pool: Executor | None = self._pool
        if len(jobs) < COLD_MINIMUM and not self.warm:
            pool = None  # workers still importing: a few figures are drawn sooner here
        elif pool is None and len(jobs) >= COLD_MINIMUM:
            pool = self._start_quietly()
        if pool is None:
            yield from map(draw, jobs)
        else:
            yield from _Shared(pool, self.count - 1, draw, jobs).results()


class _Shared:
    """Jobs drawn by this process from the front and by ``workers`` pool workers from the
    back, one job each at a time, so that no job waits in a worker's queue while this process
    could draw it, and a worker still importing holds up one job at most (this process draws
    on meanwhile; it waits for a worker's job only when nothing else is left). A feeder thread
    hands the pool its jobs as each lands; this thread never touches the pool."""

    def __init__(
        self, pool: Executor, workers: int, draw: Callable[[Any], Any], jobs: list[Any]
    ) -> None:
        self.pool, self.workers, self.draw, self.jobs = pool, workers, draw, jobs
        self.pending = deque(range(len(jobs)))
        self.landed: dict[int, Future[Any]] = {}  # index -> a worker's finished job
        self.flying: dict[Future[Any], int] = {}
        self.broken = False
        self.changed = threading.Condition()

    def _give(self) -> None:
        """Hand idle workers jobs from the back (the caller holds ``changed``)."""
        while not self.broken and len(self.flying) < self.workers and len(self.pending) > 1:
            index = self.pending.pop()  # the last job is left to this process
            try:
                self.flying[self.pool.submit(self.draw, self.jobs[index])] = index
            except (BrokenProcessPool, RuntimeError):  # dead, or shut down meanwhile
                self.pending.append(index)
                self.broken = True

    def _feed(self) -> None:
        with self.changed:
            self._give()
        while True:
            with self.changed:
                flying = list(self.flying)
            if not flying:
                return
            # a job cancelled by the pool's shutdown is done but never wakes ``wait``: poll
            wait(flying, timeout=0.25, return_when=FIRST_COMPLETED)
            with self.changed:
                for future in [f for f in flying if f.done()]:
                    index = self.flying.pop(future)
                    if future.cancelled() or isinstance(future.exception(), BrokenProcessPool):
                        self.pending.append(index)  # drawn here instead
                        self.broken = True
                    else:
                        self.landed[index] = future
                self._give()
                self.changed.notify_all()

    def results(self) -> Iterator[Any]:
        feeder = threading.Thread(target=self._feed, name="figure-feeder", daemon=True)
        feeder.start()
        following = 0  # the next result to yield
        try:
            while following < len(self.jobs):
                with self.changed:
                    while following not in self.landed and not self.pending:
                        self.changed.wait()  # a worker draws the next one; nothing else is left
                    ready = self.landed.pop(following, None)
                    index = following if ready is not None else self.pending.popleft()
                if ready is None:
                    ready = _done(self.draw(self.jobs[index]))
                if index != following:
                    with self.changed:
                        self.landed[index] = ready
                    continue
                following += 1
                yield ready.result()  # a worker's exception is raised here, in order
        finally:
            with self.changed:
                self.pending.clear()  # the feeder hands out nothing more
                self.broken = True


def _done(result: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(result)
    return future
