"""A stored seeds-until-decided record (``meta.json``'s ``study.seeding``) in words: for the
run's summary and the report's header. The rule is :class:`benchinit.study.settings.SeedRule`;
the rounds are :mod:`benchinit.execution.seeding`'s."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from benchinit.study.settings import SeedRule

# A configuration's state when the rounds stopped (benchinit.execution.seeding sets them).
GROWING, NARROW, AT_MAX, UNFINISHED = "growing", "narrow", "max", "unfinished"
STATE_WORDS = {
    NARROW: "narrow enough",
    AT_MAX: "still wider at the maximum",
    UNFINISHED: "with fewer than 2 finished seeds (no interval)",
    GROWING: "still growing (the run stopped before its next round finished)",
}


def seed_span(seeding: Mapping[str, Any]) -> str:
    """'3 to 12 seeds per configuration' ('6 seeds' when every one ran as many)."""
    counts = [int(c["seeds"]) for c in seeding.get("configurations", [])]
    if not counts:
        return ""
    low, high = min(counts), max(counts)
    if low == high:
        return f"{low} seed{'s' * (low != 1)}"
    return f"{low} to {high} seeds per configuration"


def describe(seeding: Mapping[str, Any]) -> str:
    """One sentence: the rule and where each configuration stopped ("" for fixed seeds, or
    a run stopped before its first round was decided)."""
    if not seeding.get("configurations"):
        return ""
    try:
        rule = SeedRule(**seeding["rule"])
    except (KeyError, TypeError):  # a meta.json of another version: say what is known
        return f"Seeds until decided, in {seeding.get('rounds', '?')} rounds."
    states = Counter(str(c["state"]) for c in seeding.get("configurations", []))
    rounds = int(seeding.get("rounds", 0))
    where = "; ".join(
        f"{count} configuration{'s' * (count != 1)} {STATE_WORDS.get(state, state)}"
        for state, count in sorted(states.items())
    )
    return (
        f"Seeds until decided: each configuration ran {rule.min} seeds, then twice as many "
        f"while its 95% interval of {seeding['metric']} was wider than "
        f"{rule.target_text()}, up to {rule.max}; {rounds} round{'s' * (rounds != 1)}"
        + (f": {where}." if where else ".")
    )
