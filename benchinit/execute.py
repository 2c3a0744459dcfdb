"""Where batches run: in this process, in a process pool, or on a Dask cluster.

Every executor runs the same :func:`benchinit.engine.run_batch` on the same plain-data
:class:`~benchinit.engine.Batch`, so results are identical whichever ran them; each yields
records as batches finish, and the runner stores them as they arrive.

Threads: each worker runs torch with ``--threads`` intra-op threads (default 1). Measured on
a shared 2-core machine: 2 OpenMP threads in one process ran a 128x784x256 matmul at half
the speed of 1 thread whenever another process kept the other core busy (56 vs 109
GFLOP/s), and a passive wait policy did not recover it; 1 thread per process was stable,
and 2 processes x 1 thread did 1.8x the work of one. So benchinit scales across processes
(``--jobs``), not threads.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol

import torch

from benchinit.engine import Batch, Records, run_batch
from benchinit.errors import BenchinitError
from benchinit.registry import Registry


class Executor(Protocol):
    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """In this process, one batch after another (the study's own registry object)."""

    def __init__(self, registry: Registry, threads: int) -> None:
        self.registry = registry
        self.threads = threads

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        previous = torch.get_num_threads()
        try:
            for batch in batches:
                yield batch, run_batch(batch, self.registry)
        finally:
            torch.set_num_threads(previous)

    def close(self) -> None:
        pass


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


class ProcessExecutor:
    """A pool of ``jobs`` spawned worker processes (spawn: safe with torch's threads)."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        futures = {self.pool.submit(run_batch, batch): batch for batch in batches}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A dask.distributed cluster: ``scheduler`` address, or a local cluster of ``jobs``."""

    def __init__(self, scheduler: str | None, jobs: int, threads: int) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise BenchinitError(
                "--executor dask needs dask.distributed: pip install 'benchinit[dask]'"
            ) from None
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise BenchinitError(
                    f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})"
                ) from None
        else:
            self.cluster = LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self.client = Client(self.cluster)
        self.client.run(_init_worker, threads)

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Records]]:
        from distributed import as_completed as dask_completed

        futures = {}
        for batch in batches:
            futures[self.client.submit(run_batch, batch, pure=False)] = batch
        for future in dask_completed(list(futures)):
            yield futures[future], future.result()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(
    name: str, registry: Registry, *, jobs: int, threads: int, scheduler: str | None
) -> Executor:
    if jobs < 1 or threads < 1:
        raise BenchinitError(f"--jobs and --threads must be at least 1 (got {jobs}, {threads})")
    if name == "local":
        return LocalExecutor(registry, threads)
    for info in registry.plugins.values():
        if info.origin == "object":  # workers rebuild the registry from files and entry points
            raise BenchinitError(
                f"in-memory plugin '{info.name}' cannot travel to worker processes; use "
                "--executor local, or make it a plugin file or an installed distribution"
            )
    if name == "process":
        return ProcessExecutor(jobs, threads)
    if name == "dask":
        return DaskExecutor(scheduler, jobs, threads)
    raise BenchinitError(f"unknown executor '{name}'; valid: local, process, dask")
