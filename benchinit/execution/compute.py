"""Computing a list of cells once, sharing the work with other runs into the same folder.

The cells are planned into stacks once (benchinit.engine.execute.plan); the run then claims a
round of stacks at a time in the store (enough to keep its executor busy), looks again at
what is finished after claiming (another run may just have stored it), runs its stacks
and stores each as it finishes. Cells another live run holds are waited for, and taken
over if that run dies. :class:`Tally` says where a run's cells came from.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from benchinit.engine.execute import Batch
from benchinit.execution.executors import Executor
from benchinit.execution.progress import Progress
from benchinit.results.store import Store
from benchinit.study.cells import Cell

POLL_SECONDS = 0.5  # how often a run looks at cells another live run is computing


@dataclass
class Tally:
    """Where a run's cells came from."""

    computed: int = 0  # computed by this run
    stored: int = 0  # finished before this run looked
    others: int = 0  # finished meanwhile by another live run into the same folder


def compute(
    store: Store,
    pool: Executor,
    cells: list[Cell],
    planner: Callable[[list[Cell]], list[Batch]],
    bar: Progress,
    tally: Tally,
) -> None:
    """Compute every unfinished cell once, sharing the work with other live runs.

    The cells are planned into stacks once; the run then claims a round of stacks at a
    time (enough to keep its executor busy), so a second run into the same folder finds
    stacks left to claim instead of waiting for the first to finish everything. After
    each claim it looks again at what is finished (another run may just have stored it).
    """
    finished = store.finished()
    todo = [c for c in cells if c.id not in finished]
    tally.stored += len(cells) - len(todo)
    bar.advance(len(cells) - len(todo))
    queue = deque(planner(todo))
    waiting: dict[str, Cell] = {}  # held by another live run
    while queue or waiting:
        mine = claim_round(store, queue, waiting, 2 * pool.capacity)
        if not mine and waiting:  # nothing left to claim: take over what a dead run held
            got, _ = store.claim_all(list(waiting))
            mine = planner([waiting.pop(cid) for cid in got]) if got else []
        finished = store.finished()
        gone = [cid for cid in waiting if cid in finished]
        for cid in gone:
            del waiting[cid]
        mine, already = unfinished(mine, finished)
        tally.others += len(gone) + already
        bar.advance(len(gone) + already)
        if mine:
            tally.computed += _execute(pool, mine, store, bar)
        elif waiting:
            time.sleep(POLL_SECONDS)  # the cells left are being computed by a live run


def claim_round(
    store: Store, queue: deque[Batch], waiting: dict[str, Cell], limit: int
) -> list[Batch]:
    """Claim up to ``limit`` planned stacks; cells another run holds go to ``waiting``."""
    mine: list[Batch] = []
    while queue and len(mine) < limit:
        batch = queue.popleft()
        got, held = store.claim_all([c.id for c in batch.cells])
        ours, theirs = set(got), set(held)
        waiting.update({c.id: c for c in batch.cells if c.id in theirs})
        if ours and theirs:  # another study's run shares some of these cells
            batch = dataclasses.replace(batch, cells=tuple(c for c in batch.cells if c.id in ours))
        if ours:
            mine.append(batch)
    return mine


def unfinished(batches: list[Batch], finished: set[str]) -> tuple[list[Batch], int]:
    """The batches without their finished cells, and how many cells that dropped."""
    out, dropped = [], 0
    for batch in batches:
        cells = tuple(c for c in batch.cells if c.id not in finished)
        dropped += len(batch.cells) - len(cells)
        if cells:
            out.append(
                batch if len(cells) == len(batch.cells) else dataclasses.replace(batch, cells=cells)
            )
    return out, dropped


def _execute(pool: Executor, batches: list[Batch], store: Store, bar: Progress) -> int:
    """Run batches, storing and releasing each as it finishes; the cells computed."""
    done = 0
    for batch, records in pool.run(batches):
        store.write(records)
        runs = records.get("runs")
        failed = int((runs["status"] == "failed").sum()) if runs is not None and len(runs) else 0
        bar.advance(len(batch.cells), failed)
        done += len(batch.cells)
    return done
