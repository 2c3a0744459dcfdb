"""Errors a user can fix. The CLI prints each as one paragraph and exits with status 2.

Anything else that escapes is a bug in benchinit and keeps its traceback.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterable, Mapping


class BenchinitError(Exception):
    """Bad input: a study, a plugin, a results folder. ``str(error)`` is the whole message.

    A message may name an option of the Python API as a ``{name}`` placeholder, with its
    API spelling in ``options`` (``{"force": "force=True"}``); ``str(error)`` shows that
    spelling and the CLI shows its own flag instead (``--force``), so library code never
    speaks in command-line flags.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, options: Mapping[str, str] | None = None) -> None:
        self.template = message
        self.options = dict(options or {})
        super().__init__(self.render({}))

    def render(self, spellings: Mapping[str, str]) -> str:
        """The message with each option placeholder spelled from ``spellings`` (else the
        API's spelling)."""
        text = self.template
        for name, api in self.options.items():
            text = text.replace("{" + name + "}", spellings.get(name, api))
        return text


class StudyError(BenchinitError):
    """A study file (or an override of it) is wrong. Names the file and the key."""

    def __init__(
        self, source: str, key: str, message: str, *, options: Mapping[str, str] | None = None
    ) -> None:
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}, key '{key}'" if key else source
        super().__init__(f"study {where}: {message}", options=options)


class PluginError(BenchinitError):
    """A plugin failed to load, broke the hook contract, or clashed with another plugin."""


class BenchinitWarning(UserWarning):
    """Something a user should know that does not stop the run (the CLI prints it once)."""


class ResultsError(BenchinitError):
    """A results folder is missing, corrupt, or not comparable."""


class OutputError(BenchinitError):
    """A file or folder cannot be written (a missing or read-only folder, a full disk).

    Exit status 2 like bad input: the user has to fix a path or make room. Nothing
    half-written is left behind (temporary files are removed).
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"cannot write '{path}': {reason}")


def os_reason(exc: OSError) -> str:
    """The operating system's words for an OSError ('No space left on device')."""
    return exc.strerror or str(exc)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A sentence suggesting the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    """'a, b, c' for an error message (sorted, at most 40 shown)."""
    items = sorted(choices)
    shown = ", ".join(items[:40])
    return shown + (f", ... ({len(items)} in all)" if len(items) > 40 else "")


class Escape(BaseException):
    """Base of benchinit's own control-flow exceptions raised through plugin code (the time
    limit): a BaseException, so a plugin's ``except Exception`` does not swallow them, and
    never mistaken for the plugin's own failure (:func:`plugin_failed`)."""


def plugin_failed(exc: BaseException) -> bool:
    """Whether ``exc``, raised while plugin code ran, is that plugin's failure: anything,
    ``sys.exit`` and other BaseExceptions included, but an interrupt (Ctrl-C, SIGTERM) or
    benchinit's own :class:`Escape`. Use as ``except BaseException as exc: if not
    plugin_failed(exc): raise``."""
    return not isinstance(exc, KeyboardInterrupt | Escape)


def error_text(exc: BaseException) -> str:
    """'ValueError: message (at file.py:12 in fn)': an error and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    return f"{type(exc).__name__}: {exc}{where}"
