"""The one guard around every call into plugin code.

A plugin is code we call, and code can end the process: ``sys.exit`` and every other
BaseException can be caught, ``os._exit`` cannot. Inside :func:`plugin_code`, ``os._exit``
raises :class:`PluginExit` (a SystemExit) instead of ending the process, so each caller
handles an exit like any other failure of the plugin::

    try:
        with plugin_code():
            value = plugin_function()
    except BaseException as exc:
        if not plugin_failed(exc):  # Ctrl-C, SIGTERM and benchinit's own Escapes go on
            raise
        ...  # the caller's documented outcome

Every place benchinit calls plugin code goes through it, each with its documented outcome:
loading plugins (a file's import, an entry point's, registration and every hook: exit 2
naming the plugin, benchinit.plugins.registry), planning a run (a dataset's ``size()`` and data:
its cells fail, benchinit.engine.execute and benchinit.engine.memory), computing a batch (its cells
fail; here with the time limit, ``limit``), report sections (a failed section,
benchinit.report.plugin_sections) and the conformance kit (a problem found, benchinit.testing).

- Guards nest, and may be open in several threads at once: ``os._exit`` raises only in a
  thread inside a guard, and is the real one again once the last guard closes.
- Only this process is guarded: a process forked meanwhile (a dataset's worker pool) gets
  the real ``os._exit`` back at once, so its exit never climbs a copy of our stack.
- The time limit is the main thread's (an interval timer and SIGALRM); it is armed and
  disarmed with SIGALRM blocked, and an alarm that fired meanwhile is consumed, so neither
  the timer nor the guard outlives the block, whatever raises where.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from benchinit.errors import Escape

_ALARM = {signal.SIGALRM}


class PluginExit(SystemExit):
    """Plugin code called ``os._exit`` inside a guard (the process is kept alive)."""


class TimeLimit(Escape):
    """A guarded block ran past its time limit (an Escape: plugin code that catches every
    Exception does not swallow it, nor does benchinit take it for a plugin's failure)."""


class _State:
    """The process's guards: how many are open (all threads), the real ``os._exit`` while
    any is, and each thread's own depth."""

    lock = threading.Lock()
    open = 0
    real_exit: Any = None
    owner = 0  # the process the guards belong to
    local = threading.local()


def _refuse_exit(code: int) -> None:
    if os.getpid() == _State.owner and getattr(_State.local, "depth", 0) > 0:
        raise PluginExit(f"plugin code called os._exit({code}) (the process was kept alive)")
    _State.real_exit(code)


def _enter() -> None:
    with _State.lock:
        if _State.open == 0:
            _State.real_exit, _State.owner = os._exit, os.getpid()
            os._exit = _refuse_exit  # type: ignore[assignment]
        _State.open += 1
    _State.local.depth = getattr(_State.local, "depth", 0) + 1


def _leave(pid: int) -> None:
    if os.getpid() != pid:  # a forked child leaving its parent's block: nothing is its own
        return
    _State.local.depth -= 1
    with _State.lock:
        _State.open -= 1
        if _State.open == 0:
            os._exit = _State.real_exit


def _forget_in_child() -> None:
    """After a fork, in the child: no guard is open (the real ``os._exit``, a fresh lock)."""
    if _State.open:
        os._exit = _State.real_exit
    _State.lock = threading.Lock()
    _State.open = 0
    _State.local = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _alarm(signum: int, frame: Any) -> None:
    raise TimeLimit()


@contextlib.contextmanager
def plugin_code(limit: float | None = None) -> Iterator[None]:
    """While plugin code runs: ``os._exit`` raises :class:`PluginExit`, and (with ``limit``,
    in the main thread) an interval timer raises :class:`TimeLimit` after ``limit`` seconds.
    See the module docstring."""
    main = threading.current_thread() is threading.main_thread()
    timed = limit if limit and main else None
    pid = os.getpid()
    previous: Any = None
    if main:  # the alarm of an enclosing guard must not land between the steps below
        signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)
    _enter()
    try:
        if timed:
            previous = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, timed)
        if main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _ALARM)
        yield
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)
        try:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                if signal.SIGALRM in signal.sigpending():
                    signal.sigwait(_ALARM)  # fired too late to matter: consume it
                if previous is not None:
                    signal.signal(signal.SIGALRM, previous)
        finally:
            _leave(pid)
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _ALARM)
