"""Which stored record of a cell counts, and whether it is fresh: made by the code that runs.

A results folder may hold several records of one cell, since a chunk is never rewritten
(benchinit.results.store): a failed record and its retry, or a record of older code and its
recomputation. Each record carries the fingerprint of the code that computed it (``code``,
benchinit.engine.execute.cell_code; "" in records from before it was recorded). The rule, one for
every reader and for the run that decides what to compute:

- **kept**: among the records of the code that wrote the cell last (its newest record's
  code), a finished one (``ok`` or ``diverged``) if any, else the newest. So a new code's
  record supersedes an old code's even when the new one failed: a result of code that no
  longer runs is never shown beside it.
- **finished**: the kept record is finished, and it is of the code this run computes the
  cell with (any code for a cell the run does not compute). A cell that is not finished is
  computed, and its new record is kept from then on.
- **stale**: finished, but of other code: computed again, and the run says why.

These are pure functions of the store's ``cell, status, code, chunk`` frame
(:meth:`benchinit.results.store.Store.statuses`); chunk names sort oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

FINISHED = ("ok", "diverged")


def kept(statuses: pd.DataFrame) -> pd.DataFrame:
    """The record readers keep of each cell (see the module docstring)."""
    if statuses["cell"].is_unique:  # the usual folder: nothing to choose
        return statuses
    statuses = statuses.sort_values("chunk", kind="stable")
    latest = statuses.groupby("cell")["code"].transform("last")
    same = statuses[statuses["code"] == latest]
    rank = same["status"].isin(FINISHED).astype(int)
    ordered = same.assign(rank=rank).sort_values(["rank", "chunk"], kind="stable")
    return ordered.groupby("cell").tail(1).drop(columns="rank")


def _current(records: pd.DataFrame, codes: Mapping[str, str]) -> pd.Series:
    """Which records are of the code expected for their cell (any, when none is)."""
    expected = records["cell"].map(codes)
    return expected.isna() | (expected == records["code"])


def finished(records: pd.DataFrame, codes: Mapping[str, str]) -> set[str]:
    """Cells whose kept record (``records``: :func:`kept`) is finished and of the code in
    ``codes``."""
    done = records["status"].isin(FINISHED) & _current(records, codes)
    return set(records.loc[done, "cell"])


def stale(records: pd.DataFrame, codes: Mapping[str, str]) -> dict[str, str]:
    """Cells whose kept record is finished but not of the code in ``codes``: ``{cell: the
    stored code}``."""
    old = records["status"].isin(FINISHED) & ~_current(records, codes)
    return dict(zip(records.loc[old, "cell"], records.loc[old, "code"], strict=True))
