"""Whether a run may go into a folder that already holds a run: never one that hides results.

A folder's report, ``show``, ``compare`` and ``index`` show the cells of the study run into
it last. A rerun of the same study (a finished one, an interrupted one, one whose code
changed, one with a setting that has no effect), a grid with values added or more seeds
lists every stored cell again and goes on. A study that would leave stored cells out of
every page (another study, another setting such as ``model.depth``, grid values or seeds
taken away) is refused before anything runs, naming what differs and ``--out``: its
results belong in a folder of their own, where ``benchinit index`` lists both runs.

The decision is made on cells, the description on the recorded study: the folder's
listed cells must all be cells of the new study (at the seeds it runs; with a seed rule, at
the seeds the folder reached). A tuned study's final cells follow from its tuning, so there
the new tuning cells must share some cells with the folder's: a partial change of a tuned
study is not caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchinit.errors import BenchinitError
from benchinit.study import grid
from benchinit.study.cells import Cell

MAX_SHOWN = 4  # differences named in the message


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _removed(old: list[Any], new: list[Any]) -> list[Any]:
    kept = {repr(v) for v in new}
    return [v for v in old if repr(v) not in kept]


def differences(old: Mapping[str, Any], new: Mapping[str, Any], *, seeded: bool) -> list[str]:
    """What running the study ``new`` (``meta.json``'s ``study``) into a folder last run
    with ``old`` would hide, in words; empty when every stored configuration stays shown.
    ``seeded``: the new study adds seeds until decided (its seeds grow as it runs)."""
    if (old.get("name"), old.get("kind")) != (new.get("name"), new.get("kind")):
        return [f"another study: '{old.get('name')}' ({old.get('kind')})"]
    found = []
    before, after = _flat(old.get("settings", {})), _flat(new.get("settings", {}))
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            found.append(f"{key}: {before.get(key)!r} -> {after.get(key)!r}")
    if list(old.get("axes", [])) != list(new.get("axes", [])):
        found.append(f"grid axes: {old.get('axes')} -> {new.get('axes')}")
    else:
        for axis, values in old.get("values", {}).items():
            gone = _removed(list(values), list(new.get("values", {}).get(axis, [])))
            if gone:
                found.append(f"grid.{axis} without {', '.join(map(str, gone))}")
    gone = [] if seeded else _removed(list(old.get("seeds", [])), list(new.get("seeds", [])))
    if gone:
        found.append(f"without seed{'s' * (len(gone) > 1)} {', '.join(map(str, gone))}")
    return found


def hidden(
    previous: Mapping[str, Any], first: list[Cell], seeds: list[int] | None, tuned: bool
) -> int:
    """How many of the folder's listed cells (its ``meta.json``) a run of ``first`` would
    no longer list: ``first`` at ``seeds`` (None: its own seeds) must hold them all, or,
    ``tuned``, share one with them."""
    old = set(previous.get("cells", []))
    if tuned:
        return 0 if old & {c.id for c in first} else len(old)
    if seeds is None:
        covered = {c.id for c in first}
    else:
        configurations = grid.by_configuration(first)
        covered = {c.id for g in configurations for c in grid.reseed(g[0], seeds)}
    return len(old - covered)


def check(
    previous: Mapping[str, Any],
    new: Mapping[str, Any],
    folder: Path,
    first: list[Cell],
    *,
    seeded: bool,
    tuned: bool,
) -> None:
    """Refuse (exit 2, naming ``--out``) a run that would hide the folder's results:
    ``previous`` is the folder's ``meta.json``, ``new`` the run's study record."""
    seeds = [int(s) for s in previous["study"].get("seeds", [])] if seeded else None
    count = hidden(previous, first, seeds, tuned)
    if not count:
        return
    found = differences(previous["study"], new, seeded=seeded)
    shown = "; ".join(found[:MAX_SHOWN]) + (
        f"; and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
    )
    what = f"{count} of its cells would no longer be shown" + (f": {shown}" if shown else "")
    raise BenchinitError(
        f"'{folder}' holds the results of another run ({what}). Give this run a folder of "
        f"its own with {{out}} (say '{folder}-2'; benchinit index lists both), or delete "
        f"'{folder}' to start over",
        options={"out": "out="},
    )
