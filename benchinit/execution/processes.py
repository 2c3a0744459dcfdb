"""What a worker process needs before torch is imported: the CPUs this process may use, and
an exit when its parent is gone. Its own module so that a command can ask at its start, and
figure workers (which never import torch) can use it (benchinit.report.figure_workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int, *, at_once: bool = True) -> None:
    """End this worker when its parent ``parent`` is gone (killed: nobody will read what it
    makes): within a second (a thread watching the parent's pid), and with ``at_once`` at
    once on Linux, even when the parent was killed with SIGKILL (the kernel's parent-death
    signal). That signal fires when the *thread* that started the worker ends, not the
    process: only for workers started by the parent's main thread (the cell workers), never
    for a pool's, which start from whichever thread submits (the figure workers). A worker
    would otherwise wait forever on a queue it holds both ends of."""
    if at_once:
        with contextlib.suppress(Exception):  # Linux only
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
