"""The unit of work and where it runs: batches of cells, one stacked model each.

- :func:`plan` groups cells into :class:`Batch` es: cells that differ only in initializer
  and seed share a stack (benchinit.cells.group_key), unless their optimizer is not
  elementwise; big groups split evenly into stacks of at most ``MAX_MEMBERS``.
- :func:`run_batch` computes one batch in this process, dispatching by study kind, and
  returns its records. It never raises for a plugin: an exception, a ``sys.exit`` or an
  ``os._exit`` from plugin code, or a batch past its time limit, fails the batch's cells with
  the error, and the grid goes on.
- Executors run batches: :class:`LocalExecutor` (in process), :class:`ProcessExecutor` (a
  pool of spawned workers that knows which batch each worker runs, so a worker that dies or
  hangs fails exactly its batch and is replaced), :class:`DaskExecutor` (a dask.distributed
  cluster). Every executor runs the same ``run_batch`` on the same plain-data batches, so
  results are identical whichever ran them.

Threads: each worker runs torch with ``threads`` intra-op threads (default 1). Measured on
a shared 2-core machine: 2 OpenMP threads in one process ran a 128x784x256 matmul at half
the speed of 1 thread whenever another process kept the other core busy (56 vs 109
GFLOP/s), and a passive wait policy did not recover it; 1 thread per process was stable,
and 2 processes x 1 thread did 1.8x the work of one. So benchinit scales across processes
(``jobs``), not threads.

Time limits: ``timeout`` is per cell; a stacked batch of n cells gets n times it. In the
process that computes (in process, or a worker), an interval timer interrupts plugin code
past the limit; a process executor also kills a worker that stays past the limit (a hang
in C code) and fails its batch. The Dask executor has no time limit.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Protocol

import torch

from benchinit.atinit import run_signal
from benchinit.cells import Cell, group_key
from benchinit.errors import BenchinitError, error_text
from benchinit.records import Recorder, Records
from benchinit.registry import Registry, RegistrySpec, registry_from
from benchinit.stack import device_name
from benchinit.train import run_train

# Members per stacked model, by device type. On a CPU the work is compute-bound and a stack
# of 1 or 12 trains 12 MLPs in the same time (measured: 784-256-256-10 and 64-100-100-10),
# so stacks stay small and a process pool gets enough batches to balance. A GPU is
# launch-bound on small MLPs: there one stack should hold as many members as memory allows.
MAX_MEMBERS = {"cpu": 8, "cuda": 128}
KINDS: dict[str, Callable[[list[Cell], Registry, torch.device, Recorder], None]] = {
    "signal": run_signal,
    "train": run_train,
}
KILL_GRACE = 5.0  # seconds a worker may overrun its time limit before it is killed


@dataclass(frozen=True)
class Batch:
    """Cells that share everything but initializer and seed, to run as one stack."""

    cells: tuple[Cell, ...]
    registry: RegistrySpec
    device: str
    threads: int = 1
    deterministic: bool = False  # torch.use_deterministic_algorithms in the worker
    timeout: float | None = None  # seconds per cell; None: no limit

    @property
    def limit(self) -> float | None:
        """The whole batch's time limit in seconds."""
        return None if self.timeout is None else self.timeout * len(self.cells)


# --- planning -----------------------------------------------------------------------------


def plan(
    cells: Sequence[Cell],
    registry: Registry,
    *,
    device: str,
    threads: int = 1,
    deterministic: bool = False,
    timeout: float | None = None,
    max_members: int | None = None,
) -> list[Batch]:
    """Group cells into stacked batches.

    The plan depends only on the cells and the device, never on the executor or the
    number of jobs, so results are bit-identical whichever executor runs them; regrouping
    changes float32 results only in the last digits (a batched matmul rounds differently
    from a single one).
    """
    size = max_members or MAX_MEMBERS.get(torch.device(device).type, 32)
    groups: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        optimizer = cell.config.get("optimizer")
        alone = (
            optimizer is not None
            and not registry.get("optimizer", optimizer["name"]).descriptor.elementwise
        )
        groups[cell.id if alone else group_key(cell)].append(cell)
    spec = registry.spec()
    batches = []
    for group in groups.values():
        pieces = math.ceil(len(group) / size)
        for i in range(pieces):
            part = group[i * len(group) // pieces : (i + 1) * len(group) // pieces]
            batches.append(Batch(tuple(part), spec, device, threads, deterministic, timeout))
    return batches


# --- running one batch --------------------------------------------------------------------


class PluginExit(SystemExit):
    """Plugin code called ``os._exit`` inside a batch (the process is kept alive)."""


class _TimeLimit(BaseException):
    """A batch ran past its time limit (a BaseException: plugin code that catches every
    Exception does not swallow it)."""


@contextlib.contextmanager
def _guarded(limit: float | None) -> Iterator[None]:
    """While computing: ``os._exit`` raises instead of ending the process, and an interval
    timer interrupts the computation after ``limit`` seconds (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    real_exit = os._exit

    def refuse_exit(code: int) -> None:
        raise PluginExit(f"plugin code called os._exit({code}) (the process was kept alive)")

    def alarm(signum: int, frame: Any) -> None:
        raise _TimeLimit()

    os._exit = refuse_exit  # type: ignore[assignment]
    previous = signal.signal(signal.SIGALRM, alarm) if limit else None
    if limit:
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        if limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        os._exit = real_exit


def limit_error(batch: Batch) -> str:
    cells = len(batch.cells)
    stacked = f" ({cells} cells stacked: {batch.limit:g} s)" if cells > 1 else ""
    return f"TimeLimit: the cell ran past its time limit of {batch.timeout:g} s{stacked}"


def failed(batch: Batch, error: str, seconds: float = 0.0) -> Records:
    """Records that fail every cell of ``batch`` with ``error``."""
    recorder = Recorder(device_name(batch.device))
    recorder.fail(batch.cells, error)
    return recorder.frames(seconds)


def run_batch(batch: Batch) -> Records:
    """Run one batch in this process and return its records; never raises for a plugin.

    The registry is the study's own object when it lives in this process, else it is
    rebuilt from the batch's spec (once per process).
    """
    if torch.get_num_threads() != batch.threads:
        torch.set_num_threads(batch.threads)
    if torch.are_deterministic_algorithms_enabled() != batch.deterministic:
        torch.use_deterministic_algorithms(batch.deterministic, warn_only=True)
    start = time.perf_counter()
    device = torch.device(batch.device)
    recorder = Recorder(device_name(device))
    try:
        registry = registry_from(batch.registry)
        with _guarded(batch.limit):
            KINDS[batch.cells[0].kind](list(batch.cells), registry, device, recorder)
    except KeyboardInterrupt:
        raise
    except _TimeLimit:
        return failed(batch, limit_error(batch), time.perf_counter() - start)
    except (Exception, SystemExit) as exc:  # a plugin is code we call: sys.exit included
        return failed(batch, error_text(exc), time.perf_counter() - start)
    return recorder.frames(time.perf_counter() - start)


# --- executors ----------------------------------------------------------------------------


class Executor(Protocol):
    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]: ...

    def close(self, *, abort: bool = False) -> None: ...


class LocalExecutor:
    """In this process, one batch after another."""

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        previous = torch.get_num_threads()
        try:
            for batch in batches:
                yield batch, run_batch(batch)
        finally:
            torch.set_num_threads(previous)

    def close(self, *, abort: bool = False) -> None:
        pass


def _watch_parent(parent: int) -> None:
    """Exit when the parent process is gone (it was killed: nobody will read our results)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _worker_main(conn: Any, threads: int, parent: int) -> None:
    """A worker: run batches received on ``conn`` until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(Exception):  # Linux: die with the parent, even on SIGKILL
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
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
        self.batch = batch
        limit = batch.limit
        self.deadline = math.inf if limit is None else time.monotonic() + limit + KILL_GRACE
        self.conn.send(batch)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class ProcessExecutor:
    """``jobs`` spawned worker processes (spawn: safe with torch's threads).

    The parent gives each worker one batch at a time, so it knows which batch a worker
    runs: a worker that dies (``os._exit``, a crash, the out-of-memory killer) or overruns
    its time limit fails exactly that batch, and a fresh worker takes its place. Workers
    ignore Ctrl-C (the parent stops them) and exit when the parent dies.
    """

    def __init__(self, jobs: int, threads: int) -> None:
        self.jobs, self.threads = jobs, threads
        self.context = multiprocessing.get_context("spawn")
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
            idle = next((w for w in self.workers if w.batch is None), None)
            if idle is None and len(self.workers) < self.jobs:
                idle = _Worker(self.context, self.threads)
                self.workers.append(idle)
            if idle is None:
                return
            idle.give(queue.popleft())

    def _collect(self, worker: _Worker) -> tuple[Batch, Records] | None:
        """The worker's finished batch and its records, or None while it still runs."""
        batch = worker.batch
        assert batch is not None
        if worker.conn.poll():
            try:
                status, payload = worker.conn.recv()
            except (EOFError, OSError):
                return self._replace(worker, self._death(worker))
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


EXECUTORS = ("local", "process", "dask")


def make_executor(
    name: str, registry: Registry, *, jobs: int, threads: int, scheduler: str | None
) -> Executor:
    if jobs < 1 or threads < 1:
        raise BenchinitError(
            f"jobs and threads must be at least 1 (got {jobs}, {threads}; options {{jobs}} "
            "and {threads})",
            options={"jobs": "jobs", "threads": "threads"},
        )
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
