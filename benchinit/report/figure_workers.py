"""Worker processes that draw a report's figures, some started before there is anything to
draw.

A spawned worker costs about 2 s before it draws anything (Python, pandas, matplotlib and
seaborn imports): for a short study as much as the drawing itself. ``benchinit run`` therefore
starts figure workers while the run goes on, on the cores its cells leave idle
(:meth:`FigureWorkers.expect`, told once the cells are planned): a GPU run computes in its main
process and leaves the other cores idle, so its figures are drawn by workers that are ready when
the last cell lands. Where the cells keep every core busy (the CPU default: one worker per core)
none is started ahead: measured on the seed study on 2 cores, workers importing during the run
slowed its cells by as much as they saved the report (7.5 s against 7.3 s end to end), so
there the workers start when the drawing does, as ``benchinit report``'s always do. They start
only once the run has lasted ``WARM_AFTER`` seconds, so a shorter run (a test's, a small
study's) pays nothing for them, and a report of fewer than ``COLD_MINIMUM`` figures is never
made to wait for workers still importing.

Workers ignore Ctrl-C (the parent handles it and shuts them down, as the run's cell workers
do) and are spawned, never forked: a process that has started torch's thread pool can hang
in a forked child. They are spawned only where that is safe (:mod:`benchinit.report.spawning`).
"""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from benchinit.report import spawning

# Fewer figures than this are drawn in the calling process when the workers would have to be
# started for them (starting costs more than drawing them); warm workers draw any number.
COLD_MINIMUM = 8
MAX_FIGURE_WORKERS = 4  # a report's figures come in a few dozen: more workers only import
WARM_AFTER = 1.0  # seconds of a run after which its figure workers start (module docstring)


def _warm() -> None:
    """A worker's start: ignore Ctrl-C, import everything a figure needs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    importlib.import_module("benchinit.report.page")


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
        ahead = min(max(0, idle), self.count)
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
            if self._pool is not None:
                self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)
                self._pool = None

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
                pool = ProcessPoolExecutor(self.count, mp_context=context, initializer=_warm)
                # a worker is spawned per submit with none idle; each imports first
                now = self.count if ahead is None else ahead
                self._warm_ups = [pool.submit(int) for _ in range(now)]
                self._pool = pool
            return self._pool

    def map(self, draw: Callable[[Any], Any], jobs: list[Any]) -> Iterator[Any]:
        """``draw(job)`` for each job, in order, in the workers when they are warm or there
        are enough jobs to wait for them, else in this process. A worker that dies (killed,
        out of memory) leaves the rest, its own job included, to this process."""
        if self._timer is not None:
            self._timer.cancel()  # not started by now: decided below
        with self._lock:  # a start under way is waited for
            pool: Executor | None = self._pool
        if len(jobs) < COLD_MINIMUM and not self.warm:
            pool = None  # workers still importing: a few figures are drawn sooner here
        elif pool is None and len(jobs) >= COLD_MINIMUM:
            pool = self._start_quietly()
        done = 0
        try:
            results: Iterable[Any] = map(draw, jobs) if pool is None else pool.map(draw, jobs)
            for result in results:
                done += 1
                yield result
        except BrokenProcessPool:  # a worker died (killed, out of memory): finish here
            yield from map(draw, jobs[done:])
