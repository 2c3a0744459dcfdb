"""Errors a user can fix. The CLI prints each as one paragraph and exits with status 2.

Anything else that escapes is a bug in benchinit and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchinitError(Exception):
    """Bad input: a study, a plugin, a results folder. ``str(error)`` is the whole message."""

    exit_code = 2


class StudyError(BenchinitError):
    """A study file (or an override of it) is wrong. Names the file and the key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}, key '{key}'" if key else source
        super().__init__(f"study {where}: {message}")


class PluginError(BenchinitError):
    """A plugin failed to load, broke the hook contract, or clashed with another plugin."""


class ResultsError(BenchinitError):
    """A results folder is missing, corrupt, or not comparable."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A sentence suggesting the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    """'a, b, c' for an error message (sorted, at most 40 shown)."""
    items = sorted(choices)
    shown = ", ".join(items[:40])
    return shown + (f", ... ({len(items)} in all)" if len(items) > 40 else "")
