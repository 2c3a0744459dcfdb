"""A study's cells -> batches -> an executor -> the store (``benchinit.run`` adds the report).

A run first records the study and environment (so even an interrupted run leaves a readable
folder), skips the cells already finished by the code it runs (a stored cell of other code,
benchinit.engine.execute.cell_code, is computed again and the summary says why), claims the rest,
groups them into stacked batches and stores each batch's records as it arrives. Cells
another live run is computing are waited for at the end, not computed twice. Before
anything runs, the memory a stacked batch needs is estimated and a batch that cannot fit on
the device is refused (benchinit.engine.memory).

A study with a seed rule (``seeds = "auto"``: seeds until decided, benchinit.execution.seeding) runs
in rounds: its first ``min`` seeds, then, decided from the stored results after each
round, more seeds for the configurations whose interval is still too wide. Each round's
cells are ordinary cells, listed in ``meta.json`` before they run.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchinit.engine import memory
from benchinit.engine.execute import Batch, cell_code, plan
from benchinit.engine.recorder import Recorder
from benchinit.engine.stack import check_precisions, resolve_device
from benchinit.errors import BenchinitError, BenchinitWarning, ResultsError
from benchinit.execution import rerun, seeding, stages
from benchinit.execution.compute import Tally, compute
from benchinit.execution.executors import Executor, make_executor
from benchinit.execution.processes import usable_cores
from benchinit.execution.progress import Progress
from benchinit.execution.run_meta import now, run_meta
from benchinit.fingerprint import engine_code
from benchinit.plugins.registry import Registry
from benchinit.results import freshness
from benchinit.results.folder_summary import settle
from benchinit.results.meta import Meta
from benchinit.results.schema import conform
from benchinit.results.store import Store
from benchinit.study import grid
from benchinit.study.cells import Cell
from benchinit.study.grid import plugins_of
from benchinit.study.load import Study
from benchinit.study.resolved import resolved_toml
from benchinit.study.transfer import source_label

MAX_TIMEOUT = 1e7  # seconds (115 days): the interval timer's range is finite


@dataclass
class Executed:
    """What :func:`execute` did: where, the cells computed and reused, its workers, time."""

    out: Path
    tally: Tally
    recomputed: dict[str, int]  # stored cells computed again because their code changed
    workers: int
    seconds: float


def execute(
    study: Study,
    out: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    executor: str = "auto",
    jobs: int | str = "auto",
    threads: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    command: Sequence[str] | None = None,
    deterministic: bool | None = None,
    timeout: float | None = None,
    force: bool = False,
    check_memory: bool = True,
    on_workers: Callable[[int, bool], None] | None = None,
) -> Executed:
    """Compute and store every unfinished cell of ``study`` into ``out`` (default
    ``reports/<name>``); :func:`benchinit.pipeline.run` adds the report (``on_workers(n,
    separate)`` is told the cells' worker processes once they are planned, and whether they
    are processes of their own: benchinit.report.figure_workers starts its workers on the
    cores that leaves idle).

    ``jobs``: worker processes, or ``auto``: the usable cores on a CPU (at most one per
    batch), 1 on CUDA. ``executor``: ``auto`` (in this process for one job, else forked
    workers), ``local``, ``process`` (spawned workers) or ``dask``. ``timeout``: seconds per
    cell, after which it fails. ``force``: write into a folder that holds other files
    (never replacing one). ``check_memory``: refuse batches estimated not to fit on the
    device. ``deterministic`` (default: the environment variable
    ``BENCHINIT_DETERMINISTIC``): torch's deterministic algorithms in every worker (on CUDA
    with cuBLAS's fixed workspace); recorded with the environment, not in the cell ids.

    A study with ``[tune]`` runs in two stages (benchinit.execution.stages): its tuning cells, then
    each configuration's final cells at its chosen values. A study with a seed rule runs
    rounds of seeds until each configuration's interval is narrow enough (the final cells'
    seeds grow; tuning is done once).
    """
    deterministic = _deterministic(deterministic)
    _check_timeout(timeout)
    started = time.perf_counter()
    out_path = Path(out) if out is not None else Path("reports") / study.name
    device = resolve_device(device)
    first = stages.tune_cells(study.cells(), study.tune) if study.tune else study.cells()
    for message in check_precisions(first, device):
        warnings.warn(message, BenchinitWarning, stacklevel=2)
    planner = functools.partial(
        plan,
        registry=study.registry,
        device=device,
        threads=threads,
        deterministic=deterministic,
        timeout=timeout,
    )
    workers = _check_size(study, first, planner, jobs, device, check_memory)
    if on_workers is not None:
        on_workers(workers, _in_workers(executor, workers, device))
    total = len(first) + (len(study.cells()) if study.tune else 0)
    pool = make_executor(
        executor,
        study.registry,
        jobs=workers,
        threads=threads,
        scheduler=scheduler,
        device=device,
        timeout=timeout,
    )
    bar = Progress(total, study.name, enabled=progress)
    aborted = True
    try:
        store = Store(out_path, create=True, force=force)
        meta = run_meta(study, first, device, command, threads, deterministic)
        tally, recomputed = _stages(store, study, meta, first, pool, planner, bar)
        aborted = False
    finally:
        pool.close(abort=aborted)
        bar.close()
    settle(out_path)  # the chunks merged into one file per table, the index's summary
    return Executed(out_path, tally, recomputed, workers, time.perf_counter() - started)


def _check_size(
    study: Study,
    first: list[Cell],
    planner: Callable[[list[Cell]], list[Batch]],
    jobs: int | str,
    device: str,
    check_memory: bool,
) -> int:
    """The worker processes to use; refuses a plan that cannot fit in memory (with a seed
    rule: the plan of every configuration at its most seeds)."""
    batches = planner(first)
    staged = study.tune is not None or study.seeding is not None
    later = planner(_most_cells(study)) if staged else []
    workers = resolve_jobs(jobs, device, max(len(batches), len(later)))
    if check_memory:
        memory.check(batches + later, device, concurrent=workers)
    return workers


def _most_cells(study: Study) -> list[Cell]:
    """The grid's cells at the most seeds a configuration may reach."""
    if study.seeding is None:
        return study.cells()
    most = range(study.seeding.max)
    return [c for g in grid.by_configuration(study.cells()) for c in grid.reseed(g[0], most)]


def _in_workers(executor: str, workers: int, device: str) -> bool:
    """Whether the cells run in worker processes (not in this one): the executor ``auto``
    runs them here for one job or on CUDA (benchinit.execution.executors.make_executor)."""
    if executor == "local":
        return False
    return executor != "auto" or (workers > 1 and torch.device(device).type != "cuda")


def resolve_jobs(jobs: int | str, device: str, batches: int) -> int:
    """Worker processes: ``auto`` is the usable cores on a CPU, 1 on CUDA; never more than
    there are batches."""
    if jobs == "auto":
        count = 1 if torch.device(device).type == "cuda" else usable_cores()
    elif isinstance(jobs, int) and not isinstance(jobs, bool):
        count = jobs
    else:
        raise BenchinitError(f"jobs must be a number of processes or 'auto', got {jobs!r}")
    if count < 1:
        raise BenchinitError(
            f"jobs must be at least 1, got {count} (option {{jobs}})", options={"jobs": "jobs"}
        )
    return max(1, min(count, batches))


def _choose(store: Store, study: Study, meta: Meta) -> pd.DataFrame:
    """After tuning: each configuration's chosen values, from the stored tuning runs (their
    validation metric only)."""
    spec = study.tune
    assert spec is not None
    tune_ids = set(meta["cells"])
    stored = store.read(("runs",)).get("runs", pd.DataFrame())
    runs = conform("runs", stored[stored["cell"].isin(tune_ids)] if len(stored) else stored)
    chosen = stages.choose(runs, spec)
    if spec.transfer is None:
        return chosen
    axis, value = spec.transfer  # tune small, train wide: the source configuration's choice
    labels = list(dict.fromkeys(c.labels[axis] for c in study.grid_cells))
    return stages.transferred(chosen, spec, source_label(axis, value, study.axes[axis], labels))


Finals = Callable[[list[list[Cell]]], tuple[list[list[Cell]], list[Cell]]]


def _finals(
    store: Store,
    study: Study,
    meta: Meta,
    toml: str,
    chosen: pd.DataFrame | None,
    stale: list[tuple[Cell, str]],
    configurations: list[list[Cell]],
) -> tuple[list[list[Cell]], list[Cell]]:
    """(the cells each configuration's grid cells stand for, the cells to compute), listed
    in meta.json from now on, their codes expected by the store (stored cells of other code
    are added to ``stale``). Untuned, they are the grid cells; tuned, the final cells at
    the chosen values, and a configuration without a chosen value is recorded as failed
    (:data:`benchinit.execution.stages.NOT_TUNED`) without running."""
    spec = study.tune if chosen is not None else None
    listed, todo, skipped = [], [], []
    for cells in configurations:  # tuned: a configuration has a chosen value or none
        run, skip = (cells, []) if spec is None else stages.final_cells(cells, chosen, spec)
        listed.append(run + skip)
        todo += run
        skipped += skip
    codes = _codes([*todo, *skipped], study.registry)
    store.expect(codes)
    stale += _stale(store, todo, codes)
    statuses = store.statuses() if skipped else pd.DataFrame({"cell": [], "code": []})
    recorded = set(statuses.loc[statuses["code"] == statuses["cell"].map(codes), "cell"])
    missing = [c for c in skipped if c.id not in recorded]
    if missing:
        recorder = Recorder(str(meta["environment"]["device"]), codes)
        recorder.fail(missing, stages.NOT_TUNED)
        store.write(recorder.frames(0.0))
    known = set(meta["cells"])
    meta["cells"] = [*meta["cells"], *(c.id for g in listed for c in g if c.id not in known)]
    store.write_meta(meta, toml)
    return listed, todo


def _stages(
    store: Store,
    study: Study,
    meta: Meta,
    first: list[Cell],
    pool: Executor,
    planner: Callable[[list[Cell]], list[Batch]],
    bar: Progress,
) -> tuple[Tally, dict[str, int]]:
    """Record the study, compute its cells (``first``: the tuning cells of a tuned study,
    then its final cells; with a seed rule, round after round), and record that it
    finished. Also says why stored cells were computed again because their code changed,
    with how many (see :func:`_why_stale`)."""
    tally = Tally()
    toml = resolved_toml(study)
    previous = _previous_meta(store)
    if previous is not None:  # never hide what the folder shows (benchinit.execution.rerun)
        seeded, tuned = study.seeding is not None, study.tune is not None
        rerun.check(previous, meta["study"], store.root, first, seeded=seeded, tuned=tuned)
    store.write_meta(meta, toml)
    codes = _codes(first, study.registry)
    store.expect(codes)
    stale = _stale(store, first, codes)
    with store.running():
        compute(store, pool, first, planner, bar, tally)
        configurations = grid.by_configuration(study.cells())
        listed, chosen = configurations, None
        if study.tune is not None:
            chosen = _choose(store, study, meta)
            listed, final = _finals(store, study, meta, toml, chosen, stale, configurations)
            compute(store, pool, final, planner, bar, tally)
        if study.seeding is not None:
            finals = functools.partial(_finals, store, study, meta, toml, chosen, stale)
            run = functools.partial(compute, store, pool, planner=planner, bar=bar, tally=tally)
            _rounds(store, study, meta, toml, configurations, listed, finals, run, bar)
    meta["finished"] = now()
    store.write_meta(meta, toml)
    return tally, _why_stale(stale, study.registry, previous)


def _codes(cells: Sequence[Cell], registry: Registry) -> dict[str, str]:
    return {c.id: cell_code(c, registry) for c in cells}


def _stale(store: Store, cells: Sequence[Cell], codes: dict[str, str]) -> list[tuple[Cell, str]]:
    """The ``cells`` whose stored record is finished but not of ``codes``, with its code."""
    stale = freshness.stale(freshness.kept(store.statuses()), codes)
    return [(c, stale[c.id]) for c in cells if c.id in stale]


def _previous_meta(store: Store) -> Meta | None:
    """The folder's ``meta.json`` before this run replaces it: what the last run ran."""
    try:
        return store.meta() if store.meta_path.is_file() else None
    except ResultsError:
        return None


def _why_stale(
    stale: Sequence[tuple[Cell, str]], registry: Registry, previous: Meta | None
) -> dict[str, int]:
    """Why stored cells were computed again, in words, with how many: the plugins whose
    code the folder's previous run recorded otherwise, benchinit's compute path, or records
    from before codes were recorded."""
    before = {p["name"]: p.get("code") for p in previous["plugins"]} if previous else {}
    engine_before = previous["environment"].get("benchinit_code") if previous else None
    reasons: Counter[str] = Counter()
    for cell, code in stale:
        if not code:
            reasons["stored before benchinit recorded the code of each cell"] += 1
            continue
        names = {registry.get(kind, name).plugin.name for kind, name in plugins_of(cell.config)}
        changed = sorted(
            Path(n).name for n in names if before.get(n) not in (None, registry.code(n))
        )
        parts = [f"their plugin code changed ({', '.join(changed)})"] if changed else []
        if engine_before not in (None, engine_code()):
            parts.append("benchinit's compute code changed")
        reasons[" and ".join(parts) or "their code changed"] += 1
    return dict(reasons)


def _rounds(
    store: Store,
    study: Study,
    meta: Meta,
    toml: str,
    configurations: list[list[Cell]],
    listed: list[list[Cell]],
    finals: Finals,
    run: Callable[[list[Cell]], None],
    bar: Progress,
) -> None:
    """Seeds until decided (benchinit.execution.seeding): after each round, decided from the stored
    results of each configuration's seeds so far, run the next seeds of those whose
    interval is still too wide. ``configurations``: the first round's grid cells, per
    configuration; ``listed``: the cells they stand for (the final cells, when tuned)."""
    rule = study.seeding
    assert rule is not None
    counts = np.array([len(cells) for cells in configurations], dtype=np.int64)
    labels = [{a: cells[0].labels[a] for a in study.axes} for cells in configurations]
    members = [[c.id for c in cells] for cells in listed]
    for round_ in itertools.count(1):
        stored = store.read(("runs",)).get("runs", pd.DataFrame())
        finished, mean, std = seeding.spread(stored, study.metric, members)
        decision = seeding.decide(counts, finished, mean, std, rule)
        grow = np.flatnonzero(decision.counts > counts)
        meta["study"]["seeding"] = seeding.record(
            rule, study.metric, round_, labels, finished, decision
        )
        meta["study"]["seeds"] = list(range(int(decision.counts.max(initial=0))))
        store.write_meta(meta, toml)
        if not len(grow):
            return
        more = [
            grid.reseed(configurations[i][0], range(counts[i], decision.counts[i])) for i in grow
        ]
        added, todo = finals(more)
        for i, cells in zip(grow, added, strict=True):
            members[i] += [c.id for c in cells]
        bar.note(
            f"{study.name}: seeds round {round_ + 1}: {len(grow)} of {len(counts)} "
            f"configurations wider than {rule.target_text()} on {study.metric}; "
            f"{len(todo)} more cell{'s' * (len(todo) != 1)}"
        )
        bar.label = f"{study.name} round {round_ + 1}"
        bar.grow(len(todo))
        run(todo)
        counts = decision.counts


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise BenchinitError(
            f"the time limit per cell must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
            f"got {timeout}"
        )


def _deterministic(asked: bool | None) -> bool:
    """``asked``, else $BENCHINIT_DETERMINISTIC; prepares cuBLAS before CUDA starts."""
    if asked is None:
        asked = os.environ.get("BENCHINIT_DETERMINISTIC", "") not in ("", "0")
    if asked:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return asked
