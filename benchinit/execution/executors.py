"""Where batches run: in this process, in a pool of worker processes, or on a Dask cluster.

Every executor runs :func:`benchinit.engine.execute.run_batch` on the same plain-data batches, so
results are identical whichever ran them; each yields records as batches finish, and the
runner stores them as they arrive.

- :class:`LocalExecutor`: in this process, one batch after another.
- :class:`ProcessExecutor`: spawned workers, each given one batch at a time, so the parent
  knows which batch a worker runs: a worker that dies (``os._exit`` in plugin code, a crash,
  the out-of-memory killer) or hangs past its time limit (in C code, where the worker's own
  timer cannot interrupt it) fails exactly that batch and is replaced, and the grid goes on.
  Workers ignore Ctrl-C (the parent stops them at once) and exit when the parent dies.
- :class:`DaskExecutor`: a dask.distributed cluster (no time limits there).

Threads: each worker runs torch with ``threads`` intra-op threads (default 1). Measured on
a shared 2-core machine: 2 OpenMP threads in one process ran a 128x784x256 matmul at half
the speed of 1 thread whenever another process kept the other core busy (56 vs 109
GFLOP/s), and a passive wait policy did not recover it; 1 thread per process was stable,
and 2 processes x 1 thread did 1.8x the work of one. So benchinit scales across processes
(``jobs``), not threads.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any, Protocol

import torch

from benchinit.engine.execute import Batch, failed, limit_error, run_batch
from benchinit.errors import BenchinitError, error_text
from benchinit.execution.processes import die_with_parent
from benchinit.plugins.registry import Registry
from benchinit.results.schema import Records

KILL_GRACE = 5.0  # seconds a worker may overrun its time limit before it is killed


class Executor(Protocol):
    capacity: int  # batches it runs at once

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]: ...

    def close(self, *, abort: bool = False) -> None: ...


class LocalExecutor:
    """In this process, one batch after another."""

    capacity = 1

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            for batch in batches:
                yield batch, run_batch(batch)
        finally:  # the caller's process gets its own settings back
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)

    def close(self, *, abort: bool = False) -> None:
        pass


def _worker_main(conn: Any, threads: int, parent: int) -> None:
    """A worker: run batches received on ``conn`` until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)
    torch.set_num_threads(threads)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            gc.freeze()  # an exit without walking torch's objects (benchinit.cli.command)
            return
        conn.send(("started", None))  # its time limit counts from now, not from the spawn
        try:
            conn.send(("ok", run_batch(batch)))
        except Exception as exc:  # a bug in benchinit itself: report it, keep serving
            conn.send(("error", error_text(exc)))


class _Worker:
    def __init__(self, context: Any, threads: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, threads, os.getpid()), daemon=True
        )
        self.process.start()
        child.close()
        self.batch: Batch | None = None
        self.deadline = math.inf

    def give(self, batch: Batch) -> None:
        """Send ``batch``; its deadline starts when the worker says it started it."""
        self.batch = batch
        self.deadline = math.inf
        self.conn.send(batch)

    def started(self) -> None:
        limit = None if self.batch is None else self.batch.limit
        self.deadline = math.inf if limit is None else time.monotonic() + limit + KILL_GRACE

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class ProcessExecutor:
    """``jobs`` worker processes, forked or spawned.

    The parent gives each worker one batch at a time, so it knows which batch a worker
    runs: a worker that dies (``os._exit``, a crash, the out-of-memory killer) or overruns
    its time limit fails exactly that batch, and a fresh worker takes its place. Workers
    ignore Ctrl-C (the parent stops them) and exit when the parent dies.

    ``start``: ``spawn`` (a fresh interpreter: about 2 s of imports per worker on a 2-core
    machine, and only plugins that can be loaded again: files and distributions) or
    ``fork`` (Linux: a copy of this process, ready at once, with its plugins and data). A
    forked child that runs torch with more than one thread can hang in OpenMP when the
    parent had started its thread pool (measured: 2 threads hang, 1 thread runs), so
    ``auto`` forks only one-thread workers; ``process`` always spawns, for full isolation.
    """

    def __init__(self, jobs: int, threads: int, start: str = "spawn") -> None:
        self.jobs, self.threads = jobs, threads
        self.capacity = jobs
        self.context = multiprocessing.get_context(start)
        self.workers: list[_Worker] = []

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        queue = deque(batches)
        while queue or any(w.batch is not None for w in self.workers):
            self._assign(queue)
            busy = [w for w in self.workers if w.batch is not None]
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy],
                timeout=min(timeout, 60.0),
            )
            for worker in busy:
                outcome = self._collect(worker)
                if outcome is not None:
                    yield outcome

    def _assign(self, queue: deque[Batch]) -> None:
        while queue:
            for gone in [w for w in self.workers if w.batch is None and not w.process.is_alive()]:
                gone.kill()  # died while idle (the out-of-memory killer, say): replace it
                self.workers.remove(gone)
            idle = next((w for w in self.workers if w.batch is None), None)
            if idle is None and len(self.workers) < self.jobs:
                idle = _Worker(self.context, self.threads)
                self.workers.append(idle)
            if idle is None:
                return
            batch = queue.popleft()
            try:
                idle.give(batch)
            except OSError:  # it died just now: a fresh worker takes the batch
                idle.batch = None
                idle.kill()
                self.workers.remove(idle)
                queue.appendleft(batch)

    def _collect(self, worker: _Worker) -> tuple[Batch, Records] | None:
        """The worker's finished batch and its records, or None while it still runs."""
        batch = worker.batch
        assert batch is not None
        while worker.conn.poll():
            try:
                status, payload = worker.conn.recv()
            except (EOFError, OSError):
                return self._replace(worker, self._death(worker))
            if status == "started":
                worker.started()
                continue
            worker.batch = None
            return batch, payload if status == "ok" else failed(batch, payload)
        if not worker.process.is_alive():
            return self._replace(worker, self._death(worker))
        if time.monotonic() > worker.deadline:
            return self._replace(worker, limit_error(batch) + " (its worker was stopped)")
        return None

    def _death(self, worker: _Worker) -> str:
        worker.process.join(5)
        code = worker.process.exitcode
        how = f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"
        return f"WorkerDied: the worker process running this batch died ({how})"

    def _replace(self, worker: _Worker, error: str) -> tuple[Batch, Records]:
        batch = worker.batch
        assert batch is not None
        worker.kill()
        self.workers.remove(worker)
        return batch, failed(batch, error)

    def close(self, *, abort: bool = False) -> None:
        """Stop the workers: politely, or at once when ``abort`` (an interrupted run)."""
        for worker in self.workers:
            if abort:
                worker.kill()
                continue
            with contextlib.suppress(Exception):
                worker.conn.send(None)
        for worker in self.workers:
            worker.process.join(10)
            if worker.process.is_alive():
                worker.kill()
        self.workers = []


class DaskExecutor:
    """A dask.distributed cluster: ``scheduler`` address, or a local cluster of ``jobs``."""

    def __init__(self, scheduler: str | None, jobs: int, threads: int) -> None:
        self.capacity = jobs
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise BenchinitError(
                "the dask executor needs dask.distributed: pip install 'benchinit[dask]'"
            ) from None
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise BenchinitError(
                    f"cannot reach the Dask scheduler at {scheduler} ({exc})"
                ) from None
        else:
            self.cluster = LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self.cluster)
        self.client.run(torch.set_num_threads, threads)

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        from distributed import as_completed as dask_completed

        futures = {self.client.submit(run_batch, b, pure=False): b for b in batches}
        for future in dask_completed(list(futures)):
            batch = futures[future]
            try:
                yield batch, future.result()
            except Exception as exc:  # e.g. KilledWorker: the batch's worker died
                yield batch, failed(batch, error_text(exc))

    def close(self, *, abort: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


EXECUTORS = ("auto", "local", "process", "dask")


def can_fork() -> bool:
    """Fork where it is the platform's own safe default for CPU work (Linux)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


MAX_THREADS = 1024  # torch threads per worker: far past any machine's cores, still allocatable


def make_executor(
    name: str,
    registry: Registry,
    *,
    jobs: int,
    threads: int,
    scheduler: str | None,
    device: str = "cpu",
    timeout: float | None = None,
) -> Executor:
    """The executor ``name`` runs batches on. ``auto``: in this process when ``jobs`` is 1
    or the device is CUDA (one process feeds a GPU best), else ``jobs`` forked workers
    (spawned where fork is not the platform's way). With a ``timeout``, ``auto`` always
    uses a worker process (one for one job): only a parent can stop a worker stuck in C
    code, where the in-process timer cannot reach."""
    if jobs < 1 or threads < 1:
        raise BenchinitError(
            f"jobs and threads must be at least 1 (got {jobs}, {threads}; options {{jobs}} "
            "and {threads})",
            options={"jobs": "jobs", "threads": "threads"},
        )
    if threads > MAX_THREADS:  # OpenMP sizes its pool from it at once (21 GB for 10^8)
        raise BenchinitError(
            f"threads per worker must be 1 to {MAX_THREADS:,}, got {threads:,} (option "
            "{threads}); benchinit scales across processes (jobs), not threads",
            options={"threads": "threads"},
        )
    if name == "auto":
        if (jobs == 1 and timeout is None) or torch.device(device).type == "cuda":
            return LocalExecutor()
        if can_fork() and threads == 1:  # a forked child with OpenMP threads can hang
            return ProcessExecutor(jobs, threads, start="fork")
        name = "process"
    if name == "local":
        return LocalExecutor()
    for info in registry.plugins.values():
        if info.origin == "object":  # workers rebuild the registry from files and entry points
            raise BenchinitError(
                f"in-memory plugin '{info.name}' cannot travel to worker processes; use "
                "the local executor ({executor}), or make it a plugin file or an installed "
                "distribution",
                options={"executor": "executor='local'"},
            )
    if name == "process":
        return ProcessExecutor(jobs, threads)
    if name == "dask":
        return DaskExecutor(scheduler, jobs, threads)
    raise BenchinitError(f"unknown executor '{name}'; valid: {', '.join(EXECUTORS)}")
