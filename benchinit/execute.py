"""The unit of work: a batch of cells that runs as one stacked model.

- :func:`plan` groups cells into :class:`Batch` es: cells that differ only in initializer
  and seed share a stack (benchinit.cells.group_key), unless their optimizer is not
  elementwise; big groups split evenly into stacks of at most ``MAX_MEMBERS``.
- :func:`run_batch` computes one batch in this process, dispatching by study kind, and
  returns its records. It never raises for a plugin: an exception, a ``sys.exit`` or an
  ``os._exit`` from plugin code, or a batch past its time limit, fails the batch's cells with
  the error, and the grid goes on.

A batch is plain, picklable data, so any executor (benchinit.executors) can ship it to a
worker. Time limits: ``timeout`` is per cell; a stacked batch of n cells gets n times it.
In the process that computes, an interval timer interrupts plugin code past the limit.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchinit.atinit import run_signal
from benchinit.cells import Cell, group_key
from benchinit.errors import error_text
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
