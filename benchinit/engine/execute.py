"""The unit of work: a batch of cells that runs as one stacked model.

- :func:`plan` groups cells into :class:`Batch` es: cells that differ only in initializer
  and seed share a stack (benchinit.study.cells.group_key), unless their optimizer is not
  elementwise; big groups split evenly into stacks of at most ``MAX_MEMBERS``.
- :func:`cell_code`: the fingerprint of the code that computes a cell (the engine's and
  each plugin's it names, benchinit.fingerprint). A batch carries its cells' codes; the
  process that runs it checks that its own code has them, and its records carry them.
- :func:`run_batch` computes one batch in this process, dispatching by study kind, and
  returns its records. It never raises for a plugin: an exception, a ``sys.exit`` or an
  ``os._exit`` from plugin code, or a batch past its time limit, fails the batch's cells with
  the error, and the grid goes on.

A batch is plain, picklable data, so any executor (benchinit.execution.executors) can ship it to a
worker. Time limits: ``timeout`` is per cell; a stacked batch of n cells gets n times it.
In the process that computes, an interval timer interrupts plugin code past the limit.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from benchinit.engine.atinit import run_signal
from benchinit.engine.model_plugin import member_size
from benchinit.engine.recorder import Recorder
from benchinit.engine.stack import bind, dataset_size, device_name, load_data
from benchinit.engine.train import run_train
from benchinit.errors import error_text, plugin_failed
from benchinit.fingerprint import DIGITS, engine_code
from benchinit.plugins.guard import TimeLimit, plugin_code
from benchinit.plugins.registry import Registry, RegistrySpec, registry_from
from benchinit.results.schema import Records
from benchinit.study.cells import Cell, canonical_json, group_key
from benchinit.study.grid import plugins_of

# Members per stacked model, at most, by device type. A GPU is launch-bound on small MLPs:
# there one stack should hold as many members as memory allows. On a CPU (one thread,
# measured per member and training step): a 784-256-256-10 MLP at batch 128 costs 2.2-2.4
# ms whether stacked by 1, 2, 4 or 8, while a 64-100-100-10 one at batch 32 costs 0.36 ms
# alone and 0.10 ms in a stack of 8. So a training stack holds enough members for about
# STACK_WORK multiply-adds per step and no more (at least 2): big models get small stacks,
# which balance across worker processes (12 MLPs in 3 stacks of 4 keep one of 2 workers
# idle half the time; in 6 stacks of 2 neither), small models get full ones. The work is a
# member's multiply-adds per sample (a model plugin's size; an MLP's are its weights).
MAX_MEMBERS = {"cpu": 8, "cuda": 128}
STACK_WORK = 2**25
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
    codes: tuple[str, ...] = ()  # each cell's code fingerprint where it was planned

    @property
    def limit(self) -> float | None:
        """The whole batch's time limit in seconds."""
        return None if self.timeout is None else self.timeout * len(self.cells)


# --- planning -----------------------------------------------------------------------------


def cell_code(cell: Cell, registry: Registry) -> str:
    """The fingerprint of the code that computes ``cell``: the engine's and that of every
    plugin its configuration names. Not part of the cell's id: a stored cell whose code
    differs is computed again under the same id (benchinit.results.store)."""
    plugins = {registry.get(kind, name).plugin.name for kind, name in plugins_of(cell.config)}
    parts = {"engine": engine_code(), **{p: registry.code(p) for p in sorted(plugins)}}
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:DIGITS]


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
    largest = MAX_MEMBERS.get(torch.device(device).type, 32)
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
        size = max_members or stack_size(group[0], registry, device, largest)
        pieces = math.ceil(len(group) / size)
        for i in range(pieces):
            part = tuple(group[i * len(group) // pieces : (i + 1) * len(group) // pieces])
            codes = tuple(cell_code(c, registry) for c in part)
            batches.append(Batch(part, spec, device, threads, deterministic, timeout, codes))
    return batches


def stack_size(cell: Cell, registry: Registry, device: str, largest: int) -> int:
    """Members per stack for ``cell``'s group (see ``STACK_WORK``): ``largest`` except for
    training on a CPU, where it follows the multiply-adds of one member's step."""
    if cell.kind != "train" or torch.device(device).type != "cpu":
        return largest
    try:
        with plugin_code():  # the dataset's size() when it has one: nothing is allocated
            size = dataset_size(registry, bind(registry, "dataset", cell.config["data"]))
            data = None if size else load_data(registry, cell.config["data"])
            features = size[2] if size else data.features  # type: ignore[union-attr]
            shape = None if data is None else data.shape
            _, _, macs = member_size(registry, cell.config["model"], features, shape, 10)
    except BaseException as exc:  # a broken dataset or model fails its cells when they run
        if not plugin_failed(exc):
            raise
        return largest
    work = macs * int(cell.config["train"]["batch_size"])
    return max(2, min(largest, round(STACK_WORK / max(work, 1))))


# --- running one batch --------------------------------------------------------------------


def limit_error(batch: Batch) -> str:
    cells = len(batch.cells)
    stacked = f" ({cells} cells stacked: {batch.limit:g} s)" if cells > 1 else ""
    return f"TimeLimit: the cell ran past its time limit of {batch.timeout:g} s{stacked}"


def failed(batch: Batch, error: str, seconds: float = 0.0) -> Records:
    """Records that fail every cell of ``batch`` with ``error``."""
    recorder = Recorder(device_name(batch.device), _codes(batch))
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
    recorder = Recorder(device_name(device), _codes(batch))
    try:
        registry = registry_from(batch.registry)
        changed = _code_changed(batch, registry)
        if changed:
            return failed(batch, changed)
        with plugin_code(batch.limit):
            KINDS[batch.cells[0].kind](list(batch.cells), registry, device, recorder)
    except KeyboardInterrupt:
        raise
    except TimeLimit:
        return failed(batch, limit_error(batch), time.perf_counter() - start)
    except BaseException as exc:  # a plugin is code we call: sys.exit included
        if not plugin_failed(exc):
            raise
        return failed(batch, error_text(exc), time.perf_counter() - start)
    return recorder.frames(time.perf_counter() - start)


def _codes(batch: Batch) -> dict[str, str]:
    return dict(zip((c.id for c in batch.cells), batch.codes, strict=False))


def _code_changed(batch: Batch, registry: Registry) -> str:
    """Why this process may not compute ``batch``: its code is not the code the run planned
    with (a source file edited while the run goes on, seen by a fresh worker); "" if it is."""
    if not batch.codes:
        return ""
    for cell, planned in zip(batch.cells, batch.codes, strict=True):
        here = cell_code(cell, registry)
        if here != planned:
            return (
                "CodeChanged: benchinit's or a plugin's source changed while the run was going "
                f"on (this worker computes with code {here}, the run planned with {planned}); "
                "run again"
            )
    return ""
